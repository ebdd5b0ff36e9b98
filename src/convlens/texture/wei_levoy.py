"""Multi-resolution texture synthesis with causal neighbourhoods (Wei & Levoy, SIGGRAPH 2000).

Gaussian pyramids of the sample and the output; the output starts as random sample pixels (so
its colour histogram is the sample's), then each level, coarse to fine, is re-synthesized in
scanline order: pixel p copies the sample pixel whose neighbourhood is nearest (L2) to p's, where
the neighbourhood is the *causal* (already visited: rows above, pixels to the left) part of an
N x N window at p's level plus the full n x n window around p's parent at the coarser level. The
output wraps around (toroidal), so it tiles.

Search (the slow part of Efros-Leung, made fast):
  * ``search="tsvq"``: tree-structured vector quantization, as in the paper: the sample's
    neighbourhood vectors are split recursively by 2-means into a binary tree; a query descends to
    the nearer child at each node and searches its leaf exactly (approximate: may miss the true
    nearest across a split);
  * ``search="exact"``: all sample neighbourhoods at once with one matrix-vector product.
  ``benchmarks/bench_texture.py`` measures both (time and neighbourhood error); see the docs page.

    r = convlens.wei_levoy("brick", 128, window=9, levels=3)
"""
from __future__ import annotations

import time

import numpy as np

from ..errors import ConvlensError
from .common import TextureResult, as_sample, as_size, finish


def _down(a: np.ndarray) -> np.ndarray:
    """Blur with [1, 4, 6, 4, 1]/16 (wrapping) and take every second pixel."""
    k = np.array([1, 4, 6, 4, 1], float) / 16
    for ax in (0, 1):
        a = sum(w * np.roll(a, s, axis=ax) for w, s in zip(k, range(-2, 3)))
    return a[::2, ::2]


def pyramid(a: np.ndarray, levels: int) -> list[np.ndarray]:
    """[finest, ..., coarsest] Gaussian pyramid."""
    out = [a]
    for _ in range(levels - 1):
        out.append(_down(out[-1]))
    return out


def causal_offsets(window: int) -> np.ndarray:
    """(k, 2) (dy, dx) offsets of the causal half of a window: rows above, and left in the same row."""
    h = window // 2
    return np.array([(dy, dx) for dy in range(-h, 1) for dx in range(-h, h + 1) if dy < 0 or dx < 0])


def full_offsets(window: int) -> np.ndarray:
    h = window // 2
    return np.array([(dy, dx) for dy in range(-h, h + 1) for dx in range(-h, h + 1)])


def _neigh_vectors(img: np.ndarray, parent: np.ndarray | None, ys, xs, off, poff, wrap: bool) -> np.ndarray:
    """Neighbourhood vectors at (ys, xs): causal part at this level, full 3x3 (or n x n) at the parent."""
    h, w = img.shape[:2]
    yy, xx = ys[:, None] + off[None, :, 0], xs[:, None] + off[None, :, 1]
    if wrap:
        yy, xx = yy % h, xx % w
    v = img[yy, xx].reshape(len(ys), -1)
    if parent is not None:
        ph, pw = parent.shape[:2]
        py, px = ys[:, None] // 2 + poff[None, :, 0], xs[:, None] // 2 + poff[None, :, 1]
        py, px = (py % ph, px % pw) if wrap else (np.clip(py, 0, ph - 1), np.clip(px, 0, pw - 1))
        v = np.concatenate([v, parent[py, px].reshape(len(ys), -1)], 1)
    return v


