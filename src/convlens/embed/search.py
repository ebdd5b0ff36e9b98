"""Nearest neighbours of queries in a store: a query (store rows, image paths, image tensors or
vectors) resolved to vectors, embedded like the store's images when it is an image, then answered
by exact search (``exact.py``, the default) or a FAISS index (``index.py``).

The metric contract (``exact.py``): ``"cosine"`` scores are similarities in [-1, 1] (larger =
closer), ``"l2"`` scores are Euclidean distances (smaller = closer). The kNN graph and near
duplicates are in ``knn.py``; this module re-exports the names it used to hold.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch

from ..drivers.forward import batched_forward
from ..errors import ConvlensError
from ..images.io import fit
from .decode import decode_file, pool
# importable from here as before: exact search, the FAISS index, the kNN graph
from .exact import (METRICS, TOPK_CHUNK, _normalize_rows, block_topk, check_k, check_metric,  # noqa: F401
                    exact_search, nonfinite_message, nonfinite_rows)
from .index import AnnIndex, build_index, has_index, load_index, recall_at_k  # noqa: F401
from .knn import knn_graph, near_duplicates  # noqa: F401
from .tiles import neighbor_figure
from .vectors import VectorStore


@dataclass
class Neighbors:
    """k nearest neighbours of m queries.

    Attributes:
        indices: (m, k) int64 store rows, nearest first. scores: (m, k) float32 (cosine similarity,
        or L2 distance). metric: "cosine" | "l2". queries: the store rows of the queries (-1 when
        the query was an outside image or vector). exact: False when an ANN index answered.
    """

    indices: np.ndarray
    scores: np.ndarray
    metric: str
    queries: list[int]
    store: VectorStore | None = field(default=None, repr=False)
    exact: bool = True

    def paths(self, row: int = 0) -> list[str]:
        col = self.store.column("path")
        return [col[int(i)] for i in self.indices[row]]

    def rows(self, row: int = 0) -> list[tuple[int, float]]:
        return [(int(i), float(s)) for i, s in zip(self.indices[row], self.scores[row])]

    def figure(self, tile: int = 96, query_images=None):
        """The lecture's figure: each query in the first column, its neighbours along the row."""
        return neighbor_figure(self, tile=tile, query_images=query_images)


def query_vectors(store: VectorStore, query, model=None) -> tuple[np.ndarray, list[int]]:
    """Resolve a query to vectors (m, dim) and store rows (-1 for outside queries).

    ``query``: an int / list of ints (store rows), a path or list of paths, an image tensor
    (N, 3, H, W), or vectors (dim,) / (m, dim) as numpy or torch.
    """
    if isinstance(query, (int, np.integer)) or (isinstance(query, (list, tuple)) and query
                                                 and all(isinstance(q, (int, np.integer)) for q in query)):
        rows = [int(query)] if isinstance(query, (int, np.integer)) else [int(q) for q in query]
        bad = [r for r in rows if not 0 <= r < len(store)]
        if bad:
            raise ConvlensError(f"index {bad[0]} out of range: the store has {len(store)} vectors (0..{len(store) - 1})")
        return store.take(rows), rows
    if isinstance(query, (str, os.PathLike)) or (isinstance(query, (list, tuple)) and query
                                                  and all(isinstance(q, (str, os.PathLike)) for q in query)):
        paths = [query] if isinstance(query, (str, os.PathLike)) else list(query)
        size = query_size(store)
        imgs = []
        for p in paths:
            d = decode_file(str(p), size)  # exactly as the store's files were decoded
            if not d["ok"]:
                raise ConvlensError(f"{p}: not a readable image ({d['reason']})")
            imgs.append(torch.from_numpy(d["rgb"].transpose(2, 0, 1).astype(np.float32) / 255)[None])
        return embed_query_images(store, imgs, model), [-1] * len(imgs)
    if isinstance(query, torch.Tensor) and query.ndim == 4:
        return embed_query_images(store, list(query[:, None].unbind(0)), model), [-1] * query.shape[0]
    v = query.detach().cpu().numpy() if isinstance(query, torch.Tensor) else np.asarray(query)
    v = v.astype(np.float32).reshape(-1, store.dim) if v.size % store.dim == 0 and v.ndim <= 2 else None
    if v is None:
        raise ConvlensError(f"cannot use {type(query).__name__} as a query: pass a store index, an image path, "
                            f"an image tensor (N, 3, H, W) or vectors of dimension {store.dim}")
    return v, [-1] * len(v)


