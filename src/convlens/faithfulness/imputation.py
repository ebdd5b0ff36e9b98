"""Noisy linear imputation (Rong, Leemann et al. 2022, "ROAD", section 4.2): removed pixels become the
weighted mean of their eight neighbours, solved jointly as one sparse linear system, plus a little noise.

For each removed pixel i (unknown value v_i, per channel) the paper's equation is

    sum_j w_j * (v_j - v_i) = 0,   w = 1/6 for the 4 direct neighbours, 1/12 for the 4 diagonal ones,

over the neighbours j inside the image (a pixel on the border has fewer, and its weights sum to less
than 1). A known neighbour's value moves to the right-hand side, so the system is (K x K) for K removed
pixels, symmetric and positive definite: one sparse factorization solves all three channels (SuiteSparse's
CHOLMOD where scikit-sparse is installed, as ``scripts/setup`` does; else scipy's SuperLU in symmetric
mode; ``solve_spd``). Then ``noise * N(0, 1)`` is added to every imputed value.
This is the reference code's system (github.com/tleemann/road_evaluation, as Quantus copies it), built
in one vectorized pass instead of an element-by-element LIL matrix.

When every pixel is removed there is nothing to impute from: the image becomes grey 0.5 (+ noise).

The solves are ROAD's whole cost at 224 px (SuperLU holds the GIL, so threads do not help): a large batch
is solved by ``solve_workers()`` processes (the thread budget, ``torch.get_num_threads()``, or
``$CONVLENS_SOLVE_WORKERS``), a pool kept for the session and started by a fork server (a clean process,
so no OpenMP lock of this one is inherited). The noise is drawn here, so the result does not depend on
the number of workers.
"""
from __future__ import annotations

import functools
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import torch

# a batch is split over processes when its solves have at least this many unknowns in all (about a
# second of SuperLU at 224 px); smaller ones are solved here, where no pool start-up is paid
PARALLEL_UNKNOWNS = 300_000
_POOL: dict = {}

# (row offset, column offset, weight): the paper's 8-neighbourhood
NEIGHBOURS = ((1, 1, 1 / 12), (0, 1, 1 / 6), (-1, 1, 1 / 12), (1, -1, 1 / 12), (0, -1, 1 / 6), (-1, -1, 1 / 12),
              (1, 0, 1 / 6), (-1, 0, 1 / 6))


def linear_imputation(image: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """The noise-free imputation of one image: ``image`` (C, H, W) float64, ``removed`` (H, W) bool;
    returns a new (C, H, W) array whose removed pixels solve the neighbour-mean system."""
    import scipy.sparse as sp

    C, H, W = image.shape
    out = np.array(image, dtype=np.float64, copy=True).reshape(C, H * W)
    idx = np.flatnonzero(removed.reshape(-1))
    k = idx.size
    if k == 0:
        return out.reshape(C, H, W)
    if k == H * W:
        out[:] = 0.5
        return out.reshape(C, H, W)
    var = np.full(H * W, -1, dtype=np.int64)
    var[idx] = np.arange(k)
    r, c = idx // W, idx % W
    rows, cols, vals = [], [], []
    diag = np.zeros(k)
    rhs = np.zeros((k, C))
    for dr, dc, w in NEIGHBOURS:
        rr, cc = r + dr, c + dc
        inside = (rr >= 0) & (rr < H) & (cc >= 0) & (cc < W)
        j = np.where(inside, rr * W + cc, 0)
        diag += np.where(inside, w, 0.0)
        unknown = inside & (var[j] >= 0)
        known = inside & ~unknown
        rows.append(np.flatnonzero(unknown))
        cols.append(var[j[unknown]])
        vals.append(np.full(int(unknown.sum()), -w))
        rhs[np.flatnonzero(known)] += w * out[:, j[known]].T
    rows.append(np.arange(k))
    cols.append(np.arange(k))
    vals.append(diag)
    # (diag - W_unknown) v = W_known x: the paper's system with both sides negated (positive definite)
    a = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(k, k))
    out[:, idx] = solve_spd(a, rhs).T
    return out.reshape(C, H, W)


