"""The embedding projector (page ``/projector``): its stores and the 2-D maps computed of them.

Everything heavy is computed server-side, never in the browser:

* ``POST /api/projector/project`` runs ``convlens.project`` (PCA / t-SNE / UMAP) as a job; the
  result is saved with the store (``projection-<method>.npy`` and its parameters in the manifest)
  and kept in memory, so a repeated request is instant.
* ``GET /api/projector/coords.bin`` sends the 2-D coordinates as raw little-endian float32
  ``x0 y0 x1 y1 ...`` (``application/octet-stream``, 8 bytes a point), the parameters in headers.

The projector's other routes: thumbnails and atlases (``projector_thumbs``), colours
(``projector_colours``), neighbours and why-similar (``projector_neighbors``); the word neighbours
have their own page and routes (``words``). Store names and computed maps: ``web/projector_state.py``.
"""
from __future__ import annotations

import importlib.util
import io
import json
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Literal
from urllib.parse import urlencode

import numpy as np
import pyarrow.csv as pcsv
from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from ...embed.atlas import ATLAS_SIDE, CELLS, PER_ATLAS, atlas_count, atlas_order  # noqa: F401 - atlas_order: importable here as before
from ...embed.colours import COLOUR_COLUMNS
from ...embed import coords_table, embed_images, export_projector, project
from ...embed.project import UMAP_HINT
from ...errors import ConvlensError
from ..projector_state import (ProjectParams, StoreParam, check_row, map_key, map_query, method_kw, open_store,  # noqa: F401 - open_store, stores_dir: as before
                               params_header, projection, remember, row_info, saved_projection, search_rows,
                               store_key, store_names, stores_dir)
from ..context import JobFeed
from ..jobs import job_key
from ..state import AppState, app_state, safe_child, safe_name

router = APIRouter(prefix="/api", tags=["projector"])


def _info(name: str, store) -> dict:
    m = store.manifest
    saved = {k[len("projection-"):]: v.get("params") for k, v in m.get("projections", {}).items()
             if k.startswith("projection-") and v.get("count") == len(store)}
    return {"name": name, "count": len(store), "dim": store.dim, "model": m.get("model"), "weights": m.get("weights"),
            "layer": m.get("layer"), "metric": m.get("metric", "cosine"), "saved_projections": saved,
            "atlas": {"cells": list(CELLS), "per_atlas": PER_ATLAS, "per_row": ATLAS_SIDE,
                      "count": atlas_count(len(store))},
            "colour_columns": list(COLOUR_COLUMNS), "version": store_key(store),
            "explainable": bool(m.get("model")) and bool(m.get("preprocessing"))}


@router.get("/projector/stores")
def projector_stores(state: AppState = Depends(app_state)):
    """The embedding stores this server can show: the ``--store`` folder and the folders under
    ``<data folder>/stores/`` (name, count, dimension, model, layer, projections saved with it)."""
    out = []
    for n in store_names(state):
        try:
            out.append(_info(n, open_store(state, n)))
        except (ConvlensError, HTTPException, OSError) as e:
            out.append({"name": n, "error": str(getattr(e, "detail", e))})
    return {"stores": out, "folder": str(stores_dir(state))}


@router.get("/projector/info")
def projector_info(store: str | None = StoreParam, state: AppState = Depends(app_state)):
    """One store: count, dimension, model and layer, saved projections, the atlas layout."""
    s = open_store(state, store)
    return _info(store or store_names(state)[0], s)


@router.post("/projector/project")
def projector_project(params: ProjectParams, state: AppState = Depends(app_state)):
    """Compute a 2-D map of the store as a job (returns ``{"job": id}``; follow
    ``/api/jobs/{id}/events``). The result names the parameters (seed included) and the URL of the
    coordinates; the map is saved with the store and cached, so asking again is instant."""
    store = open_store(state, params.store)
    if params.method == "umap" and importlib.util.find_spec("umap") is None:
        raise ConvlensError(UMAP_HINT)
    if len(store) < (4 if params.method == "tsne" else 2):
        raise ConvlensError(f"the store has {len(store)} vectors; a {params.method} map needs more, embed more images")

    def work(job):
        proj = saved_projection(state, store, params)
        if proj is None:
            job.progress(0, 1)
            proj = project(store, params.method, params.seed, dims=params.dims, **method_kw(params))
            remember(state, map_key(store, params), proj)
        job.progress(1, 1)
        q = urlencode({"store": params.store or "", "method": params.method, "seed": params.seed, **method_kw(params),
                       **({"dims": params.dims} if params.dims != 2 else {})})
        return {"method": proj.method, "params": json.loads(params_header(proj)), "seconds": round(proj.seconds, 3),
                "count": len(proj), "dims": params.dims, "coords": "/api/projector/coords.bin?" + q,
                "csv": "/api/projector/coords.csv?" + q, "order": "/api/projector/order.bin?" + q}

    job = state.jobs.submit(map_key(store, params), work,
                            label=f"{params.method}{' 3-D' if params.dims == 3 else ''} map of {store.path.name}")
    return {"job": job.id, "status": job.status}


