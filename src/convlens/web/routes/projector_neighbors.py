"""The projector's neighbours: the nearest rows of a point, in the original space (``store.neighbors``,
cosine) or in the map (L2), of an outside image (a sample or an upload, embedded as the store's images
were), the store's near-duplicates, and "why are these two similar?" (``convlens.why_similar`` as a job)."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Literal
from urllib.parse import urlencode

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from ...embed import ArrayStore, exact_search, why_similar
from ...embed.query import embed_query_images
from ...errors import ConvlensError
from ...images import write_atomic
from ..jobs import job_key
from ..projector_state import MAX_K, ProjectParams, StoreParam, check_row, map_query, open_store, projection, store_key
from ..state import AppState, app_state

router = APIRouter(prefix="/api", tags=["projector"])


@router.get("/projector/neighbors")
def projector_neighbors(i: int = Query(..., description="store row of the query"),
                        k: int = Query(10, ge=1, le=MAX_K, description=f"neighbours, 1..{MAX_K}"),
                        space: Literal["original", "map"] = Query("original", description="original: cosine in the "
                                                                  "embedding; map: L2 distance in the 2-D map"),
                        p: ProjectParams = Depends(map_query), state: AppState = Depends(app_state)):
    """The ``k`` nearest rows to row ``i`` (itself excluded): in the ORIGINAL space by the store's
    cosine similarity (``store.neighbors``), or in the 2-D map by Euclidean distance."""
    s = open_store(state, p.store)
    check_row(s, i)
    if space == "original":
        nb = s.neighbors(i, k=k, threads=state.threads)
        idx, sc, metric = nb.indices[0], nb.scores[0], nb.metric
    else:
        xy = ArrayStore(np.asarray(projection(state, s, p).coords[:, :p.dims], np.float32))
        ii, ss = exact_search(xy, xy.take([i]), k, "l2", np.array([i]), threads=state.threads)
        idx, sc, metric = ii[0], ss[0], f"l2 ({p.dims}-D map)"
    labels, paths = s.column("label"), s.column("path")
    return {"query": i, "space": space, "metric": metric, "label": labels[i], "path": paths[i],
            "neighbors": [{"index": int(a), "score": float(b), "label": labels[int(a)], "path": paths[int(a)]}
                          for a, b in zip(idx, sc)]}


def store_model_served(state: AppState, s):
    """The server's copy of the model the store was made with: a store of another model is refused (the
    server loads only the models it serves)."""
    name, weights = s.manifest.get("model"), str(s.manifest.get("weights"))
    if not name or not s.manifest.get("preprocessing"):
        raise ConvlensError("this store was made from raw vectors without a model; query it by row, not by image")
    model = state.model(state.check_model(name))
    if weights != str(getattr(model, "weights", None)):
        raise ConvlensError(f"the store was made with {name} weights '{weights}', the server's are "
                            f"'{getattr(model, 'weights', None)}'; serve those weights (--weights) to query it by image")
    return model


@router.get("/projector/image-neighbors")
def projector_image_neighbors(image: str = Query(..., max_length=64, description="a sample name or an upload id "
                                                 "(POST /api/images)"),
                              k: int = Query(10, ge=1, le=MAX_K), store: str | None = StoreParam,
                              state: AppState = Depends(app_state)):
    """The ``k`` rows nearest to an outside image (cosine), the image embedded exactly as the store's images
    were (same model, layer, input size, pooling: ``convlens.embed.query``)."""
    s = open_store(state, store)
    vec = embed_query_images(s, [state.image(image)], store_model_served(state, s))
    nb = s.neighbors(vec, k=k, threads=state.threads)
    labels, paths = s.column("label"), s.column("path")
    return {"image": image, "metric": nb.metric,
            "neighbors": [{"index": int(a), "score": float(b), "label": labels[int(a)], "path": paths[int(a)]}
                          for a, b in zip(nb.indices[0], nb.scores[0])]}


@router.get("/projector/duplicates")
def projector_duplicates(threshold: float = Query(0.95, ge=-1, le=1, description="cosine at or above which two "
                                                  "rows count as near-duplicates"),
                         store: str | None = StoreParam, state: AppState = Depends(app_state)):
    """Near-duplicate pairs (``store.near_duplicates``: from the cached kNN graph, most similar first)
    and the rows they involve."""
    pairs = open_store(state, store).near_duplicates(threshold)
    rows = sorted({r for a, b, _ in pairs for r in (a, b)})
    return {"threshold": threshold, "pairs": [{"a": a, "b": b, "cosine": c} for a, b, c in pairs], "rows": rows}


class WhyParams(BaseModel):
    """Two store rows to explain (``convlens.why_similar``)."""
    store: str | None = Field(None, max_length=128)
    a: int = Field(..., description="store row")
    b: int = Field(..., description="store row")
    method: Literal["gradcam", "saliency"] = Field("gradcam", description="gradcam (layer map) or saliency (pixels)")


def _why_path(state: AppState, store, a: int, b: int, method: str) -> Path:
    return state.folder("cache") / "projector" / store_key(store) / f"why-{method}-{a}-{b}.png"


@router.post("/projector/why")
def projector_why(params: WhyParams, state: AppState = Depends(app_state)):
    """Why are rows ``a`` and ``b`` similar? Grad-CAM (or saliency) of their embeddings' cosine, as a
    job; the result gives the cosine and the URL of the figure (a | map of a | map of b | b)."""
    s = open_store(state, params.store)
    check_row(s, params.a, "a")
    check_row(s, params.b, "b")
    if not s.manifest.get("model") or not s.manifest.get("preprocessing"):
        raise ConvlensError("this store was made from raw vectors without a model; why-similar needs a store made by "
                            "`convlens embed` (it re-runs the model on both images)")
    out = _why_path(state, s, params.a, params.b, params.method)

    def work(job):
        model = None
        if s.manifest.get("model") == state.model_name and str(s.manifest.get("weights")) in (str(state.weights), "default"):
            model = state.model()
        job.progress(0, 1)
        w = why_similar(s, params.a, params.b, model=model, method=params.method)
        buf = io.BytesIO()
        w.render(height=160).save(buf, format="PNG")
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out, buf.getvalue())
        job.progress(1, 1)
        q = urlencode({"store": params.store or "", "a": params.a, "b": params.b, "method": params.method})
        return {"a": params.a, "b": params.b, "cosine": w.cosine, "layer": w.layer, "method": params.method,
                "image": f"/api/projector/why.png?{q}"}

    job = state.jobs.submit(job_key("why", store_key(s), params.a, params.b, params.method), work,
                            label=f"why {params.a} ~ {params.b}")
    return {"job": job.id, "status": job.status}


@router.get("/projector/why.png", response_class=Response)
def projector_why_png(store: str | None = StoreParam, a: int = Query(...), b: int = Query(...),
                      method: Literal["gradcam", "saliency"] = Query("gradcam"), state: AppState = Depends(app_state)):
    """The figure of a finished why-similar job (404 until ``POST /api/projector/why`` made it)."""
    s = open_store(state, store)
    check_row(s, a, "a")
    check_row(s, b, "b")
    path = _why_path(state, s, a, b, method)
    if not path.is_file():
        raise HTTPException(404, f"no why-similar figure for {a} and {b} yet; POST /api/projector/why first")
    return Response(path.read_bytes(), media_type="image/png", headers={"Cache-Control": "max-age=3600"})
