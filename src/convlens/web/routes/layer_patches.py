"""Max-activating patches of the layer browser: one job finds the top-k units of every channel of a
layer over an image source (one pass), then any channel's patches are drawn at once from it."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from ..encode import png_bytes
from ..layer_jobs import channel_patches, top_job
from ..layers_state import KQ, ModelQ, NQ, SourceQ, browsable_layer, cached_png, resolve_unit
from ..state import AppState, app_state

router = APIRouter(prefix="/api/layers", tags=["layers"])


@router.post("/{layer}/patches")
def start_patches(layer: str, state: AppState = Depends(app_state), source: str = SourceQ, n: int = NQ,
                  k: int = KQ, model: str | None = ModelQ):
    """Start (or reuse) the job finding the ``k`` strongest units of every channel of ``layer`` over the
    source (one pass over the images). Follow ``/api/jobs/{job}/events``; then ``GET
    .../channels/{c}/patches.png`` draws any channel's patches at once."""
    name = state.check_model(model)
    browsable_layer(state.model(name), layer)
    job = top_job(state, name, layer, source, n, k)
    return {"job": job.id, "status": job.status}


@router.get("/{layer}/channels/{channel}/patches")
def unit_patches(layer: str, channel: int, state: AppState = Depends(app_state), source: str = SourceQ,
                 n: int = NQ, k: int = KQ, model: str | None = ModelQ):
    """The channel's max-activating units over the source (after ``POST /api/layers/{layer}/patches``):
    activation value, image name, unit position and the receptive-field box in the image, strongest first."""
    name, m, li, c = resolve_unit(state, model, layer, channel)
    p = channel_patches(state, name, layer, c, source, n, k)
    rows = []
    for j in range(p.top.k):
        i = int(p.top.image_index[0, j])
        if i >= 0:
            rows.append({"value": float(p.top.values[0, j]), "image_index": i, "image": p.names.get(i, f"#{i}"),
                         "position": p.top.positions[0, j].tolist(), "box": p.boxes[0, j].tolist()})
    return {"layer": layer, "channel": c, "source": source, "n_images": p.top.n_images,
            "receptive_field": list(p.rf.size), "patches": rows}


@router.get("/{layer}/channels/{channel}/patches.png", response_class=Response)
def unit_patches_png(layer: str, channel: int, state: AppState = Depends(app_state), source: str = SourceQ,
                     n: int = NQ, k: int = KQ, whole: bool = Query(False, description="whole images with the "
                                                                     "receptive field outlined"),
                     model: str | None = ModelQ):
    """The channel's max-activating patches (its exact receptive field in each image), labelled with the
    activation and image; ``whole=true`` shows the whole images instead."""
    name, m, li, c = resolve_unit(state, model, layer, channel)
    return cached_png(state, ("patches", name, layer, c, source, n, k, whole),
                       lambda: png_bytes(channel_patches(state, name, layer, c, source, n, k).render(whole=whole)))