@router.get("/projector/coords.bin", response_class=Response)
def projector_coords(p: ProjectParams = Depends(map_query), state: AppState = Depends(app_state)):
    """The coordinates as raw little-endian float32, ``x0 y0 x1 y1 ...`` (8 bytes a point; with
    ``dims=3``, ``x0 y0 z0 ...``, 12 bytes; read with ``new Float32Array(await r.arrayBuffer())`` or
    ``np.frombuffer(b, '<f4').reshape(-1, dims)``).
    Headers: ``X-Count``, ``X-Dims``, ``X-Projection`` (method and parameters as JSON). 409 until computed."""
    proj = projection(state, open_store(state, p.store), p)
    data = np.ascontiguousarray(proj.coords[:, :p.dims], dtype="<f4").tobytes()
    return Response(data, media_type="application/octet-stream",
                    headers={"X-Count": str(len(proj)), "X-Dims": str(p.dims), "X-Projection": params_header(proj),
                             "Cache-Control": "no-cache"})


@router.get("/projector/coords.csv", response_class=Response)
def projector_coords_csv(p: ProjectParams = Depends(map_query), state: AppState = Depends(app_state)):
    """The coordinates as CSV: ``index, x, y, path, label`` (``convlens.coords_table``); the
    parameters in the ``X-Projection`` header and in the store's manifest."""
    store = open_store(state, p.store)
    proj = projection(state, store, p)
    buf = io.BytesIO()
    pcsv.write_csv(coords_table(proj, store), buf)
    name = f"{store.path.name}-{proj.method}-seed{p.seed}.csv"
    return Response(buf.getvalue(), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "X-Projection": params_header(proj)})


@router.get("/projector/point")
def projector_point(i: int = Query(..., description="store row"), store: str | None = StoreParam,
                    state: AppState = Depends(app_state)):
    """What row ``i`` is: its stored path (or name), label and image size."""
    s = open_store(state, store)
    return row_info(s, check_row(s, i))


@router.get("/projector/search")
def projector_search(q: str = Query(..., min_length=1, max_length=200, description="text in a row's path or label "
                                    "(case-insensitive), or #ROW"),
                     store: str | None = StoreParam, state: AppState = Depends(app_state)):
    """The rows whose path or label contains ``q`` (``indices``, row order) and how many."""
    rows = search_rows(open_store(state, store), q)
    return {"query": q, "count": int(len(rows)), "indices": rows.tolist()}


class EmbedParams(BaseModel):
    """A new store of the server's model over uploaded images (or samples), as ``convlens embed`` makes one."""
    name: str = Field(..., max_length=64, description="the new store's folder name under <data folder>/stores/")
    images: list[str] = Field(..., min_length=1, max_length=2000, description="upload ids (POST /api/images) or sample names")
    labels: list[str] | None = Field(None, description="one label per image (optional)")


@router.post("/projector/embed")
def projector_embed(params: EmbedParams, state: AppState = Depends(app_state)):
    """Embed a set of images with the server's model into a new store under ``<data folder>/stores/`` as a
    job (``convlens.embed_images``; progress as it goes); the store then appears in ``/projector/stores``."""
    name = safe_name(params.name, "store name")
    out = safe_child(stores_dir(state), name, what="store name")
    if out.exists():
        raise ConvlensError(f"a store '{name}' exists already; pick another name")
    if params.labels is not None and len(params.labels) != len(params.images):
        raise ConvlensError(f"give one label per image: {len(params.images)} images, {len(params.labels)} labels")
    images = [state.image(ref) for ref in params.images]   # every reference checked before any work
    model = state.model()

    def work(job):
        feed = JobFeed(job)
        s = embed_images(model, _Named(images, params.images), out=out, labels=params.labels, threads=state.threads,
                         progress=feed.progress)
        return {"store": name, "count": len(s), "dim": s.dim, "layer": s.manifest.get("layer")}

    job = state.jobs.submit(job_key("embed", name, params.images), work, label=f"embed {len(images)} images into {name}")
    return {"job": job.id, "status": job.status}


class _Named(list):
    """Images with the names a store records for them (the upload ids or sample names they were given by)."""

    def __init__(self, images, names):
        super().__init__(images)
        self.names = list(names)


@router.get("/projector/export.zip", response_class=Response)
def projector_export(store: str | None = StoreParam, state: AppState = Depends(app_state)):
    """The store as a TensorBoard Embedding Projector folder (``convlens.export_projector``: tensors.tsv,
    metadata.tsv, sprite.png, projector_config.pbtxt), zipped."""
    s = open_store(state, store)
    tmp = Path(tempfile.mkdtemp(dir=state.folder("cache")))
    try:
        export_projector(s, tmp / "projector", sprite=s.has_thumbnails())
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for f in sorted((tmp / "projector").iterdir()):
                z.write(f, f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Response(buf.getvalue(), media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{s.path.name}-projector.zip"'})


class IndexParams(BaseModel):
    """An approximate index of a store (``store.build_index``)."""
    store: str | None = Field(None, max_length=128)
    kind: Literal["hnsw", "ivf", "auto"] = Field("auto", description="hnsw, ivf, or auto (by the store's size)")


@router.post("/projector/index")
def projector_index(params: IndexParams, state: AppState = Depends(app_state)):
    """Build (and save with the store) an approximate-neighbour index as a job; the result gives its kind
    and its recall@10 measured against exact search."""
    s = open_store(state, params.store)

    def work(job):
        feed = JobFeed(job)
        idx = s.build_index(kind=params.kind, threads=state.threads, progress=feed.progress)
        return {"kind": idx.kind, "recall_at_10": idx.recall_at_10, "seconds": round(idx.build_seconds, 3),
                "rows": len(s)}

    job = state.jobs.submit(job_key("index", store_key(s), params.kind), work, label=f"index of {s.path.name}")
    return {"job": job.id, "status": job.status}
