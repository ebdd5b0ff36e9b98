"""Concepts panel (CRAFT): one job discovers a layer's concepts for a class over an image source (the
source's images the model assigns to that class), then each concept's crops and its heat map on any
image are drawn at once from the kept result."""
from __future__ import annotations

import time
from collections import Counter

import torch
from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response

from ...errors import ConvlensError
from ...images import load_image
from ...images.labelled import SETS, labelled_photos
from ...inspect.concepts import ConceptsConfig, concepts
from ...fields import resolve_config
from ...render import grid
from ..context import JobFeed
from ..encode import png_bytes
from ..jobs import job_key
from ..layers_state import ImageQ, ModelQ, browsable_layer, cached_png, image_source
from ..state import LRU, AppState, app_state

router = APIRouter(prefix="/api/concepts", tags=["concepts"])

SourceQ = Query("gcompris", description="'gcompris' or 'imagenet20' (labelled photos), 'samples', or an image folder "
                                        "(GET /api/layers/sources)")


def _results(state: AppState) -> LRU:
    """job key -> the ``Concepts`` result (its crops and heat maps are drawn from it)."""
    return state.cache("concepts", 16)


def _images(state: AppState, source: str, n: int) -> torch.Tensor:
    """The first ``n`` images of the source, fitted to the model's input later (paths or tensors)."""
    if source in SETS:
        return list(labelled_photos(source).paths[:n])
    return list(image_source(state, source, n))


def _work(state: AppState, name: str, layer: str, target: str | None, source: str, n: int, cfg, key: str):
    def work(job) -> dict:
        feed = JobFeed(job)
        m = state.model(name)
        items = _images(state, source, n)
        size = m.input_size
        x, preds = [], []
        try:
            for i, it in enumerate(items):   # predict every image: the class's images are those it assigns to it
                xi = load_image(it, size)
                with torch.no_grad():
                    preds.append(int(m(xi).argmax(1)))
                x.append(xi)
                feed.progress(i + 1, None)
            counts = Counter(preds)
            cls = m.class_index(target) if target not in (None, "") else counts.most_common(1)[0][0]
            mine = [xi for xi, p in zip(x, preds) if p == cls]
            classes = [{"index": k, "name": m.classes[k] if m.classes else str(k), "images": v}
                       for k, v in counts.most_common(12)]
            cname = m.classes[cls] if m.classes else str(cls)
            if len(mine) < 2:
                return {"complete": False, "classes": classes, "class": cname, "class_index": cls,
                        "error": f"only {len(mine)} of the {len(x)} images of '{source}' are predicted '{cname}'; "
                                 f"pick a class listed here or another source"}
            c = concepts(m, torch.cat(mine), layer, cls, cfg, progress=feed.progress)
        except KeyboardInterrupt:   # cancelled: nothing to keep (the result comes whole)
            return {"complete": False}
        _results(state).put(key, c)
        return {"complete": True, "key": key, "layer": layer, "class": c.class_name, "class_index": c.class_index,
                "classes": classes, "n_images": len(c.images), "crops": int(c.U.shape[0]), "n": c.n,
                "nmf_error": c.error, "split": c.split, "sobol": [float(v) for v in c.sobol],
                "gxi": [float(v) for v in c.gxi]}
    return work


