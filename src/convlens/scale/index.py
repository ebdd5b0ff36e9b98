"""Million-scale search: the FAISS IVF-PQ index (and the choices behind ``kind="auto"``).

``convlens.embed.build_index`` does the work for every kind (one builder: train on a sample, add
the memory-mapped store's blocks chunk by chunk, measure recall@10 against exact search on held-out
rows, save); this module holds what is specific to large stores:

* ``ivfpq_index``: ``IndexIVFPQ`` with ``nlist`` ~ 2 sqrt(N) coarse cells (capped at 4096 so that
  k-means training stays minutes on a few cores), ``m`` = d/8 sub-quantizers of 8 bits (64 bytes
  per 512-d vector: 1M vectors take 72 MB with their ids, against 2 GB for the raw floats), and
  exact re-ranking of ``rerank x k`` candidates read from the memory-mapped store, which is what
  lifts recall@10 past 0.95 (PQ distances alone plateau lower).
* ``mmap_flag``: FAISS's read flag that memory-maps an index's codes (``IO_FLAG_MMAP_IFC`` when the
  FAISS build has it, else ``IO_FLAG_MMAP``): IVF inverted lists are mapped, HNSW is read in RAM
  (FAISS cannot map its graph).
* ``auto_kind``: the measured rule for the default kind (docs/scaling.md): HNSW up to 300k rows
  (and a quarter of RAM), IVF-PQ beyond.
* ``synthetic_vectors``: the benchmark's data, clustered on a low-dimensional manifold.
"""
from __future__ import annotations

import math
import os

import numpy as np

from ..errors import ConvlensError

KINDS = ("auto", "hnsw", "ivf", "ivfpq")
# kind="auto", from benchmarks/bench_scale.py on this 2-core machine (docs/scaling.md), both at
# recall@10 >= 0.95: at 100k x 512 HNSW answers several times more queries/s than IVF-PQ with exact
# re-ranking and builds in about the same time; at 1M x 512 IVF-PQ builds 1.5-6.4x faster (two
# runs), needs ~540 MB of memory over its baseline against ~3,000 MB, its file is 27x smaller
# (81 MB vs 2.2 GB) and memory-mapped, and the two query rates swapped order between runs. Between
# the two sizes nothing was measured: the switch is put at 300k rows, and HNSW is also never
# chosen when it would take more than a quarter of the machine's memory.
AUTO_HNSW_MAX_ROWS = 300_000
AUTO_HNSW_RAM_FRACTION = 0.25


def physical_memory() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 * 1024 ** 3


def hnsw_bytes(n: int, d: int, M: int = 32) -> int:
    """HNSW's resident size: the float32 vectors plus ~2 M int32 links per vector (level 0)."""
    return n * (4 * d + 8 * M)


def auto_kind(n: int, d: int, M: int = 32, ram: int | None = None) -> str:
    """"hnsw" up to ``AUTO_HNSW_MAX_ROWS`` rows when it takes at most ``AUTO_HNSW_RAM_FRACTION`` of
    ``ram`` (default: this machine's memory), else "ivfpq"."""
    ram = physical_memory() if ram is None else ram
    small = n <= AUTO_HNSW_MAX_ROWS and hnsw_bytes(n, d, M) <= AUTO_HNSW_RAM_FRACTION * ram
    return "hnsw" if small else "ivfpq"


def mmap_flag() -> int:
    import faiss
    return int(getattr(faiss, "IO_FLAG_MMAP_IFC", faiss.IO_FLAG_MMAP))


def pq_shape(d: int, n_train: int, m: int | None = None, nbits: int | None = None) -> tuple[int, int]:
    """(m, nbits): m sub-quantizers dividing d (default the largest divisor <= d / 8), nbits = 8 when
    the training sample has the 39 x 256 points FAISS asks for, fewer below (small stores)."""
    if m is None:
        m = max(k for k in range(1, max(1, d // 8) + 1) if d % k == 0)
    if d % m:
        raise ConvlensError(f"--pq-m {m} must divide the dimension {d}")
    if nbits is None:
        nbits = int(min(8, max(4, math.floor(math.log2(max(16, n_train // 39))))))
    return int(m), int(nbits)


def ivfpq_index(d: int, n: int, metric_type: int, nlist: int | None = None, m: int | None = None,
                nbits: int | None = None, train_size: int | None = None):
    """(IndexIVFPQ (untrained), params, train_size) for ``n`` vectors of dimension ``d``."""
    import faiss
    if nlist is None:
        nlist = int(max(1, min(4096, n // 39, round(2 * math.sqrt(n)))))
    train_size = int(min(n, train_size or max(64 * nlist, 10_000)))
    m, nbits = pq_shape(d, train_size, m, nbits)
    quant = faiss.IndexFlatIP(d) if metric_type == faiss.METRIC_INNER_PRODUCT else faiss.IndexFlatL2(d)
    index = faiss.IndexIVFPQ(quant, d, int(nlist), m, nbits, metric_type)
    index.__dict__["_quant"] = quant  # keep the quantizer alive
    return index, {"nlist": int(nlist), "m": m, "nbits": nbits, "train_size": train_size}, train_size


def rerank(store, q: np.ndarray, cand: np.ndarray, k: int, metric: str, chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Exact scores of candidate rows ``cand`` (m, c) (-1 = none) read from the store; the best ``k``
    per query under the store's metric contract (cosine similarity desc, L2 distance asc)."""
    m, c = cand.shape
    ok = cand >= 0
    flat = np.unique(cand[ok])
    if not len(flat):
        return np.full((m, k), -1, np.int64), np.full((m, k), np.nan, np.float32)
    vec = np.ascontiguousarray(store.take(flat), dtype=np.float32)  # only the candidates' rows are read
    if not np.isfinite(vec).all():  # a damaged shard: never a NaN score
        from ..embed.search import nonfinite_message
        raise ConvlensError(nonfinite_message(store, int(flat[np.nonzero(~np.isfinite(vec).all(1))[0][0]])))
    pos = np.searchsorted(flat, np.where(ok, cand, flat[0]))
    s = np.empty((m, c), np.float32)
    if metric == "cosine":
        qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
        inv = 1.0 / np.maximum(np.sqrt(np.einsum("ij,ij->i", vec, vec)), 1e-30)
        for a in range(0, m, chunk):
            s[a:a + chunk] = np.einsum("md,mcd->mc", qn[a:a + chunk], vec[pos[a:a + chunk]]) * inv[pos[a:a + chunk]]
        key = np.where(ok, -s, np.inf)
    else:
        for a in range(0, m, chunk):
            diff = vec[pos[a:a + chunk]] - q[a:a + chunk, None, :]
            s[a:a + chunk] = np.sqrt(np.einsum("mcd,mcd->mc", diff, diff))
        key = np.where(ok, s, np.inf)
    order = np.argsort(key, axis=1, kind="stable")[:, :k]
    idx = np.take_along_axis(np.where(ok, cand, -1), order, 1)
    sc = np.take_along_axis(s, order, 1)
    return idx.astype(np.int64), sc.astype(np.float32)


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
    from ..embed.search import build_index
    return build_index(store, metric, kind, **kw)
