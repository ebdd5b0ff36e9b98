"""The exact kNN graph of a store (cached beside it; t-SNE, UMAP and near duplicates read it) and
near-duplicate pairs."""
from __future__ import annotations

import numpy as np

from ..errors import ConvlensError
from .exact import check_k, check_metric, exact_search
from .vectors import VectorStore

def knn_graph(store: VectorStore, k: int = 15, metric: str = "cosine", *, chunk: int = 4096,
              threads: int | None = None, cache: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(indices (N, k), scores (N, k)) of every row's k nearest other rows (exact), cached in the store.

    A cached graph with at least ``k`` columns is reused (sliced); t-SNE, UMAP and near-duplicates
    all read this one graph.
    """
    check_metric(metric)
    check_k(k)
    if len(store) < 2:
        raise ConvlensError(f"a kNN graph needs at least 2 vectors, the store has {len(store)}; embed more images first")
    for name, rec in store.manifest.get("projections", {}).items():
        if name.startswith(f"knn-{metric}-") and name.endswith("-idx") and rec.get("k", 0) >= k and cache:
            i = store.load_array(name)
            s = store.load_array(name[:-4] + "-score")
            if i is not None and s is not None:
                return i[:, :k], s[:, :k]
    n = len(store)
    k = min(k, n - 1)
    idx = np.empty((n, k), np.int64)
    sc = np.empty((n, k), np.float32)
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        idx[a:b], sc[a:b] = exact_search(store, store.vectors(a, b), k, metric, np.arange(a, b), threads=threads)
    if cache:
        store.save_array(f"knn-{metric}-k{k}-idx", idx, {"k": k, "metric": metric})
        store.save_array(f"knn-{metric}-k{k}-score", sc, {"k": k, "metric": metric})
    return idx, sc


def near_duplicates(store: VectorStore, threshold: float = 0.95, k: int = 10) -> list[tuple[int, int, float]]:
    """Pairs (i, j, cosine) with i < j and cosine >= ``threshold``, from the cached kNN graph
    (so at most ``k`` partners per image), most similar first. Exact file duplicates are in
    ``store.report().duplicates``."""
    if not -1 <= threshold <= 1:
        raise ConvlensError(f"threshold (--threshold) is a cosine similarity in [-1, 1], got {threshold}")
    idx, sc = knn_graph(store, k, "cosine")
    pairs = {}
    for i in range(len(idx)):
        for j, s in zip(idx[i], sc[i]):
            if s >= threshold:
                a, b = (i, int(j)) if i < j else (int(j), i)
                pairs[(a, b)] = max(pairs.get((a, b), -2.0), float(s))
    return sorted(((a, b, s) for (a, b), s in pairs.items()), key=lambda t: (-t[2], t[0], t[1]))
