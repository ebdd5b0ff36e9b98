"""Feature visualization of one unit of the layer browser (``convlens.visualize_channel``) as a job
with previews; the finished image is saved under the server's results folder."""
from __future__ import annotations

from pathlib import Path
import typing

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response

from ...images.io import save_png
from ...recipes.visualize import VizConfig, visualize_channel
from ..context import JobFeed
from ..forms import LIMITS
from ..jobs import job_key
from ..layers_state import ModelQ, png, resolve_unit
from ..state import AppState, app_state, safe_child

router = APIRouter(prefix="/api/layers", tags=["layers"])


def _viz_params(steps: int, size: int | None, preset: str, seed: int, model) -> dict:
    return {"steps": steps, "size": size or model.input_size[0], "preset": preset, "seed": seed}


def _viz_path(state: AppState, name: str, layer: str, channel: int, params: dict) -> tuple[str, Path]:
    key = job_key("layers.visualize", name, layer, channel, params)
    return key, safe_child(state.folder("results"), f"viz-{key}.png", what="result")


_VIZ = VizConfig()  # the lab's and the CLI's defaults (one source)
VizSteps = Query(_VIZ.steps, ge=1, le=LIMITS["steps"], description="optimization steps")
VizSize = Query(None, ge=32, le=512, description="image side in pixels (default: the model's input size)")
Preset = typing.get_type_hints(VizConfig)["preset"]   # VizConfig's Literal: a new preset (maco) appears here too
VizPreset = Query(_VIZ.preset, description=f"one of {', '.join(typing.get_args(Preset))} (see VizConfig)")
VizSeed = Query(_VIZ.seed, ge=0, description="random seed")


@router.post("/{layer}/channels/{channel}/visualize")
def start_visualize(layer: str, channel: int, state: AppState = Depends(app_state), steps: int = VizSteps,
                    size: int | None = VizSize, preset: Preset = VizPreset,
                    seed: int = VizSeed, model: str | None = ModelQ):
    """Start (or reuse) the feature visualization of the channel (``convlens.visualize_channel``):
    previews stream via ``/api/jobs/{job}/preview.png``; cancelling keeps the best image so far.
    The result is served by ``GET .../visualization.png`` with the same parameters."""
    name, m, li, c = resolve_unit(state, model, layer, channel)
    params = _viz_params(steps, size, preset, seed, m)
    key, path = _viz_path(state, name, layer, c, params)

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
    _, path = _viz_path(state, name, layer, c, _viz_params(steps, size, preset, seed, m))
    if not path.exists():
        raise HTTPException(404, f"no visualization of {layer}:{c} with these parameters yet; start it with "
                                 f"POST /api/layers/{layer}/channels/{c}/visualize")
    return png(path.read_bytes())