@router.post("")
def start_concepts(state: AppState = Depends(app_state), layer: str = Query(..., description="a (C, H, W) layer"),
                   target: str | None = Query(None, description="class index or name; default: the class the model "
                                                                "predicts most often on the source"),
                   source: str = SourceQ, n: int = Query(60, ge=2, le=400, description="images of the source read"),
                   concepts_: int = Query(6, alias="concepts", ge=1, le=16, description="number of concepts"),
                   crops: int = Query(16, ge=1, le=256, description="random crops per image"),
                   designs: int = Query(16, ge=4, le=256, description="Sobol designs per image"),
                   images: int = Query(12, ge=2, le=64, description="images of the class used at most"),
                   model: str | None = ModelQ):
    """Start (or reuse) the job discovering ``layer``'s concepts for a class (CRAFT): the source's images
    the model predicts as that class, their random crops, NMF, Sobol and gradient x input importances.
    Follow ``/api/jobs/{job}/events``; the result's ``key`` names the concepts for the PNG routes."""
    name = state.check_model(model)
    m = state.model(name)
    browsable_layer(m, layer)
    if target not in (None, ""):
        m.class_index(target)
    if source not in SETS and source != "samples":
        image_source(state, source, 1)  # an unknown folder: refused now
    cfg = resolve_config(ConceptsConfig, None, {"n": concepts_, "crops": crops, "designs": designs,
                                                 "importance_images": images, "top": 8})
    key = job_key("concepts", name, layer, target or "", source, n, concepts_, crops, designs, images)
    prior = state.jobs.cached(key)
    if prior is not None and (prior.result or {}).get("complete") and _results(state).get(key) is None:
        key = job_key(key, time.time())   # the kept result was evicted: compute it again
    job = state.jobs.submit(key, _work(state, name, layer, target, source, n, cfg, key),
                            label=f"concepts {layer} over {source}")
    return {"job": job.id, "status": job.status}


def _concepts(state: AppState, key: str):
    c = _results(state).get(key)
    if c is None:
        raise HTTPException(404, f"no concepts under '{key[:40]}' (not computed yet, or evicted); start them with "
                                 "POST /api/concepts")
    return c


def _k(c, k: int) -> int:
    if not 0 <= k < c.n:
        raise ConvlensError(f"concept {k} out of range 0..{c.n - 1}")
    return k


@router.get("/{key}/plot.png", response_class=Response)
def concepts_plot(key: str, state: AppState = Depends(app_state)):
    """Every concept's top crops under the importance bars (``Concepts.plot``)."""
    c = _concepts(state, key)
    return cached_png(state, ("concepts.plot", key), lambda: png_bytes(c.plot()))


@router.get("/{key}/{k}/crops.png", response_class=Response)
def concept_crops(key: str, k: int, state: AppState = Depends(app_state)):
    """Concept ``k``'s strongest crops (cut from the class's images), strongest first, four a row."""
    c = _concepts(state, key)
    _k(c, k)
    return cached_png(state, ("concepts.crops", key, k),
                      lambda: png_bytes(grid(list(c.crops(k, 72)), ncol=4, pad=2)))


def _image(state: AppState, c, ref: str):
    """A sample name, an upload id, or ``class:<i>``: the i-th image of the class the concepts came from."""
    if ref.startswith("class:"):
        i = ref[6:]
        if not i.isdigit() or not int(i) < len(c.images):
            raise ConvlensError(f"image '{ref[:20]}': use class:0 .. class:{len(c.images) - 1}")
        return c.images[int(i):int(i) + 1]
    return state.image(ref)


@router.get("/{key}/images/{i}.png", response_class=Response)
def class_image(key: str, i: int, state: AppState = Depends(app_state)):
    """The i-th image of the class the concepts were found on (96 px), as the model saw it."""
    c = _concepts(state, key)
    x = _image(state, c, f"class:{i}")
    return cached_png(state, ("concepts.image", key, i), lambda: png_bytes(grid([x[0]], tile=96, pad=0)))


@router.get("/{key}/{k}/map.png", response_class=Response)
def concept_map(key: str, k: int, state: AppState = Depends(app_state), image: str = ImageQ):
    """Concept ``k``'s heat map on ``image`` (a sample name, an upload id, or ``class:<i>``, the i-th
    image of the class): its NNLS coefficient at each position of the layer, upsampled and overlaid,
    on one scale per concept (bright = its strongest response on the class's images)."""
    c = _concepts(state, key)
    _k(c, k)
    return cached_png(state, ("concepts.map", key, k, image),
                      lambda: png_bytes(c.heatmap(_image(state, c, image), k).resize((224, 224))))
