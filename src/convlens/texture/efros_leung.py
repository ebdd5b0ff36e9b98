"""Non-parametric texture synthesis by nearest neighbours (Efros & Leung, ICCV 1999), vectorized.

Grow the output from a random 3x3 seed patch of the sample, in onion-peel order. For an unfilled
pixel p with neighbourhood N(p) (a ``window`` x ``window`` square, known pixels only), the distance
to every sample window P is the Gaussian-weighted masked SSD

    d(p, P) = sum_k g_k m_k (P_k - N_k)^2 / sum_k g_k m_k        (g: Gaussian, sigma = window / 6.4;
                                                                  m: 1 where N is known)

and p copies the centre of a random window among those with ``d <= (1 + epsilon) * min d``.

Speed: the naive method loops over pixels and compares each with every sample window (minutes for
64x64 -> 128x128). Here the masked SSD is expanded, with w = g m per pixel and query,

    d(p, P) * sum w = sum_k w_k P_k^2  -  2 sum_k (w_k N_k) P_k  +  sum_k w_k N_k^2,

which for all frontier pixels F at once and all sample windows is two matrix products,
``W @ (P^2)^T - 2 (W * N) @ P^T + rowsum(W N^2)`` (F x D times D x #windows), and a whole onion
layer (every unfilled pixel touching the filled region) is filled per step in one batched search.
Pixels of one layer do not see each other (they only see the filled region), which is the onion-peel
order taken one layer at a time. Efros & Leung's "MaxErrThreshold" delay is not used.

    r = convlens.efros_leung("brick", 128, window=11)
    r.save("brick_el.png")
"""
from __future__ import annotations

import time

import numpy as np

from ..errors import ConvlensError
from .common import TextureResult, as_sample, as_size, finish, patches


def gaussian_window(window: int, sigma: float | None = None) -> np.ndarray:
    """(window*window,) Gaussian weights, sigma = window / 6.4 (Efros & Leung's choice)."""
    s = window / 6.4 if sigma is None else sigma
    r = np.arange(window) - window // 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * s * s))
    return (g / g.sum()).ravel()


def masked_ssd(P: np.ndarray, N: np.ndarray, W: np.ndarray, P2: np.ndarray | None = None) -> np.ndarray:
    """Weighted SSD of every query to every sample window, normalized by the weight total.

    Args:
        P: (n_windows, K, C) sample windows; N: (F, K, C) query neighbourhoods;
        W: (F, K) weights per query pixel (Gaussian x known-mask), shared by the C channels.
        P2: optional precomputed ``P.reshape(n, -1) ** 2`` (reused across calls).
    Returns:
        (F, n_windows) ``sum_k W_fk sum_c (P_nkc - N_fkc)^2 / sum_k W_fk`` as matrix products.
    """
    n, k, c = P.shape
    Pf = P.reshape(n, k * c)
    Wc = np.repeat(W, c, axis=1)                         # (F, K*C)
    Nf = N.reshape(N.shape[0], k * c)
    d = Wc @ (Pf * Pf if P2 is None else P2).T - 2.0 * (Wc * Nf) @ Pf.T + (Wc * Nf * Nf).sum(1, keepdims=True)
    return np.maximum(d, 0.0) / np.maximum(W.sum(1, keepdims=True), 1e-12)


