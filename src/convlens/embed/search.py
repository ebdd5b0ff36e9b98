"""Nearest neighbours in a store: exact blocked search (the default), an approximate FAISS index,
the cached kNN graph, and near-duplicate pairs.

One metric contract everywhere: ``"cosine"`` scores are similarities in [-1, 1] (larger = closer),
``"l2"`` scores are Euclidean distances (smaller = closer). Exact search streams the store's
memory-mapped shards in blocks: ``S = Q_hat @ B^T / |b|`` (cosine, with the stored norms) or
``D^2 = |q|^2 + |b|^2 - 2 q.b`` (L2), then a running top-k merge; memory is bounded by
``query_chunk x block_rows`` scores and no normalized copy of the vectors is ever made.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import ConvlensError
from .store import EmbeddingStore, as_torch

METRICS = ("cosine", "l2")


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ConvlensError(f"unknown metric '{metric}'; choose cosine (a similarity in [-1, 1]) or l2 (a distance)")
    return metric


def check_k(k, name: str = "k") -> int:
    """A neighbour count: an integer >= 1 (``--k 0`` would print empty results)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConvlensError(f"{name} (--{name}) must be an integer >= 1, got {k!r}")
    return int(k)


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
    store: EmbeddingStore | None = field(default=None, repr=False)
    exact: bool = True

    def paths(self, row: int = 0) -> list[str]:
        col = self.store.column("path")
        return [col[int(i)] for i in self.indices[row]]

    def rows(self, row: int = 0) -> list[tuple[int, float]]:
        return [(int(i), float(s)) for i, s in zip(self.indices[row], self.scores[row])]

    def figure(self, tile: int = 96, query_images=None):
        """The lecture's figure: each query in the first column, its neighbours along the row."""
        from .maps import neighbor_figure
        return neighbor_figure(self, tile=tile, query_images=query_images)


def _normalize_rows(q: torch.Tensor) -> torch.Tensor:
    return q / q.norm(dim=1, keepdim=True).clamp_min(1e-30)


TOPK_CHUNK = 64  # columns per chunk in ``block_topk``'s first pass


