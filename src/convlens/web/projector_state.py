"""What the projector's routes share: the stores a server shows, their computed maps, the map parameters.

Stores are the server's ``--store`` and the store folders under ``<data folder>/stores/``, named by
their folder name; every name goes through ``safe_child`` (no ``..``, no symlink escape). An opened
store is kept (reopened when its manifest changes on disk); a computed map is kept in memory (the 16
most recent maps and atlas orders) and saved with the store, so a repeated request is instant.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
from fastapi import HTTPException, Query
from pydantic import BaseModel, Field

from ..embed.atlas import atlas_order
from ..embed.project import ProjectConfig, projection_name
from ..embed import EmbeddingStore, Projection
from ..embed.stores import find_stores, manifest_mtime, reopen
from ..errors import ConvlensError
from .jobs import job_key
from .state import AppState, safe_child, safe_name

MAX_K = 100
MAPS_KEPT = 16                  # computed maps and atlas orders kept in memory

StoreParam = Query(None, description="Store name: the server's --store folder name, or a folder under "
                                     "<data folder>/stores/. Default: the server's store (or the first one).",
                   max_length=128)
Method = Literal["pca", "tsne", "umap"]
Dims = Literal[2, 3]


# --- stores ---------------------------------------------------------------------------------------

def stores_dir(state: AppState) -> Path:
    """``<data folder>/stores``: drop store folders here to browse them by name."""
    d = state.data_dir / "stores"
    d.mkdir(exist_ok=True)
    return d


def store_names(state: AppState) -> list[str]:
    """The stores this server shows: its ``--store``, then the store folders under ``stores_dir``
    that stay inside it (a symlink leading outside is not offered)."""
    names = [state.store.name] if state.store is not None else []
    root = stores_dir(state)
    for p in find_stores(root):
        try:
            safe_child(root, p.name)
        except ConvlensError:
            continue
        if p.name not in names:
            names.append(p.name)
    return names


def store_path(state: AppState, name: str | None) -> Path:
    """The folder of the store a request names (default: the first one), or a 404 listing them."""
    if name in (None, ""):
        names = store_names(state)
        if not names:
            raise HTTPException(404, "no embedding store: start the server with --store STORE, or put a store folder "
                                     f"(made by `convlens embed`) under {stores_dir(state)}")
        name = names[0]
    if state.store is not None and name == state.store.name:
        return state.store
    path = safe_child(stores_dir(state), safe_name(name, "store name"), what="store name")
    if not (path / "manifest.json").is_file():
        raise HTTPException(404, f"no store '{name}'; known stores: {', '.join(store_names(state)) or 'none'} "
                                 "(GET /api/projector/stores)")
    return path


def open_store(state: AppState, name: str | None) -> EmbeddingStore:
    """The named ``EmbeddingStore`` (opened once, reopened when its manifest changes on disk)."""
    path = store_path(state, name)
    mtime = manifest_mtime(path)

    def make(old):
        store = reopen(old[1]) if old is not None else EmbeddingStore.open(path)
        store.metadata()  # read once here, not by several atlas requests at once
        return mtime, store
    return state.cache("projector.stores", 64).get_or_make(path, make, valid=lambda hit: hit[0] == mtime)[1]


def store_key(store) -> str:
    """A key naming the store's current contents (its folder, size and shards)."""
    return job_key(str(store.path.resolve()), len(store), store.manifest.get("shards"))


def check_row(store, i: int, what: str = "index") -> int:
    if not 0 <= i < len(store):
        raise ConvlensError(f"{what} {i} out of range: the store has {len(store)} vectors (0..{len(store) - 1})")
    return i


# --- map parameters and computed maps -------------------------------------------------------------

_P = ProjectConfig()  # the defaults of convlens.project and the CLI's `convlens project` (one source)


class ProjectParams(BaseModel):
    """Parameters of a 2-D map (``ProjectConfig``'s, with the explorer's caps; only the chosen method's are used)."""
    store: str | None = Field(None, max_length=128, description="store name (default: the server's store)")
    method: Method = Field(_P.method, description="pca (exact), tsne (openTSNE) or umap (umap-learn)")
    seed: int = Field(_P.seed, ge=0, le=2 ** 31 - 1, description="seed of every random choice")
    perplexity: float = Field(_P.perplexity, ge=2, le=100, description="t-SNE perplexity")
    n_iter: int = Field(_P.n_iter, ge=50, le=2000, description="t-SNE iterations after early exaggeration")
    n_neighbors: int = Field(_P.n_neighbors, ge=2, le=200, description="UMAP neighbours")
    dims: Dims = Field(2, description="2 (a flat map) or 3 (a 3-D map, for the rotatable view)")