def _start(src: np.ndarray, H: int, W: int, window: int, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Padded canvas with a random 3x3 sample patch in the middle, its known mask, and the inner region."""
    sh, sw, C = src.shape
    half = window // 2
    canvas = np.zeros((H + 2 * half, W + 2 * half, C))
    known = np.zeros(canvas.shape[:2], bool)
    sy, sx = rng.integers(0, sh - 2), rng.integers(0, sw - 2)
    cy, cx = half + max(0, H // 2 - 1), half + max(0, W // 2 - 1)
    hh, ww = min(3, H), min(3, W)
    canvas[cy:cy + hh, cx:cx + ww] = src[sy:sy + hh, sx:sx + ww]
    known[cy:cy + hh, cx:cx + ww] = True
    inner = np.zeros_like(known)
    inner[half:half + H, half:half + W] = True
    return canvas, known, inner


def _frontier(known: np.ndarray, inner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ys, xs) of the next onion layer: unfilled pixels 8-adjacent to the filled region."""
    grown = known.copy()
    grown[1:] |= known[:-1]
    grown[:-1] |= known[1:]
    g2 = grown.copy()
    g2[:, 1:] |= grown[:, :-1]
    g2[:, :-1] |= grown[:, 1:]
    return np.nonzero(g2 & ~known & inner)


def efros_leung(sample, size, *, window: int = 11, epsilon: float = 0.1, seed: int = 0, progress=None,
                chunk: int = 512, dtype=np.float32) -> TextureResult:
    """Efros & Leung (1999) texture synthesis, one onion layer per batched search (see module doc).

    Args:
        sample: image path, sample name (``convlens samples``), (H, W) / (H, W, 3) array or tensor.
        size: output size, int or (H, W).
        window: odd neighbourhood size (11); epsilon: candidates within (1 + epsilon) of the best (0.1).
        seed: random seed (seed patch, candidate choice): the same seed gives the same output.
        progress: ``progress(filled, total)``; chunk: queries per matrix product (memory bound).
        dtype: of the search (float32; float64 for exact ties in tests).
    Returns:
        ``TextureResult``; Ctrl-C returns the partial output (``stopped="interrupted"``).
    Example:
        >>> r = convlens.efros_leung("brick", 96, window=11, seed=0)
        >>> r.array.shape
        (96, 96)
    """
    if window < 3 or window % 2 == 0:
        raise ConvlensError(f"window must be odd and >= 3, got {window}")
    src = as_sample(sample)
    H, Wd = as_size(size)
    sh, sw, C = src.shape
    if sh < window or sw < window:
        raise ConvlensError(f"the sample ({sh}x{sw}) must be at least as large as the window ({window})")
    rng = np.random.default_rng(seed)
    half = window // 2
    P = patches(src, window).reshape(-1, window * window, C).astype(dtype)
    centres = P[:, (window * window) // 2, :].astype(np.float64)
    Pf = P.reshape(len(P), -1)
    B = np.concatenate([Pf * Pf, Pf], 1)                 # [P^2, P]: one product gives both terms
    gauss = gaussian_window(window).astype(dtype)
    tol = 1e-6 if dtype == np.float32 else 1e-12
    canvas, known, inner = _start(src, H, Wd, window, rng)  # seed: a random 3x3 sample patch in the middle
    oy, ox = np.meshgrid(np.arange(-half, half + 1), np.arange(-half, half + 1), indexing="ij")
    oy, ox = oy.ravel(), ox.ravel()
    total, t0, stopped = H * Wd, time.perf_counter(), "done"
    try:
        while True:
            ys, xs = _frontier(known, inner)
            if len(ys) == 0:
                break
            vals = np.empty((len(ys), C))
            for a in range(0, len(ys), chunk):
                yy, xx = ys[a:a + chunk, None] + oy[None], xs[a:a + chunk, None] + ox[None]
                Wq = gauss[None] * known[yy, xx]                              # (F, K)
                Wc = np.repeat(Wq, C, axis=1)
                Nf = canvas[yy, xx].astype(dtype).reshape(len(Wq), -1)
                raw = np.concatenate([Wc, -2.0 * Wc * Nf], 1) @ B.T           # (F, n): d * sum(W) - const
                const = (Wc * Nf * Nf).sum(1)
                best = np.maximum(raw.min(1) + const, 0.0)
                thr = best * (1.0 + epsilon) + tol * Wq.sum(1) - const
                rows, cols = np.nonzero(raw <= thr[:, None])                  # candidates, row-sorted
                counts = np.bincount(rows, minlength=len(Wq))
                starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
                pick = starts + (rng.random(len(Wq)) * counts).astype(np.int64)  # uniform per row
                vals[a:a + chunk] = centres[cols[pick]]
            canvas[ys, xs] = vals
            known[ys, xs] = True
            if progress is not None:
                progress(int(known[inner].sum()), total)
    except KeyboardInterrupt:
        stopped = "interrupted"
    crop = (slice(half, half + H), slice(half, half + Wd))
    return finish(canvas[crop], known[crop].copy(), time.perf_counter() - t0, stopped, "efros-leung")


def efros_leung_naive(sample, size, *, window: int = 11, epsilon: float = 0.1, seed: int = 0,
                      max_pixels: int | None = None) -> TextureResult:
    """The straightforward per-pixel NumPy version (for the benchmark and tests): same onion layers,
    but each pixel is searched on its own with a broadcast masked SSD over all sample windows.
    ``max_pixels`` stops early (the benchmark extrapolates per-pixel time)."""
    src = as_sample(sample)
    H, Wd = as_size(size)
    sh, sw, C = src.shape
    rng = np.random.default_rng(seed)
    half = window // 2
    P = patches(src, window).reshape(-1, window * window, C)
    gauss = gaussian_window(window)
    canvas, known, inner = _start(src, H, Wd, window, rng)
    t0, done = time.perf_counter(), 0
    while max_pixels is None or done < max_pixels:
        ys, xs = _frontier(known, inner)
        if len(ys) == 0:
            break
        snapshot = known.copy()
        for y, x in zip(ys, xs):
            N = canvas[y - half:y + half + 1, x - half:x + half + 1].reshape(-1, C)
            w = gauss * snapshot[y - half:y + half + 1, x - half:x + half + 1].ravel()
            d = (w[None, :, None] * (P - N[None]) ** 2).sum((1, 2)) / w.sum()
            cand = np.flatnonzero(d <= d.min() * (1 + epsilon) + 1e-12)
            canvas[y, x] = P[rng.choice(cand), (window * window) // 2]
            done += 1
            if max_pixels is not None and done >= max_pixels:
                break
        known[ys, xs] = True
    crop = (slice(half, half + H), slice(half, half + Wd))
    return finish(canvas[crop], known[crop].copy(), time.perf_counter() - t0, "done", "efros-leung-naive")


__all__ = ["efros_leung", "efros_leung_naive", "masked_ssd", "gaussian_window"]
