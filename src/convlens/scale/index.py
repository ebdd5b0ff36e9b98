"""Million-scale search: ``build_large_index`` and the benchmark's synthetic vectors.

The FAISS code has one owner, ``convlens.embed.index`` (every kind, ``auto``, PQ shapes, mmap,
re-ranking); its names (``ivfpq_index``, ``mmap_flag``, ``auto_kind``, ``rerank``, ``KINDS``...) are
re-exported here, where they lived before. ``synthetic_vectors``: the benchmark's data, clustered on
a low-dimensional manifold.
"""
from __future__ import annotations

import math

import numpy as np

# the FAISS index's names, importable from here as before
from ..embed.index import (AUTO_HNSW_MAX_ROWS, AUTO_HNSW_RAM_FRACTION, KINDS, auto_kind, build_index,  # noqa: F401
                           hnsw_bytes, ivfpq_index, mmap_flag, physical_memory, pq_shape, rerank)


def synthetic_vectors(n: int, d: int = 512, *, intrinsic: int = 32, centres: int = 1000, noise: float = 0.05,
                      seed: int = 0, start: int = 0) -> np.ndarray:
    """Rows ``start`` .. ``start + n`` of a reproducible synthetic embedding set: ``centres`` Gaussian
    clusters in an ``intrinsic``-dimensional space, mapped to ``d`` dimensions by a fixed random
    linear map, plus isotropic noise (CNN embeddings have a low intrinsic dimension; i.i.d. Gaussian
    vectors in 512-d would be a worst case no index meets). Any block can be made on its own."""
    base = np.random.default_rng(seed)
    proj = base.standard_normal((intrinsic, d)).astype(np.float32) / math.sqrt(intrinsic)
    c = base.standard_normal((centres, intrinsic)).astype(np.float32) * 3
    rng = np.random.default_rng([seed, start])
    z = c[rng.integers(0, centres, n)] + rng.standard_normal((n, intrinsic)).astype(np.float32)
    return (z @ proj + noise * rng.standard_normal((n, d)).astype(np.float32)).astype(np.float32)


def build_large_index(store, kind: str = "auto", metric: str = "cosine", **kw):
    """``build_index`` with the large-store defaults: ``kind="auto"`` (``auto_kind``), IVF-PQ with
    exact re-ranking from the memory-mapped store. Returns the ``AnnIndex`` (``recall_at_10`` measured)."""
    return build_index(store, metric, kind, **kw)