def block_topk(s: torch.Tensor, k: int, chunk: int = TOPK_CHUNK) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.topk(s, k, dim=1)`` (values, column indices) of a score block, about 2x cheaper for
    wide blocks: the k largest entries of a row lie in the k chunks of ``chunk`` columns with the
    largest maxima (a chunk holding one of them has a maximum at least that large, and fewer than
    k chunks can beat it), so one max-reduction over the block picks k chunks and the exact top-k
    runs on k x ``chunk`` entries per row. Ties may pick other columns of equal score."""
    m, n = s.shape
    k = min(k, n)
    if n % chunk or n < 4 * k * chunk or not s.is_contiguous():
        return torch.topk(s, k, dim=1)
    blocks = s.view(m, n // chunk, chunk)
    ci = torch.topk(blocks.amax(2), k, dim=1, sorted=False).indices                 # (m, k) chunks
    vals, j = torch.topk(blocks[torch.arange(m)[:, None], ci].view(m, k * chunk), k, dim=1)
    return vals, ci.gather(1, j // chunk) * chunk + j % chunk                        # column indices


def exact_search(store: EmbeddingStore, queries: np.ndarray, k: int = 10, metric: str = "cosine",
                 exclude: np.ndarray | None = None, block_rows: int = 8192, query_chunk: int = 1024,
                 threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact k-NN of ``queries`` (m, dim) in the store by blocked matrix products; (indices, scores).

    ``exclude``: (m,) a store row to leave out per query (the query itself), -1 for none.
    """
    check_metric(metric)
    check_k(k)
    from ..drivers import thread_budget
    n = len(store)
    if n == 0:
        raise ConvlensError(f"store {store.path} is empty; embed some images first")
    q_all = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
    if q_all.ndim != 2 or q_all.shape[1] != store.dim:
        raise ConvlensError(f"query vectors must be (m, {store.dim}), got {tuple(q_all.shape)}")
    if not torch.isfinite(q_all).all():
        raise ConvlensError("the query vectors hold NaN or inf values; pass finite vectors (a store row query "
                            "with NaN comes from a damaged shard: `convlens verify STORE`)")
    m = q_all.shape[0]
    excl = torch.full((m,), -1, dtype=torch.long) if exclude is None else torch.as_tensor(exclude, dtype=torch.long)
    kk = min(k, n - (1 if exclude is not None and (excl >= 0).any() else 0))
    out_i = np.empty((m, kk), np.int64)
    out_s = np.empty((m, kk), np.float32)
    with thread_budget(threads), torch.inference_mode():
        buf = bbuf = None
        for c0 in range(0, m, query_chunk):
            q = q_all[c0:c0 + query_chunk]
            ex = excl[c0:c0 + query_chunk]
            qq = _normalize_rows(q) if metric == "cosine" else q
            q2 = (q * q).sum(1, keepdim=True) if metric == "l2" else None
            # cosine: divide by the rows' norms either the (mq, nb) scores or, when that is the larger
            # array (more queries than dimensions), a scratch copy of the (nb, dim) block
            scale_block = metric == "cosine" and q.shape[0] > store.dim
            part_s, part_i = [], []
            for start, vec, norms in store.blocks(block_rows):
                b = as_torch(vec)
                nb = torch.from_numpy(np.asarray(norms, np.float32))
                if buf is None or buf.shape[0] < q.shape[0] or buf.shape[1] < b.shape[0]:
                    buf = torch.empty(max(q.shape[0], buf.shape[0] if buf is not None else 0),
                                      max(b.shape[0], buf.shape[1] if buf is not None else 0))
                s = buf[:q.shape[0], :b.shape[0]]
                if scale_block:
                    if bbuf is None or bbuf.shape[0] < b.shape[0]:
                        bbuf = torch.empty(b.shape[0], store.dim)
                    b = torch.div(b, nb.clamp_min(1e-30)[:, None], out=bbuf[:b.shape[0]])  # scratch, not the map
                if s.shape[1] != buf.shape[1]:
                    s = torch.empty(q.shape[0], b.shape[0])  # contiguous for block_topk
                torch.mm(qq, b.T, out=s)  # (mq, nb), written into a reused buffer
                if metric == "cosine":
                    if not scale_block:
                        s.div_(nb.clamp_min(1e-30))
                else:  # negated squared distance: larger = closer
                    s.mul_(2).sub_(q2).sub_(nb * nb)
                hit = (ex >= start) & (ex < start + b.shape[0])
                if hit.any():
                    r = torch.nonzero(hit)[:, 0]
                    s[r, ex[r] - start] = float("-inf")
                ts, ti = block_topk(s, kk)
                part_s.append(ts)
                part_i.append(ti + start)
            cat_s, cat_i = torch.cat(part_s, 1), torch.cat(part_i, 1)
            best_s, sel = torch.topk(cat_s, kk, dim=1)
            best_i = cat_i.gather(1, sel)
            bad = torch.isnan(best_s) | torch.isposinf(best_s)  # topk ranks NaN first: a NaN row always shows here
            if bad.any():  # never a NaN score: the damaged row and its shard are named
                raise ConvlensError(nonfinite_message(store, int(best_i[bad][0])))
            if metric == "l2":
                best_s = (-best_s).clamp_min(0).sqrt()
            out_i[c0:c0 + q.shape[0]] = best_i.numpy()
            out_s[c0:c0 + q.shape[0]] = best_s.numpy()
    return out_i, out_s


def nonfinite_rows(store, start: int, block: np.ndarray) -> str:
    """The one-line error for a block of store rows (from ``start``) holding NaN / inf."""
    ok = np.isfinite(np.asarray(block, np.float32)).all(1)
    return nonfinite_message(store, start + (int(np.nonzero(~ok)[0][0]) if not ok.all() else 0))


def nonfinite_message(store, bad: int) -> str:
    """The one-line error for store row ``bad`` holding NaN / inf (flipped bytes in a shard)."""
    if getattr(store, "path", None) is None:
        return f"vector {bad} holds NaN or inf values; pass finite vectors"
    where = ""
    if isinstance(store, EmbeddingStore):
        shard = next((s for s in store._shards() if s["start"] <= bad < s["start"] + s["count"]), None)
        where = f" (shard file {shard['vectors']})" if shard else ""
    return (f"store row {bad}{where} holds NaN or inf values: the store is damaged; `convlens verify "
            f"{getattr(store, 'path', 'STORE')}` names the shard and `convlens embed SOURCE --out STORE` re-extracts it")


def query_vectors(store: EmbeddingStore, query, model=None) -> tuple[np.ndarray, list[int]]:
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
        from .extract import decode_file
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


def store_model(store: EmbeddingStore, model=None):
    """The model a store was made with (reloaded by name and weights when not given)."""
    if model is not None:
        return model
    from ..models import load_model
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


def embed_query_images(store: EmbeddingStore, images, model=None) -> np.ndarray:
    """Embed outside images exactly as the store's images were (same model, layer, resize, pooling)."""
    from ..drivers import batched_forward
    from ..images import fit
    from .extract import pool
    size = query_size(store)
    m = store_model(store, model)
    layer = store.manifest["layer"]
    x = torch.cat([fit(t if t.ndim == 4 else t[None], size) for t in images])
    vecs = [pool(b.activations[layer]).numpy() for b in batched_forward(m, x, layer, size=None)]
    return np.concatenate(vecs).astype(np.float32)


