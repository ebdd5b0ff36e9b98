"""Shared endpoints: health, the model and its layers and classes, sample images, jobs and their events."""
from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response, StreamingResponse

from ...images.samples import SAMPLES, sample_image
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
def model_info(state: AppState = Depends(app_state)):
    """The server's model: name, input size, layers (name, type, output shape) and class names."""
    m = state.model()
    layers = [{"name": li.name, "type": li.type, "shape": list(li.shape) if li.shape else None}
              for li in m.layers()] if hasattr(m, "layers") else []
    return {"name": state.model_name, "input_size": list(m.input_size), "layers": layers,
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
    img = sample_image(name)
    if max_side is not None and max(img.shape[-2:]) > max_side:
        import torch.nn.functional as F
        h, w = img.shape[-2:]
        s = max_side / max(h, w)
        img = F.interpolate(img, size=(max(1, round(h * s)), max(1, round(w * s))), mode="bilinear", antialias=True)
    return png_response(img)


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