@functools.lru_cache(maxsize=None)
def solver() -> str:
    """"cholmod" (SuiteSparse's sparse Cholesky, through scikit-sparse, if installed) or "superlu" (scipy)."""
    try:
        import sksparse.cholmod  # noqa: F401
        return "cholmod"
    except ImportError:
        return "superlu"


def solve_spd(a, rhs: np.ndarray) -> np.ndarray:
    """``a`` (K, K) symmetric positive definite CSC, ``rhs`` (K, C): CHOLMOD's simplicial Cholesky with
    AMD ordering where scikit-sparse is installed (about half SuperLU's time on these grid systems: a
    Cholesky factor instead of L and U), else SuperLU in symmetric mode with minimum-degree ordering."""
    if solver() == "cholmod":
        import warnings

        from sksparse.cholmod import cholesky
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # CHOLMOD's note that it converts the index dtype
            return cholesky(a, ordering_method="amd", mode="simplicial")(rhs)
    from scipy.sparse.linalg import splu
    lu = splu(a, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True})
    return lu.solve(rhs)


def solve_workers() -> int:
    """Processes for large batches of solves: ``$CONVLENS_SOLVE_WORKERS`` or the thread budget."""
    env = os.environ.get("CONVLENS_SOLVE_WORKERS")
    return max(1, int(env) if env and env.strip().isdigit() else torch.get_num_threads())


def _pool(workers: int) -> ProcessPoolExecutor:
    if _POOL.get("workers") != workers:
        old = _POOL.get("pool")
        if old is not None:
            old.shutdown(wait=False, cancel_futures=True)
        ctx = multiprocessing.get_context("forkserver")
        _POOL.update(workers=workers, pool=ProcessPoolExecutor(workers, mp_context=ctx))
    return _POOL["pool"]


def linear_imputations(x: np.ndarray, rem: np.ndarray, workers: int | None = None) -> np.ndarray:
    """``linear_imputation`` of each image of ``x`` (B, C, H, W) with ``rem`` (B, H, W), over ``workers``
    processes when the batch is large enough to pay for them (default ``solve_workers()``)."""
    workers = solve_workers() if workers is None else workers
    if workers > 1 and x.shape[0] > 1 and int(rem.sum()) >= PARALLEL_UNKNOWNS:
        try:
            return np.stack(list(_pool(min(workers, x.shape[0])).map(linear_imputation, x, rem)))
        except BrokenProcessPool:  # a worker died (killed, out of memory): solve here
            _POOL.clear()
    return np.stack([linear_imputation(a, r) for a, r in zip(x, rem)])


def noisy_linear_imputation(images: torch.Tensor, removed: torch.Tensor, noise: float = 0.01,
                            seeds=None, workers: int | None = None) -> torch.Tensor:
    """Impute the ``removed`` (B, H, W) pixels of ``images`` (B, C, H, W) and add ``noise`` x N(0, 1) to
    them; ``seeds[b]`` seeds image b's noise (``numpy.random.default_rng(seeds[b])``), so a row's noise
    does not depend on how a pass is chunked. ``workers``: processes for the solves (default
    ``solve_workers()``; the result is the same). Returns (B, C, H, W) in the images' dtype and device."""
    x = images.detach().double().cpu().numpy()
    rem = removed.detach().cpu().numpy().astype(bool)
    out = linear_imputations(x, rem, workers)
    for b in range(x.shape[0]):
        if noise > 0:
            g = np.random.default_rng(None if seeds is None else seeds[b])
            n = int(rem[b].sum())
            out[b][:, rem[b]] += noise * g.standard_normal((x.shape[1], n))
    return torch.from_numpy(out).to(images.device, images.dtype)