def map_query(store: str | None = StoreParam, method: Method = Query(_P.method, description="pca, tsne or umap"),
              seed: int = Query(_P.seed, ge=0, le=2 ** 31 - 1), perplexity: float = Query(_P.perplexity, ge=2, le=100),
              n_iter: int = Query(_P.n_iter, ge=50, le=2000),
              n_neighbors: int = Query(_P.n_neighbors, ge=2, le=200),
              dims: int = Query(2, ge=2, le=3, description="2 or 3 (the map's dimensions)")) -> ProjectParams:
    """``ProjectParams`` from a GET request's query (use as ``p: ProjectParams = Depends(map_query)``)."""
    return ProjectParams(store=store, method=method, seed=seed, perplexity=perplexity, n_iter=n_iter,
                         n_neighbors=n_neighbors, dims=dims)


def method_kw(p: ProjectParams) -> dict:
    """The chosen method's own parameters."""
    if p.method == "tsne":
        return {"perplexity": float(p.perplexity), "n_iter": int(p.n_iter)}
    if p.method == "umap":
        return {"n_neighbors": int(p.n_neighbors)}
    return {}


def map_key(store, p: ProjectParams) -> str:
    return job_key("projection", store_key(store), p.method, p.seed, method_kw(p), *(() if p.dims == 2 else (p.dims,)))


def params_header(proj) -> str:
    """The method and parameters of a map as one line of JSON (the ``X-Projection`` header)."""
    return json.dumps({"method": proj.method, **proj.params}, default=float, ensure_ascii=True)


def _maps(state: AppState):
    return state.cache("projector.maps", MAPS_KEPT)


def remember(state: AppState, key, value) -> None:
    _maps(state).put(key, value)


def saved_projection(state: AppState, store, p: ProjectParams) -> Projection | None:
    """A map computed before (in memory, or saved in the store), else None."""
    key = map_key(store, p)
    hit = _maps(state).get(key)
    if hit is not None:
        return hit
    params = {"method": p.method, "seed": int(p.seed), "metric": store.manifest.get("metric", "cosine"), **method_kw(p)}
    if p.dims != 2:
        params["dims"] = p.dims   # as convlens.project keys it
    name = projection_name(p.method, p.dims)
    coords = store.load_array(name, {"key": params})
    if coords is None:
        return None
    rec = store.manifest["projections"][name]
    proj = Projection(coords, p.method, rec.get("params", params), 0.0)
    remember(state, key, proj)
    return proj


def projection(state: AppState, store, p: ProjectParams) -> Projection:
    """The computed map, or a 409 saying to compute it first."""
    proj = saved_projection(state, store, p)
    if proj is None:
        raise HTTPException(409, f"the {p.method} map with these parameters is not computed yet; "
                                 "POST /api/projector/project with the same parameters first")
    return proj


def map_order(state: AppState, store, p: ProjectParams) -> np.ndarray:
    """The atlas order of a computed map (``convlens.embed.atlas.atlas_order``), kept with the maps."""
    proj = projection(state, store, p)
    key = ("order", map_key(store, p))
    hit = _maps(state).get(key)
    if hit is None:
        hit = atlas_order(proj.coords[:, :2])
        remember(state, key, hit)
    return hit


# --- points: what a row is, and finding rows by name --------------------------------------------

def row_info(store, i: int) -> dict:
    """Row ``i``'s stored path (or name), label and image size."""
    meta = store.metadata()
    get = lambda c: meta.column(c)[i].as_py()  # noqa: E731
    return {"index": i, "path": get("path"), "label": get("label"), "width": get("width"), "height": get("height")}


def search_rows(store, query: str) -> np.ndarray:
    """Rows whose path or label contains ``query`` (case-insensitive), in row order; ``#12`` is row 12."""
    q = query.strip().lower()
    if q.startswith("#") and q[1:].isdigit():
        i = int(q[1:])
        return np.array([i] if i < len(store) else [], np.int64)
    paths, labels = store.column("path"), store.column("label")
    return np.array([i for i, (p, lab) in enumerate(zip(paths, labels))
                     if q in (p or "").lower() or q in (lab or "").lower()], np.int64)