def neighbors(store: EmbeddingStore, query, k: int = 10, metric: str = "cosine", *, index=None,
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


# --- approximate index (FAISS) -----------------------------------------------------------------

@dataclass
class AnnIndex:
    """A FAISS index over a store (HNSW, IVF or IVF-PQ), saved beside it as ``index-<metric>.faiss``.

    ``recall_at_10``: measured against exact search at build time on ``sample`` store rows;
    ``search(q, k)`` -> (indices, scores) under the store's metric contract; ``update()`` adds
    vectors committed after the build. ``params["rerank"]`` (IVF-PQ): candidates per result
    re-scored exactly from the store. ``mmapped``: the index's codes are memory-mapped (read-only).
    """

    store: EmbeddingStore
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
            from ..scale.index import rerank
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
        from .store import _fsync_write
        path = self.store.path / f"index-{self.metric}.faiss"
        rec = {"files": [path.name, f"index-{self.metric}.json"]}
        if self.store.manifest.setdefault("indexes", {}).get(self.metric) != rec:  # listed before it is written
            self.store.manifest["indexes"][self.metric] = rec
            self.store._write_manifest()
        tmp = path.parent / f".{path.name}.part"
        faiss.write_index(self.index, str(tmp))
        os.replace(tmp, path)
        info = {"metric": self.metric, "kind": self.kind, "params": self.params, "recall_at_10": self.recall_at_10,
                "count": int(self.index.ntotal), "build_seconds": self.build_seconds}
        _fsync_write(self.store.path / f"index-{self.metric}.json", json.dumps(info, indent=1).encode())
        return path


def recall_at_k(approx: np.ndarray, exact: np.ndarray, k: int = 10) -> float:
    """Mean |approx_k & exact_k| / k over queries."""
    return float(np.mean([len(set(a[:k]) & set(e[:k])) / k for a, e in zip(approx, exact)]))


def build_index(store: EmbeddingStore, metric: str = "cosine", kind: str = "hnsw", *, M: int = 32,
                ef_construction: int = 80, target_recall: float = 0.95, sample: int = 200, seed: int = 0,
                threads: int | None = None, save: bool = True, progress=None, nlist: int | None = None,
                pq_m: int | None = None, nbits: int | None = None, rerank: int = 8, train_size: int | None = None,
                chunk_rows: int = 65536) -> AnnIndex:
    """Build an approximate index and measure its recall@10 against exact search.

    kind "hnsw" (``IndexHNSWFlat``, M links, the default; benchmarks/bench_embed.py: recall@10 0.987 at
    5.5x the exact query rate on 100k x 512), "ivf" (``IndexIVFFlat``, 4 sqrt(N) lists), "ivfpq"
    (``IndexIVFPQ``, ``nlist`` cells, ``pq_m`` x ``nbits`` codes, the ``rerank x k`` best candidates
    re-scored exactly from the store: for stores too large for RAM, see ``convlens.scale.index``) or
    "auto" (``scale.index.auto_kind``: HNSW up to 300k rows, else IVF-PQ), wrapped in an
    ``IndexIDMap`` (ids = store rows). IVF kinds are trained on a random sample (``train_size``
    rows); vectors are added ``chunk_rows`` at a time from the memory-mapped shards, so the build
    holds the index plus one chunk. Recall is measured honestly: ``sample`` random store rows are
    held out of the index while it is measured, used as outside queries against the exact top-10
    of the other rows, and added afterwards. The search effort (efSearch / nprobe) is doubled until
    recall@10 reaches ``target_recall`` (or the effort hits its cap); effort and recall are saved.
    ``progress(rows_added, n)`` after each chunk.
    """
    import faiss
    from ..scale.index import KINDS, auto_kind, ivfpq_index
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


def load_index(store: EmbeddingStore, metric: str = "cosine", mmap: bool = True) -> AnnIndex:
    """The saved index of a store (new shards are added to it first). ``mmap``: memory-map the
    index's codes where FAISS can (IVF inverted lists; ``scale.index.mmap_flag``), so a large index
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
        from ..scale.index import mmap_flag
        flag = mmap_flag()
    ann = AnnIndex(store, faiss.read_index(str(path), flag), metric, info["kind"], info["params"], info["recall_at_10"],
                   info.get("build_seconds", 0.0), mmapped=bool(flag))
    if "effort" in ann.params:
        ann.set_effort(ann.params["effort"])
    if ann.index.ntotal < len(store):
        ann.update()
    return ann


# --- the kNN graph and near duplicates ---------------------------------------------------------

def knn_graph(store: EmbeddingStore, k: int = 15, metric: str = "cosine", *, chunk: int = 4096,
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


def near_duplicates(store: EmbeddingStore, threshold: float = 0.95, k: int = 10) -> list[tuple[int, int, float]]:
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