class TSVQ:
    """Tree-structured vector quantizer: recursive 2-means splits down to ``leaf`` vectors per leaf.

    ``query(v)`` descends to the nearer centroid at each node and returns the index (into the
    training vectors) of the nearest vector in the reached leaf.
    """

    def __init__(self, X: np.ndarray, leaf: int = 32, seed: int = 0, iters: int = 6):
        self.X = X
        self.X2 = (X * X).sum(1)
        rng = np.random.default_rng(seed)
        self.nodes: list = []  # (centroid_left, centroid_right, left_id, right_id) or ("leaf", idx)
        self.root = self._build(np.arange(len(X)), leaf, rng, iters)

    def _build(self, idx, leaf, rng, iters) -> int:
        if len(idx) <= leaf:
            self.nodes.append(("leaf", idx))
            return len(self.nodes) - 1
        X = self.X[idx]
        c = X[rng.choice(len(idx), 2, replace=False)].copy()
        for _ in range(iters):
            lab = ((X[:, None, :] - c[None]) ** 2).sum(-1).argmin(1)
            if lab.min() == lab.max():
                break
            c = np.stack([X[lab == k].mean(0) for k in (0, 1)])
        lab = ((X[:, None, :] - c[None]) ** 2).sum(-1).argmin(1)
        if lab.min() == lab.max():  # identical vectors: split in half
            lab = (np.arange(len(idx)) >= len(idx) // 2).astype(int)
        node = len(self.nodes)
        self.nodes.append(None)
        left = self._build(idx[lab == 0], leaf, rng, iters)
        right = self._build(idx[lab == 1], leaf, rng, iters)
        self.nodes[node] = (c[0], c[1], left, right)
        return node

    def query(self, v: np.ndarray) -> int:
        n = self.nodes[self.root]
        while not isinstance(n[0], str):
            a, b, left, right = n
            n = self.nodes[left if ((v - a) ** 2).sum() <= ((v - b) ** 2).sum() else right]
        idx = n[1]
        d = self.X2[idx] - 2 * self.X[idx] @ v
        return int(idx[int(d.argmin())])


def wei_levoy(sample, size, *, window: int = 9, parent_window: int = 3, levels: int = 3, search: str = "exact",
              passes: int = 2, seed: int = 0, progress=None) -> TextureResult:
    """Wei & Levoy (2000) multi-resolution synthesis with causal neighbourhoods (see module doc).

    Args:
        sample: path, sample name, (H, W) / (H, W, 3) array or tensor.
        size: output size, int or (H, W) (each level halves it).
        window: causal window N at each level (9); parent_window: n at the parent level (3).
        levels: pyramid levels (3); search: "exact" or "tsvq" (tree-structured VQ, the paper's).
        passes: scanline passes per level (2: the second pass sees synthesized pixels, not the
            start noise, where the toroidal causal window wraps to rows not yet visited; 1 is the paper's).
        seed: random seed of the noise start (and the TSVQ splits): same seed, same output.
        progress: ``progress(pixels_done, pixels_total)`` over all levels.
    Returns:
        ``TextureResult`` (Ctrl-C returns the output as it is: finished levels and the current one's rows).
    Example:
        >>> r = convlens.wei_levoy("brick", 96, window=9, levels=3)
    """
    if window < 3 or window % 2 == 0 or parent_window < 1 or parent_window % 2 == 0:
        raise ConvlensError(f"window and parent_window must be odd (window >= 3), got {window}, {parent_window}")
    if search not in ("exact", "tsvq"):
        raise ConvlensError(f"search must be 'exact' or 'tsvq', got {search!r}")
    src = as_sample(sample)
    H, W = as_size(size)
    if min(H, W) >> (levels - 1) < 4 or min(src.shape[:2]) >> (levels - 1) < window:
        raise ConvlensError(f"{levels} levels are too many for this sample/output size; use fewer --levels")
    rng = np.random.default_rng(seed)
    sp = pyramid(src, levels)
    flat = src.reshape(-1, src.shape[2])
    out = [flat[rng.integers(len(flat), size=(H >> l) * (W >> l))].reshape(H >> l, W >> l, -1).copy()
           for l in range(levels)]
    off, poff = causal_offsets(window), full_offsets(parent_window)
    total = passes * sum(o.shape[0] * o.shape[1] for o in out)
    t0, stopped, done = time.perf_counter(), "done", 0
    half = window // 2
    try:
        for l in range(levels - 1, -1, -1):
            s, sparent = sp[l], (sp[l + 1] if l + 1 < levels else None)
            o, oparent = out[l], (out[l + 1] if l + 1 < levels else None)
            sh, sw = s.shape[:2]
            ys, xs = np.meshgrid(np.arange(half, sh - half), np.arange(half, sw - half), indexing="ij")
            ys, xs = ys.ravel(), xs.ravel()   # sample positions whose windows fit (no wrap in the sample)
            X = _neigh_vectors(s, sparent, ys, xs, off, poff, wrap=False)
            Xc = s[ys, xs]
            X2 = (X * X).sum(1)
            tree = TSVQ(X, seed=seed) if search == "tsvq" else None
            oh, ow = o.shape[:2]
            for y, x in ((y, x) for _ in range(passes) for y in range(oh) for x in range(ow)):
                v = _neigh_vectors(o, oparent, np.array([y]), np.array([x]), off, poff, wrap=True)[0]
                k = tree.query(v) if tree is not None else int((X2 - 2 * (X @ v)).argmin())
                o[y, x] = Xc[k]
                if x == ow - 1:
                    done += ow
                    if progress is not None:
                        progress(done, total)
    except KeyboardInterrupt:
        stopped = "interrupted"
    return finish(out[0], np.ones((H, W), bool), time.perf_counter() - t0, stopped, "wei-levoy")


__all__ = ["wei_levoy", "TSVQ", "pyramid", "causal_offsets"]
