"""Nearest neighbours of queries in a store: a query (store rows, image paths, image tensors or
vectors) resolved to vectors (``query.py``: embedded like the store's images when it is an image),
then answered by exact search (``exact.py``, the default) or a FAISS index (``index.py``).

The metric contract (``exact.py``): ``"cosine"`` scores are similarities in [-1, 1] (larger =
closer), ``"l2"`` scores are Euclidean distances (smaller = closer). The kNN graph and near
duplicates are in ``knn.py``; this module re-exports the names it used to hold.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConvlensError
# importable from here as before: exact search, the FAISS index, the kNN graph, query embedding
from .exact import (METRICS, TOPK_CHUNK, _normalize_rows, block_topk, check_k, check_metric,  # noqa: F401
                    exact_search, nonfinite_message, nonfinite_rows, normalize_rows)
from .index import AnnIndex, build_index, has_index, load_index, recall_at_k  # noqa: F401
from .knn import knn_graph, near_duplicates  # noqa: F401
from .query import embed_query_images, query_size, query_vectors, store_model  # noqa: F401
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
