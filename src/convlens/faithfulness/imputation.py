"""Noisy linear imputation (Rong, Leemann et al. 2022, "ROAD", section 4.2): removed pixels become the
weighted mean of their eight neighbours, solved jointly as one sparse linear system, plus a little noise.

For each removed pixel i (unknown value v_i, per channel) the paper's equation is

    sum_j w_j * (v_j - v_i) = 0,   w = 1/6 for the 4 direct neighbours, 1/12 for the 4 diagonal ones,

over the neighbours j inside the image (a pixel on the border has fewer, and its weights sum to less
than 1). A known neighbour's value moves to the right-hand side, so the system is (K x K) for K removed
pixels, symmetric and diagonally dominant: one sparse LU (scipy's SuperLU in symmetric mode, minimum
degree ordering) solves all three channels. Then ``noise * N(0, 1)`` is added to every imputed value.
This is the reference code's system (github.com/tleemann/road_evaluation, as Quantus copies it), built
in one vectorized pass instead of an element-by-element LIL matrix.

When every pixel is removed there is nothing to impute from: the image becomes grey 0.5 (+ noise).
"""
from __future__ import annotations

import numpy as np
import torch

# (row offset, column offset, weight): the paper's 8-neighbourhood
NEIGHBOURS = ((1, 1, 1 / 12), (0, 1, 1 / 6), (-1, 1, 1 / 12), (1, -1, 1 / 12), (0, -1, 1 / 6), (-1, -1, 1 / 12),
              (1, 0, 1 / 6), (-1, 0, 1 / 6))


def linear_imputation(image: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """The noise-free imputation of one image: ``image`` (C, H, W) float64, ``removed`` (H, W) bool;
    returns a new (C, H, W) array whose removed pixels solve the neighbour-mean system."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import splu

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
    lu = splu(a, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True})
    out[:, idx] = lu.solve(rhs).T
    return out.reshape(C, H, W)


def noisy_linear_imputation(images: torch.Tensor, removed: torch.Tensor, noise: float = 0.01,
                            seeds=None) -> torch.Tensor:
    """Impute the ``removed`` (B, H, W) pixels of ``images`` (B, C, H, W) and add ``noise`` x N(0, 1) to
    them; ``seeds[b]`` seeds image b's noise (``numpy.random.default_rng(seeds[b])``), so a row's noise
    does not depend on how a pass is chunked. Returns (B, C, H, W) in the images' dtype and device."""
    x = images.detach().double().cpu().numpy()
    rem = removed.detach().cpu().numpy().astype(bool)
    out = np.empty_like(x)
    for b in range(x.shape[0]):
        out[b] = linear_imputation(x[b], rem[b])
        if noise > 0:
            g = np.random.default_rng(None if seeds is None else seeds[b])
            n = int(rem[b].sum())
            out[b][:, rem[b]] += noise * g.standard_normal((x.shape[1], n))
    return torch.from_numpy(out).to(images.device, images.dtype)
