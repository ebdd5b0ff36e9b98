"""Non-negative matrix factorization in torch: A (n, c) ~ U (n, k) @ W (k, c), U, W >= 0.

The solver is HALS (hierarchical alternating least squares; Cichocki & Phan 2009, the "fast HALS"
of Gillis & Glineur 2012), which is exact coordinate descent on the Frobenius loss: each row of W
(then each column of U) is the closed-form non-negative minimizer with the others fixed,

    W[j] <- max(0, W[j] + (U^T A - U^T U W)[j] / (U^T U)[j, j])

so one sweep costs two matrix products (U^T A, U^T U) and k rank-one updates. It is the same
algorithm as scikit-learn's ``NMF(solver="cd")`` (its default). ``nnls`` is the same update on U
alone with W fixed: the projection of new rows onto a learnt basis (``NMF.transform``), used for a
concept's heat map and for the coefficients CRAFT perturbs.

Initialization (``init="nndsvda"``, scikit-learn's default): Boutsidis & Gallopoulos 2008's
non-negative double SVD, zeros filled with the mean of A. Tested against sklearn's NMF on the same
matrix (tests/test_concepts.py): reconstruction error within 1% of sklearn's.

    U, W, err = nmf(A, 10)          # err = ||A - U W||_F / ||A||_F
    U2 = nnls(B, W)                 # B's coefficients on the same basis
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConvlensError

_EPS = 1e-10  # sweeps keep entries >= this tiny floor so a zeroed coefficient can come back (as Gillis)


@dataclass
class NMF:
    """A factorization: ``U`` (n, k) coefficients, ``W`` (k, c) basis, ``error`` = ||A - UW||_F / ||A||_F,
    ``iterations`` run and whether the relative-improvement tolerance was reached (``converged``)."""

    U: torch.Tensor
    W: torch.Tensor
    error: float
    iterations: int
    converged: bool


def _check(A: torch.Tensor, k: int) -> None:
    if A.ndim != 2 or A.numel() == 0:
        raise ConvlensError(f"NMF needs a non-empty (n, c) matrix, got shape {tuple(A.shape)}")
    if not torch.isfinite(A).all() or (A < 0).any():
        raise ConvlensError("NMF needs a finite non-negative matrix; clip or split negative activations first")
    if not 1 <= k <= min(A.shape):
        raise ConvlensError(f"NMF rank {k} must be between 1 and min(n, c) = {min(A.shape)}")


def _nndsvda(A: torch.Tensor, k: int):
    """NNDSVD initialization with zeros replaced by mean(A) (sklearn's "nndsvda")."""
    Us, S, Vh = torch.linalg.svd(A, full_matrices=False)
    U = torch.zeros(A.shape[0], k, dtype=A.dtype, device=A.device)
    W = torch.zeros(k, A.shape[1], dtype=A.dtype, device=A.device)
    U[:, 0] = S[0].sqrt() * Us[:, 0].abs()
    W[0] = S[0].sqrt() * Vh[0].abs()
    for j in range(1, k):
        x, y = Us[:, j], Vh[j]
        xp, xn, yp, yn = x.clamp(min=0), (-x).clamp(min=0), y.clamp(min=0), (-y).clamp(min=0)
        mp = xp.norm() * yp.norm()
        mn = xn.norm() * yn.norm()
        if mp >= mn:
            u, v, sigma = xp / xp.norm().clamp(min=1e-30), yp / yp.norm().clamp(min=1e-30), mp
        else:
            u, v, sigma = xn / xn.norm().clamp(min=1e-30), yn / yn.norm().clamp(min=1e-30), mn
        lam = (S[j] * sigma).sqrt()
        U[:, j], W[j] = lam * u, lam * v
    mean = A.mean()
    U[U < 1e-6], W[W < 1e-6] = mean, mean
    return U, W


def _sweep_rows(W: torch.Tensor, UtA: torch.Tensor, UtU: torch.Tensor, repeats: int = 1) -> None:
    """HALS sweeps over the rows of W (k, c), in place: W[j] <- max(eps, W[j] + (UtA - UtU W)[j] / UtU[j, j]).

    Three kernels a row (addmv, add, clamp); the diagonal is read once. ``repeats`` > 1: Gillis &
    Glineur's acceleration, more sweeps on the same products (they cost far less than the products),
    stopping when a sweep moves W by less than a tenth of what the first one did."""
    inv = [1.0 / d if d > 0 else 0.0 for d in UtU.diagonal().tolist()]
    first = None
    for _ in range(repeats):
        before = W.clone() if repeats > 1 else None
        for j, r in enumerate(inv):
            if r:
                step = torch.addmv(UtA[j], W.T, UtU[j], alpha=-1.0)  # (UtA - UtU W)[j]
                W[j].add_(step, alpha=r).clamp_(min=_EPS)
        if before is not None:
            moved = float((W - before).norm())
            first = moved if first is None else first
            if moved <= 0.1 * first:
                break


def nmf(A: torch.Tensor, k: int, *, iters: int = 400, tol: float = 1e-4, init: str = "nndsvda",
        seed: int = 0) -> NMF:
    """Factorize a non-negative matrix A (n, c) ~ U (n, k) @ W (k, c) by HALS (see the module docs).

    Args:
        A: (n, c) non-negative, float32 or float64 (the computation keeps A's dtype and device).
        k: the rank (number of components).
        iters: at most this many sweeps (each: all of W, then all of U).
        tol: stop when the relative decrease of the loss over one sweep falls below ``tol``.
        init: "nndsvda" (deterministic, sklearn's default) or "random" (uniform, scaled to A's mean,
            from ``seed``).
    Returns:
        ``NMF`` with U, W, the relative error ||A - UW||_F / ||A||_F, the sweeps run.
    Example:
        >>> f = nmf(torch.rand(100, 3) @ torch.rand(3, 20), 3); f.error < 1e-3
        True
    """
    _check(A, k)
    if init == "nndsvda":
        U, W = _nndsvda(A, k)
    elif init == "random":
        g = torch.Generator().manual_seed(seed)
        scale = (A.mean() / k).sqrt()
        U = (torch.rand(A.shape[0], k, generator=g, dtype=A.dtype) * scale).to(A.device)
        W = (torch.rand(k, A.shape[1], generator=g, dtype=A.dtype) * scale).to(A.device)
    else:
        raise ConvlensError(f"unknown NMF init '{init}'; use nndsvda or random")
    normA2 = float((A * A).sum())
    Ut = U.T.contiguous()  # U's columns are the rows of the transposed problem: kept as rows (contiguous)
    At = A.T.contiguous()
    # inner sweeps per product (Gillis & Glineur 2012: 1 + alpha * rho, alpha = 0.5, rho = product / sweep cost)
    n, c = A.shape
    repeats = max(1, min(10, int(1 + 0.5 * n * c / ((n + c) * k))))
    prev, it, converged = None, 0, False
    with torch.inference_mode():
        for it in range(1, iters + 1):
            UtA, UtU = Ut @ A, Ut @ Ut.T
            if it > 1:  # the loss of (U, W) as they stand, from the products this sweep needs anyway
                loss = normA2 - 2 * float((UtA * W).sum()) + float((UtU * (W @ W.T)).sum())
                if prev is not None and prev - loss <= tol * prev:
                    converged = True
                    break
                prev = loss
            _sweep_rows(W, UtA, UtU, repeats)
            _sweep_rows(Ut, W @ At, W @ W.T, repeats)
    U = Ut.T.contiguous()
    err = float((A - U @ W).norm() / A.norm().clamp(min=1e-30))
    return NMF(U.clone(), W.clone(), err, it, converged)


def nnls(B: torch.Tensor, W: torch.Tensor, *, iters: int = 200, tol: float = 1e-6) -> torch.Tensor:
    """Non-negative coefficients U (n, k) minimizing ||B - U W||_F with the basis W (k, c) fixed.

    NMF's ``transform``: HALS sweeps on U alone from the unconstrained least-squares solution
    clipped at zero (a convex problem: the sweeps converge to its unique minimizer when W has full
    row rank). ``B`` must be non-negative like the matrix W was learnt on.
    """
    if B.ndim != 2 or B.shape[1] != W.shape[1]:
        raise ConvlensError(f"nnls: rows of {W.shape[1]} values expected, got shape {tuple(B.shape)}")
    W = W.to(B.dtype)
    with torch.no_grad():
        WWt, WBt = W @ W.T, W @ B.T
        Ut = torch.linalg.lstsq(WWt, WBt).solution.clamp(min=0).contiguous()  # (k, n)
        normB2 = float((B * B).sum())
        prev = None
        for _ in range(iters):
            _sweep_rows(Ut, WBt, WWt)
            loss = normB2 - 2 * float((WBt * Ut).sum()) + float(((Ut @ Ut.T) * WWt).sum())
            if prev is not None and prev - loss <= tol * max(prev, 1e-30):
                break
            prev = loss
    return Ut.T.contiguous()
