"""Exact nearest neighbours: blocked matrix products over a store's memory-mapped shards.

One metric contract everywhere: ``"cosine"`` scores are similarities in [-1, 1] (larger = closer),
``"l2"`` scores are Euclidean distances (smaller = closer). Exact search streams the store's
memory-mapped shards in blocks: ``S = Q_hat @ B^T / |b|`` (cosine, with the stored norms) or
``D^2 = |q|^2 + |b|^2 - 2 q.b`` (L2), then a running top-k merge; memory is bounded by
``query_chunk x block_rows`` scores and no normalized copy of the vectors is ever made.
"""
from __future__ import annotations

import numpy as np
import torch

from ..drivers.forward import thread_budget
from ..errors import ConvlensError
from .vectors import VectorStore, as_torch

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


def normalize_rows(q: torch.Tensor) -> torch.Tensor:
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


def exact_search(store: VectorStore, queries: np.ndarray, k: int = 10, metric: str = "cosine",
                 exclude: np.ndarray | None = None, block_rows: int = 8192, query_chunk: int = 1024,
                 threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact k-NN of ``queries`` (m, dim) in the store by blocked matrix products; (indices, scores).

    ``exclude``: (m,) a store row to leave out per query (the query itself), -1 for none.
    """
    check_metric(metric)
    check_k(k)
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
            qq = normalize_rows(q) if metric == "cosine" else q
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
    if isinstance(store, VectorStore):
        shard = next((s for s in store.shards() if s["start"] <= bad < s["start"] + s["count"]), None)
        where = f" (shard file {shard['vectors']})" if shard else ""
    return (f"store row {bad}{where} holds NaN or inf values: the store is damaged; `convlens verify "
            f"{getattr(store, 'path', 'STORE')}` names the shard and `convlens embed SOURCE --out STORE` re-extracts it")


_normalize_rows = normalize_rows  # the old private name
