"""Image quilting (Efros & Freeman, SIGGRAPH 2001): tile the output with sample blocks, each chosen
to agree with its neighbours on the overlap, joined along a minimum-error boundary cut.

For the block at (i, j) in raster order, every B x B window of the sample is scored by the SSD over
the overlap with what is already placed (left strip B x O, top strip O x B); a random block among
those within ``(1 + tolerance)`` of the best is taken (the scores for all windows at once are the
same matrix-product expansion as Efros-Leung's masked SSD). On each overlap, dynamic programming
finds the cut of least cumulative squared difference,

    E(y, x) = e(y, x) + min(E(y-1, x-1), E(y-1, x), E(y-1, x+1)),

and the new block is pasted only on its side of the cut(s).

    r = convlens.quilting("brick", 256, block=32)
"""
from __future__ import annotations

import time

import numpy as np

from ..errors import ConvlensError
from .common import TextureResult, as_sample, as_size, finish, patches
from .efros_leung import masked_ssd


def min_cut_path(err: np.ndarray) -> np.ndarray:
    """Column index of the minimum-cost top-to-bottom path through ``err`` (rows x cols), one per row
    (8-connected: the path moves at most one column per row)."""
    h, w = err.shape
    E = err.astype(np.float64).copy()
    back = np.zeros((h, w), np.int64)
    for y in range(1, h):
        prev = np.pad(E[y - 1], 1, constant_values=np.inf)
        choices = np.stack([prev[:-2], prev[1:-1], prev[2:]])   # from x-1, x, x+1
        k = choices.argmin(0)
        back[y] = np.arange(w) + k - 1
        E[y] += choices[k, np.arange(w)]
    path = np.empty(h, np.int64)
    path[-1] = int(E[-1].argmin())
    for y in range(h - 1, 0, -1):
        path[y - 1] = back[y, path[y]]
    return path


def cut_mask(old: np.ndarray, new: np.ndarray, left: int, top: int) -> np.ndarray:
    """(B, B) bool: True where the new block shows, after minimum-error cuts on the left overlap
    (``left`` columns) and the top overlap (``top`` rows)."""
    b = new.shape[0]
    keep = np.ones(new.shape[:2], bool)
    e = ((new - old) ** 2).sum(-1)
    if left:
        path = min_cut_path(e[:, :left])
        keep &= np.arange(b)[None, :] >= path[:, None]
    if top:
        path = min_cut_path(e[:top, :].T)
        keep &= np.arange(b)[:, None] >= path[None, :]
    return keep


def quilting(sample, size, *, block: int = 32, overlap: int | None = None, tolerance: float = 0.1, seed: int = 0,
             cut: bool = True, progress=None) -> TextureResult:
    """Efros & Freeman (2001) image quilting (see module doc).

    Args:
        sample: path, sample name, (H, W) / (H, W, 3) array or tensor.
        size: output size, int or (H, W).
        block: block size B in pixels (32); overlap: O (default B // 6, the paper's);
        tolerance: candidates within (1 + tolerance) of the best overlap error (0.1, the paper's).
        seed: random seed (same seed, same output); cut: minimum-error boundary cut (False: straight seams).
        progress: ``progress(blocks_done, blocks_total)``.
    Returns:
        ``TextureResult`` (Ctrl-C keeps the blocks placed so far).
    Example:
        >>> r = convlens.quilting("brick", 128, block=24)
    """
    src = as_sample(sample)
    H, W = as_size(size)
    sh, sw, C = src.shape
    if block < 4 or block > min(sh, sw):
        raise ConvlensError(f"block must be between 4 and the sample's size ({min(sh, sw)}), got {block}")
    ov = max(1, block // 6) if overlap is None else int(overlap)
    if not 0 < ov < block:
        raise ConvlensError(f"overlap must be between 1 and block - 1, got {ov}")
    step = block - ov
    ny, nx = max(1, -(-(H - ov) // step)), max(1, -(-(W - ov) // step))
    canvas = np.zeros((ny * step + ov, nx * step + ov, C))
    filled = np.zeros(canvas.shape[:2], bool)
    P = patches(src, block).reshape(-1, block * block, C)
    P2 = P.reshape(len(P), -1) ** 2
    n_x = sw - block + 1
    rng = np.random.default_rng(seed)
    t0, stopped, done = time.perf_counter(), "done", 0
    try:
        for i in range(ny):
            for j in range(nx):
                y, x = i * step, j * step
                old = canvas[y:y + block, x:x + block]
                left, top = (ov if j else 0), (ov if i else 0)
                if not left and not top:
                    k = int(rng.integers(len(P)))
                else:
                    m = np.zeros((block, block))
                    m[:, :left] = 1
                    m[:top, :] = 1
                    d = masked_ssd(P, old.reshape(1, -1, C), m.reshape(1, -1), P2)[0]
                    cand = np.flatnonzero(d <= d.min() * (1 + tolerance) + 1e-12)
                    k = int(rng.choice(cand))
                ky, kx = divmod(k, n_x)
                new = src[ky:ky + block, kx:kx + block]
                keep = cut_mask(old, new, left, top) if cut else np.ones((block, block), bool)
                canvas[y:y + block, x:x + block][keep] = new[keep]
                filled[y:y + block, x:x + block] = True
                done += 1
                if progress is not None:
                    progress(done, ny * nx)
    except KeyboardInterrupt:
        stopped = "interrupted"
    return finish(canvas[:H, :W], filled[:H, :W].copy(), time.perf_counter() - t0, stopped, "quilting")


__all__ = ["quilting", "min_cut_path", "cut_mask"]
