"""Shared endpoints: health, the model and its layers and classes, sample and style images, jobs and their events."""
from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response, StreamingResponse

from ...images.samples import PAINTINGS, SAMPLES, sample_image
from ...texture.samples import STYLE_SAMPLES, texture_image
from ..encode import png_bytes, png_response  # noqa: F401 - importable here as before
from ..state import AppState, app_state

router = APIRouter(prefix="/api", tags=["core"])


@router.get("/health")
def health(state: AppState = Depends(app_state)):
    """Liveness, the server's model and its job pool size."""
    return {"ok": True, "model": state.model_name, "models": list(state.models), "weights": state.weights,
            "workers": state.workers, "threads": state.threads, "store": state.store.name if state.store else None}


@router.get("/token")
def token(state: AppState = Depends(app_state)):
    """The server's token, for scripts: send it as ``X-Convlens-Token`` with every POST and DELETE. (Another
    web site cannot read this answer: browsers keep it from other origins, and the Host check keeps
    rebinding pages out.)"""
    return {"header": "X-Convlens-Token", "token": state.token}


@router.get("/model")
def model_info(model: str | None = Query(None, max_length=100, description="a served model (default: the server's)"),
               state: AppState = Depends(app_state)):
    """A served model (default: the server's): name, input size, layers (name, type, output shape) and
    class names (the lab's class and layer pickers read them)."""
    name = state.check_model(model)
    m = state.model(name)
    layers = [{"name": li.name, "type": li.type, "shape": list(li.shape) if li.shape else None}
              for li in m.layers()] if hasattr(m, "layers") else []
    return {"name": name, "input_size": list(m.input_size), "layers": layers,
            "classes": list(m.classes) if getattr(m, "classes", None) is not None else None}


@router.get("/samples")
def samples():
    """The bundled sample images: name and description."""
    return [{"name": k, "description": v[1], "url": f"/api/samples/{k}.png", "thumb": f"/api/samples/{k}.png?max_side=128"}
            for k, v in SAMPLES.items()]


@router.get("/samples/{name}.png", response_class=Response)
def sample_png(name: str, max_side: int | None = Query(None, ge=16, le=4096,
                                                      description="Shrink so the longer side is at most this (thumbnails).")):
    """One bundled sample as PNG (its own size, or shrunk to ``max_side``)."""
    return png_response(_shrunk(sample_image(name), max_side))


def _shrunk(img, max_side: int | None):
    if max_side is not None and max(img.shape[-2:]) > max_side:
        import torch.nn.functional as F
        h, w = img.shape[-2:]
        s = max_side / max(h, w)
        img = F.interpolate(img, size=(max(1, round(h * s)), max(1, round(w * s))), mode="bilinear", antialias=True)
    return img


@router.get("/styles")
def styles():
    """The images style transfer can take by name, with thumbnails: the paintings, the texture style samples
    (hubble, ihc, colorwheel), then the other bundled photos (an upload id works too)."""
    def row(name, description, url, group):
        return {"name": name, "description": description, "group": group, "url": url, "thumb": f"{url}?max_side=96"}
    return ([row(k, SAMPLES[k][1], f"/api/samples/{k}.png", "painting") for k in PAINTINGS if k in SAMPLES]
            + [row(k, v[1], f"/api/styles/{k}.png", "texture") for k, v in STYLE_SAMPLES.items()]
            + [row(k, v[1], f"/api/samples/{k}.png", "photo") for k, v in SAMPLES.items() if k not in PAINTINGS])


@router.get("/styles/{name}.png", response_class=Response)
def style_png(name: str, max_side: int | None = Query(None, ge=16, le=4096,
                                                     description="Shrink so the longer side is at most this (thumbnails).")):
    """One texture style sample (hubble, ihc, colorwheel) as PNG."""
    if name not in STYLE_SAMPLES:
        raise HTTPException(404, f"no style sample '{name[:40]}'; they are {', '.join(STYLE_SAMPLES)} (GET /api/styles)")
    return png_response(_shrunk(texture_image(name), max_side))


def _job(state: AppState, job_id: str):
    try:
        return state.jobs.get(job_id)
    except KeyError:
        raise HTTPException(404, f"no job '{job_id[:40]}'; it may have expired, submit it again") from None


@router.get("/jobs/{job_id}")
def job_status(job_id: str, state: AppState = Depends(app_state)):
    """A job's status, progress, queue position and (when done) result. Polling (or following the events)
    keeps the job alive: one nobody follows for the server's orphan timeout is cancelled."""
    job = _job(state, job_id)
    job.touch()
    return job.as_dict()


@router.delete("/jobs/{job_id}")
def job_cancel(job_id: str, state: AppState = Depends(app_state)):
    """Cancel a job; an iterative technique stops and keeps its best result so far."""
    _job(state, job_id)
    return state.jobs.cancel(job_id).as_dict()


@router.get("/jobs/{job_id}/preview.png", response_class=Response)
def job_preview(job_id: str, state: AppState = Depends(app_state)):
    """The latest preview image of a running job."""
    job = _job(state, job_id)
    job.touch()
    if job.preview is None:
        raise HTTPException(404, "this job has no preview yet")
    return Response(job.preview, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.get("/jobs/{job_id}/events")
async def job_events(job_id: str, state: AppState = Depends(app_state)):
    """Server-sent events: one ``data: {job as JSON}`` line per change (progress, queue position) until the
    job finishes. An open stream keeps the job alive."""
    job = _job(state, job_id)

    async def stream():
        version = -1
        while True:
            job.touch()
            if job.version != version:
                version = job.version
                yield f"data: {json.dumps(job.as_dict())}\n\n"
                if job.finished:
                    return
            await asyncio.to_thread(job.wait_change, version, 1.0)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})
