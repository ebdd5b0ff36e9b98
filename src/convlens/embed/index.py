"""The approximate index (FAISS), every kind in one module: HNSW, IVF, IVF-PQ and ``kind="auto"``.

``build_index`` is the one builder: train on a sample, add the memory-mapped store's blocks chunk by
chunk, measure recall@10 against exact search on held-out rows, save beside the store
(``index-<metric>.faiss``). For large stores (docs/scaling.md):

* ``ivfpq_index``: ``IndexIVFPQ`` with ``nlist`` ~ 2 sqrt(N) coarse cells (capped at 4096 so that
  k-means training stays minutes on a few cores), ``m`` = d/8 sub-quantizers of 8 bits (64 bytes
  per 512-d vector: 1M vectors take 72 MB with their ids, against 2 GB for the raw floats), and
  exact re-ranking (``rerank``) of ``rerank x k`` candidates read from the memory-mapped store,
  which is what lifts recall@10 past 0.95 (PQ distances alone plateau lower).
* ``mmap_flag``: FAISS's read flag that memory-maps an index's codes (``IO_FLAG_MMAP_IFC`` when the
  FAISS build has it, else ``IO_FLAG_MMAP``): IVF inverted lists are mapped, HNSW is read in RAM
  (FAISS cannot map its graph).
* ``auto_kind``: the measured rule for the default kind: HNSW up to 300k rows (and a quarter of
  RAM), IVF-PQ beyond.

* ``build_large_index``: ``build_index`` with the large-store defaults; ``synthetic_vectors``: the
  scale benchmark's reproducible clustered vectors.

``convlens.scale.index`` re-exports these names (their home before; ``scale/`` keeps only the Ray engine).
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConvlensError
from ..files import atomic_write
from .exact import check_metric, exact_search, nonfinite_message
from .vectors import VectorStore, fsync_write

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



# --- approximate index (FAISS) -----------------------------------------------------------------

@dataclass
class AnnIndex:
    """A FAISS index over a store (HNSW, IVF or IVF-PQ), saved beside it as ``index-<metric>.faiss``.

    ``recall_at_10``: measured against exact search at build time on ``sample`` store rows;
    ``search(q, k)`` -> (indices, scores) under the store's metric contract; ``update()`` adds
    vectors committed after the build. ``params["rerank"]`` (IVF-PQ): candidates per result
    re-scored exactly from the store. ``mmapped``: the index's codes are memory-mapped (read-only).
    """

    store: VectorStore
    index: object
    metric: str
    kind: str
    params: dict
    recall_at_10: float | None = None
    build_seconds: float = 0.0
    mmapped: bool = False

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q0 = np.ascontiguousarray(q, dtype=np.float32)
        q = q0
        if self.metric == "cosine":
            q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
        r = int(self.params.get("rerank") or 0)
        s, i = self.index.search(q, k * r if r > 1 else k)
        if r > 1:
            return rerank(self.store, q0, i, k, self.metric)
        if self.metric == "l2":
            s = np.sqrt(np.maximum(s, 0))
        return i.astype(np.int64), s.astype(np.float32)

    def _unit(self, a, norms=None) -> np.ndarray:
        a = np.asarray(a, np.float32)
        if self.metric == "cosine":
            n = np.linalg.norm(a, axis=1) if norms is None else np.asarray(norms, np.float32)
            a = a / np.maximum(n, 1e-30)[:, None]
        return np.ascontiguousarray(a, dtype=np.float32)

    def update(self, save: bool = True) -> int:
        """Add the store rows the index does not hold yet (new shards); returns how many."""
        n0 = self.index.ntotal
        if self.mmapped and n0 < len(self.store):
            raise ConvlensError("this index is memory-mapped (read-only); load it with load_index(..., mmap=False) to update it")
        for start, vec, norms in self.store.blocks(int(self.params.get("chunk_rows", 65536))):
            stop = start + len(vec)
            if stop <= n0:
                continue
            a = max(0, n0 - start)
            self.index.add_with_ids(self._unit(vec[a:], norms[a:]), np.arange(start + a, stop, dtype=np.int64))
        if save:
            self.save()
        return self.index.ntotal - n0

    def set_effort(self, effort: int) -> None:
        import faiss
        inner = faiss.downcast_index(self.index.index if hasattr(self.index, "id_map") else self.index)
        if self.kind == "hnsw":
            inner.hnsw.efSearch = int(effort)
        else:
            inner.nprobe = int(effort)
        self.params["effort"] = int(effort)

    def save(self) -> Path:
        import faiss
        path = self.store.path / f"index-{self.metric}.faiss"
        rec = {"files": [path.name, f"index-{self.metric}.json"]}
        if self.store.manifest.setdefault("indexes", {}).get(self.metric) != rec:  # listed before it is written
            self.store.manifest["indexes"][self.metric] = rec
            self.store.write_manifest()
        atomic_write(path, lambda tmp: faiss.write_index(self.index, str(tmp)))
        info = {"metric": self.metric, "kind": self.kind, "params": self.params, "recall_at_10": self.recall_at_10,
                "count": int(self.index.ntotal), "build_seconds": self.build_seconds}
        fsync_write(self.store.path / f"index-{self.metric}.json", json.dumps(info, indent=1).encode())
        return path


def recall_at_k(approx: np.ndarray, exact: np.ndarray, k: int = 10) -> float:
    """Mean |approx_k & exact_k| / k over queries."""
    return float(np.mean([len(set(a[:k]) & set(e[:k])) / k for a, e in zip(approx, exact)]))


def build_index(store: VectorStore, metric: str = "cosine", kind: str = "hnsw", *, M: int = 32,
                ef_construction: int = 80, target_recall: float = 0.95, sample: int = 200, seed: int = 0,
                threads: int | None = None, save: bool = True, progress=None, nlist: int | None = None,
                pq_m: int | None = None, nbits: int | None = None, rerank: int = 8, train_size: int | None = None,
                chunk_rows: int = 65536) -> AnnIndex:
    """Build an approximate index and measure its recall@10 against exact search.

    kind "hnsw" (``IndexHNSWFlat``, M links, the default; benchmarks/bench_embed.py: recall@10 0.987 at
    5.5x the exact query rate on 100k x 512), "ivf" (``IndexIVFFlat``, 4 sqrt(N) lists), "ivfpq"
    (``IndexIVFPQ``, ``nlist`` cells, ``pq_m`` x ``nbits`` codes, the ``rerank x k`` best candidates
    re-scored exactly from the store: for stores too large for RAM, see the module doc) or
    "auto" (``auto_kind``: HNSW up to 300k rows, else IVF-PQ), wrapped in an
    ``IndexIDMap`` (ids = store rows). IVF kinds are trained on a random sample (``train_size``
    rows); vectors are added ``chunk_rows`` at a time from the memory-mapped shards, so the build
    holds the index plus one chunk. Recall is measured honestly: ``sample`` random store rows are
    held out of the index while it is measured, used as outside queries against the exact top-10
    of the other rows, and added afterwards. The search effort (efSearch / nprobe) is doubled until
    recall@10 reaches ``target_recall`` (or the effort hits its cap); effort and recall are saved.
    ``progress(rows_added, n)`` after each chunk.
    """
    import faiss
    check_metric(metric)
    if kind not in KINDS:
        raise ConvlensError(f"unknown index kind '{kind}'; choose {', '.join(KINDS)}")
    if not 0 < target_recall <= 1:
        raise ConvlensError(f"target_recall (--target-recall) must be in (0, 1], got {target_recall}")
    for name, v in (("sample", sample), ("nlist", nlist), ("pq_m", pq_m), ("rerank", rerank), ("chunk_rows", chunk_rows),
                    ("threads", threads), ("M", M), ("ef_construction", ef_construction)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
            flag = {"sample": "queries"}.get(name, name.replace("_", "-"))
            raise ConvlensError(f"{name} (--{flag}) must be an integer >= 1, got {v!r}")
    if kind == "auto":
        kind = auto_kind(len(store), store.dim, M)
    if threads:
        faiss.omp_set_num_threads(int(threads))
    t0 = time.perf_counter()
    d, n = store.dim, len(store)
    if n < 2:
        raise ConvlensError(f"an index needs at least 2 vectors, the store has {n}; embed more images first")
    if nlist is not None and nlist > n:
        raise ConvlensError(f"nlist (--nlist) {nlist} exceeds the store's {n} vectors (k-means needs a point per cell); "
                            f"pass --nlist {max(1, n // 39)} or leave it out")
    fm = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
    rng = np.random.default_rng(seed)
    if kind == "hnsw":
        inner = faiss.IndexHNSWFlat(d, M, fm)
        inner.hnsw.efConstruction = ef_construction
        params = {"M": M, "ef_construction": ef_construction}
    else:
        if kind == "ivf":
            nlist = nlist or max(1, min(n // 39, int(4 * np.sqrt(n))))
            quant = faiss.IndexFlatIP(d) if metric == "cosine" else faiss.IndexFlatL2(d)
            inner = faiss.IndexIVFFlat(quant, d, nlist, fm)
            inner.__dict__["_quant"] = quant
            params, n_train = {"nlist": nlist}, min(n, train_size or 256 * nlist)
        else:
            inner, params, n_train = ivfpq_index(d, n, fm, nlist, pq_m, nbits, train_size)
            params["rerank"] = int(rerank)
        train = store.take(np.sort(rng.choice(n, size=n_train, replace=False)))
        if metric == "cosine":
            train /= np.maximum(np.linalg.norm(train, axis=1, keepdims=True), 1e-30)
        inner.train(train)
        del train
    params["chunk_rows"] = int(chunk_rows)
    index = faiss.IndexIDMap(inner)
    index.__dict__["_inner"] = inner  # keep the wrapped index alive
    ann = AnnIndex(store, index, metric, kind, params)
    held = np.sort(rng.choice(n, size=min(n // 2, sample), replace=False))
    is_held = np.zeros(n, bool)
    is_held[held] = True
    for start, vec, norms in store.blocks(int(chunk_rows)):
        keep = ~is_held[start:start + len(vec)]
        ids = np.arange(start, start + len(vec))[keep]
        ann.index.add_with_ids(ann._unit(np.asarray(vec)[keep], np.asarray(norms)[keep]), ids)
        if progress:
            progress(start + len(vec), n)
    q = store.take(held)
    ex_all, _ = exact_search(store, q, min(n, 10 + len(held) + 1), metric, held, threads=threads)
    ex_i = np.stack([[j for j in r if not is_held[j]][:10] for r in ex_all])
    effort = 16 if kind == "hnsw" else 1
    cap = 1024 if kind == "hnsw" else min(params["nlist"], 1024)
    while True:
        ann.set_effort(effort)
        ann.recall_at_10 = recall_at_k(ann.search(q, 10)[0], ex_i, 10)
        if ann.recall_at_10 >= target_recall or effort >= cap:
            break
        effort = min(cap, effort * 2)
    ann.index.add_with_ids(ann._unit(q), held.astype(np.int64))
    ann.build_seconds = time.perf_counter() - t0
    if save:
        ann.save()
    return ann


def has_index(store, metric: str = "cosine") -> bool:
    return getattr(store, "path", None) is not None and (store.path / f"index-{metric}.faiss").exists()


def load_index(store: VectorStore, metric: str = "cosine", mmap: bool = True) -> AnnIndex:
    """The saved index of a store (new shards are added to it first). ``mmap``: memory-map the
    index's codes where FAISS can (IVF inverted lists; ``mmap_flag``), so a large index
    costs page cache, not process memory; a stale index is updated in RAM, saved, then mapped."""
    import faiss
    path = store.path / f"index-{metric}.faiss"
    if not path.exists():
        raise ConvlensError(f"no {metric} index in {store.path}; build one with store.build_index(metric='{metric}') "
                            "or `convlens index STORE`")
    info = json.loads((store.path / f"index-{metric}.json").read_text())
    if mmap and info.get("count", 0) < len(store):
        load_index(store, metric, mmap=False)  # adds the new shards and saves
        info = json.loads((store.path / f"index-{metric}.json").read_text())
    flag = 0
    if mmap and info["kind"] != "hnsw":
        flag = mmap_flag()
    ann = AnnIndex(store, faiss.read_index(str(path), flag), metric, info["kind"], info["params"], info["recall_at_10"],
                   info.get("build_seconds", 0.0), mmapped=bool(flag))
    if "effort" in ann.params:
        ann.set_effort(ann.params["effort"])
    if ann.index.ntotal < len(store):
        ann.update()
    return ann


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
