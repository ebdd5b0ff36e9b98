"""Max-activating patches of the layer browser: one job finds the top-k units of every channel of a
layer over an image source (one pass), then any channel's patches are drawn at once from it."""
from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response

from ...inspect import max_activating_patches, top_activations
from ...inspect.units import channel_top
from ..context import JobFeed
from ..encode import png_bytes
from ..jobs import job_key
from ..layers_state import (KQ, ModelQ, NQ, SourceQ, browsable_layer, cached_png, image_source, pass_backend,
                            resolve_unit, sample_images, source_size)
from ..state import LRU, AppState, app_state

router = APIRouter(prefix="/api/layers", tags=["layers"])


def _tops(state: AppState) -> LRU:
    """(model, layer, source, n, k) -> (TopActivations of every channel, the images)."""
    return state.cache("layers.tops", 32)


def _patch_key(name: str, layer: str, source: str, n: int, k: int) -> str:
    return job_key("layers.patches", name, layer, source, n, k)


def _top_job(state: AppState, name: str, layer: str, source: str, n: int, k: int):
    """The job computing the top-k units of every channel of ``layer`` over the source (one pass)."""
    images = image_source(state, source, n)
    key = _patch_key(name, layer, source, n, k)
    def work(job) -> dict:
        feed = JobFeed(job)
        imgs = sample_images(state, n) if source == "samples" else images  # the samples: decoded once a server
        try:
            top = top_activations(state.model(name), imgs, layer, None, k, progress=feed.progress,
                                  threads=state.threads, backend=pass_backend(len(imgs)), size=source_size(source))
        except KeyboardInterrupt as e:
            top = getattr(e, "partial", None)
            if top is None:
                return {"layer": layer, "n_images": 0, "complete": False}
        complete = top.n_images == len(imgs)
        _tops(state).put(key, (top, imgs))
        return {"layer": layer, "source": source, "n_images": top.n_images, "k": k, "complete": complete,
                "channels": len(top.channels)}
    return state.jobs.submit(key, work, label=f"patches {layer} over {source}")


@router.post("/{layer}/patches")
def start_patches(layer: str, state: AppState = Depends(app_state), source: str = SourceQ, n: int = NQ,
                  k: int = KQ, model: str | None = ModelQ):
    """Start (or reuse) the job finding the ``k`` strongest units of every channel of ``layer`` over the
    source (one pass over the images). Follow ``/api/jobs/{job}/events``; then ``GET
    .../channels/{c}/patches.png`` draws any channel's patches at once."""
    name = state.check_model(model)
    browsable_layer(state.model(name), layer)
    job = _top_job(state, name, layer, source, n, k)
    return {"job": job.id, "status": job.status}


def channel_patches(state: AppState, name: str, layer: str, channel: int, source: str, n: int, k: int):
    """The ``Patches`` of one channel from the finished layer pass (``max_activating_patches`` with that
    pass as its state: no second pass over the images)."""
    hit = _tops(state).get(_patch_key(name, layer, source, n, k))
    if hit is None:
        raise HTTPException(404, f"patches of {layer} over '{source}' (n={n}, k={k}) are not computed yet; "
                                 f"start them with POST /api/layers/{layer}/patches?source={source}&n={n}&k={k}")
    top, images = hit
    sub = channel_top(top, channel)
    if top.n_images < len(images):
        images = images[:top.n_images]   # a cancelled pass: the images it saw
    return max_activating_patches(state.model(name), images, layer, [channel], top.k, state=sub, size=source_size(source))


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
