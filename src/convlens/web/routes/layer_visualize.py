"""Feature visualization of one unit of the layer browser (``convlens.visualize_channel``) as a job
with previews; the finished image is saved under the server's results folder."""
from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import Response

from ...images.io import save_png
from ...recipes.visualize import visualize_channel
from ..context import JobFeed
from ..layer_jobs import Preset, VizPreset, VizSeed, VizSize, VizSteps, viz_params, viz_path
from ..layers_state import ModelQ, png, resolve_unit
from ..state import AppState, app_state

router = APIRouter(prefix="/api/layers", tags=["layers"])




@router.post("/{layer}/channels/{channel}/visualize")
def start_visualize(layer: str, channel: int, state: AppState = Depends(app_state), steps: int = VizSteps,
                    size: int | None = VizSize, preset: Preset = VizPreset,
                    seed: int = VizSeed, model: str | None = ModelQ):
    """Start (or reuse) the feature visualization of the channel (``convlens.visualize_channel``):
    previews stream via ``/api/jobs/{job}/preview.png``; cancelling keeps the best image so far.
    The result is served by ``GET .../visualization.png`` with the same parameters."""
    name, m, li, c = resolve_unit(state, model, layer, channel)
    params = viz_params(steps, size, preset, seed, m)
    key, path = viz_path(state, name, layer, c, params)

    def work(job) -> dict:
        feed = JobFeed(job)   # the lab's previews and cancel
        v = visualize_channel(state.model(name), layer, c, steps=params["steps"], size=params["size"],
                              preset=params["preset"], seed=params["seed"], callback=feed.callback,
                              progress=feed.progress)
        save_png(v.images[0], path)
        q = "&".join(f"{k}={val}" for k, val in params.items())
        return {"layer": layer, "channel": c, "score": float(v.scores[0]), "steps": int(v.optim.steps),
                "stopped": v.optim.stopped, "params": params,
                "image": f"/api/layers/{layer}/channels/{c}/visualization.png?{q}"}
    job = state.jobs.submit(key, work, label=f"visualize {layer}:{c}")
    return {"job": job.id, "status": job.status}


@router.get("/{layer}/channels/{channel}/visualization.png", response_class=Response)
def unit_visualization(layer: str, channel: int, state: AppState = Depends(app_state), steps: int = VizSteps,
                       size: int | None = VizSize, preset: Preset = VizPreset,
                       seed: int = VizSeed, model: str | None = ModelQ):
    """The finished feature visualization of the channel for these parameters (404 until the job of
    ``POST .../visualize`` with the same parameters has finished)."""
    name, m, li, c = resolve_unit(state, model, layer, channel)
    _, path = viz_path(state, name, layer, c, viz_params(steps, size, preset, seed, m))
    if not path.exists():
        raise HTTPException(404, f"no visualization of {layer}:{c} with these parameters yet; start it with "
                                 f"POST /api/layers/{layer}/channels/{c}/visualize")
    return png(path.read_bytes())