def query_size(store) -> tuple[int, int]:
    """The input size the store's images were embedded at (an image query is embedded the same way)."""
    pre = (getattr(store, "manifest", None) or {}).get("preprocessing") or {}
    if "size" not in pre or not store.manifest.get("layer"):
        raise ConvlensError("this store was made from vectors (no model, layer or input size recorded): query it with "
                            "store rows or vectors, not images")
    return tuple(pre["size"])


def store_model(store: VectorStore, model=None):
    """The model a store was made with (reloaded by name and weights when not given)."""
    if model is not None:
        return model
    from ..models import load_model  # looked up per call: a patched convlens.models.load_model applies
    w = store.manifest.get("weights")
    cache = store.__dict__.setdefault("_model", {})
    if "m" not in cache:
        try:
            if w in (None, "None") or str(w).startswith("random"):  # "random(seed=0)": seeded random weights
                seed = int("".join(ch for ch in str(w) if ch.isdigit()) or 0)
                cache["m"] = load_model(store.manifest["model"], weights=None, seed=seed)
            else:
                cache["m"] = load_model(store.manifest["model"], weights=w)
        except Exception as e:  # noqa: BLE001
            raise ConvlensError(f"cannot reload the store's model {store.manifest['model']} ({e}); pass model=") from None
    return cache["m"]


def embed_query_images(store: VectorStore, images, model=None) -> np.ndarray:
    """Embed outside images exactly as the store's images were (same model, layer, resize, pooling)."""
    size = query_size(store)
    m = store_model(store, model)
    layer = store.manifest["layer"]
    x = torch.cat([fit(t if t.ndim == 4 else t[None], size) for t in images])
    vecs = [pool(b.activations[layer]).numpy() for b in batched_forward(m, x, layer, size=None)]
    return np.concatenate(vecs).astype(np.float32)


def neighbors(store: VectorStore, query, k: int = 10, metric: str = "cosine", *, index=None,
              exclude_self: bool = True, model=None, threads: int | None = None) -> Neighbors:
    """The ``k`` nearest store rows to each query (exact by default; ``index=`` an ``AnnIndex`` or
    True for the saved one).

    Args:
        query: a store row or rows, an image path or paths, an image tensor (N, 3, H, W), or
            vectors (dim,) / (m, dim).
        metric: "cosine" (similarity in [-1, 1], larger first) or "l2" (distance, smaller first).
        exclude_self: leave a store row out of its own neighbours.
    Example:
        >>> nb = store.neighbors(0, k=5); nb.indices[0], nb.scores[0]
    """
    check_metric(metric)
    check_k(k)
    if len(store) - (1 if exclude_self else 0) < 1:
        raise ConvlensError(f"the store has {len(store)} vector(s): no neighbours to find; embed more images first")
    q, rows = query_vectors(store, query, model)
    excl = np.array(rows) if exclude_self and any(r >= 0 for r in rows) else None
    if index is not None:
        idx = load_index(store, metric) if index is True else index
        if idx.metric != metric:
            raise ConvlensError(f"the index was built for {idx.metric}; pass metric='{idx.metric}' or build another")
        i, s = idx.search(q, k + (1 if excl is not None else 0))
        if excl is not None:
            keep = [[j for j in range(i.shape[1]) if i[r, j] != excl[r]][:k] for r in range(len(i))]
            i = np.stack([i[r, keep[r]] for r in range(len(i))])
            s = np.stack([s[r, keep[r]] for r in range(len(s))])
        return Neighbors(i, s, metric, rows, store, exact=False)
    i, s = exact_search(store, q, k, metric, excl, threads=threads)
    return Neighbors(i, s, metric, rows, store)
