"""Figures of an embedding: neighbour rows, pixel-vs-feature neighbours, thumbnail scatter maps,
and Karpathy's t-SNE grid.

The grid (Karpathy, "t-SNE visualization of CNN codes", cnnembed): normalize the 2-D coordinates
to the unit square, lay ``rows x cols`` cell centres over it (``rows x cols >= N``; empty cells stay
blank) and give each point its own cell by minimizing the total squared displacement, a linear
assignment problem solved exactly by SciPy's ``linear_sum_assignment`` (Jonker-Volgenant) on the
rectangular N x cells cost matrix. Above ``chunk`` points the grid is cut into bands of whole rows
filled by y-rank, and each band is solved on its own (memory N x cells would not fit).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from ..errors import ConvlensError
from ..render.figures import font, grid, stack_rows
from .exact import exact_search
from .project import project
from .search import neighbors
from .tiles import neighbor_figure, tile_image  # noqa: F401 - neighbor_figure: importable here as before
from .vectors import ArrayStore

LABEL_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
                 (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def pixel_vectors(store, side: int = 32) -> np.ndarray:
    """Raw pixels of every thumbnail at side x side, flattened (N, 3 side^2) in [0, 1]."""
    out = np.empty((len(store), 3 * side * side), np.float32)
    for i in range(len(store)):
        out[i] = np.asarray(store.thumbnail(i).resize((side, side), Image.BILINEAR), np.float32).reshape(-1) / 255
    return out


def pixel_vs_feature(store, queries, k: int = 8, tile: int = 80, side: int = 32) -> Image.Image:
    """For each query: its neighbours by raw pixels (L2 on side x side RGB) above its neighbours by
    CNN features (cosine), the lecture's argument for features."""
    px = ArrayStore(pixel_vectors(store, side))
    q = list(queries)
    pi, ps = exact_search(px, px.take(q), k, "l2", np.array(q))
    nb = neighbors(store, q, k=k)  # the algorithm, not the facade's method: any VectorStore works
    rows = []
    for r, qi in enumerate(q):
        for title, idx, sc in (("pixels L2", pi[r], ps[r]), ("CNN cos", nb.indices[r], nb.scores[r])):
            tiles = [store.thumbnail(qi)] + [store.thumbnail(int(i)) for i in idx]
            labels = [f"#{qi} {title}"] + [f"#{int(i)} {s:.3f}" for i, s in zip(idx, sc)]
            rows.append(grid(tiles, labels, ncol=k + 1, tile=tile, highlight=[True] + [False] * k, label_size=10))
    return stack_rows(rows)


def _unit(coords: np.ndarray) -> np.ndarray:
    c = np.asarray(coords, np.float64)
    lo, hi = c.min(0), c.max(0)
    return (c - lo) / np.where(hi > lo, hi - lo, 1.0)


def thumbnail_map(coords, images, size: int = 2000, tile: int = 48, labels=None, background=(255, 255, 255),
                  title: str | None = None) -> Image.Image:
    """Thumbnails drawn at their 2-D positions on a ``size`` px canvas (later points on top);
    with ``labels``, each gets a frame in its label's colour and a legend."""
    c = _unit(coords)
    canvas = Image.new("RGB", (size, size), background)
    d = ImageDraw.Draw(canvas)
    span = size - tile
    uniq = sorted({str(l) for l in labels if l is not None}) if labels is not None else []
    colour = {u: LABEL_COLOURS[i % len(LABEL_COLOURS)] for i, u in enumerate(uniq)}
    for i, (x, y) in enumerate(c):
        px, py = int(x * span), int((1 - y) * span)
        canvas.paste(tile_image(images[i], tile), (px, py))
        if labels is not None and labels[i] is not None:
            d.rectangle([px, py, px + tile - 1, py + tile - 1], outline=colour[str(labels[i])], width=max(2, tile // 16))
    if uniq:
        fs = max(12, size // 80)
        for j, u in enumerate(uniq):
            d.rectangle([6, 6 + j * (fs + 4), 6 + fs, 6 + j * (fs + 4) + fs], fill=colour[u])
            d.text((10 + fs, 4 + j * (fs + 4)), u, fill=(20, 20, 20), font=font(fs))
    if title:
        d.text((6, size - max(14, size // 60) - 6), title, fill=(20, 20, 20), font=font(max(12, size // 70)))
    return canvas


@dataclass
class GridAssignment:
    """Each point's cell in a rows x cols grid (cell = row * cols + col), and the total cost."""

    cells: np.ndarray
    rows: int
    cols: int
    cost: float
    seconds: float = 0.0

    def positions(self) -> np.ndarray:
        return np.stack([self.cells // self.cols, self.cells % self.cols], 1)


def grid_shape(n: int, aspect: float = 1.0) -> tuple[int, int]:
    """(rows, cols) with rows * cols >= n, cols / rows close to ``aspect``."""
    cols = max(1, math.ceil(math.sqrt(n * aspect)))
    rows = max(1, math.ceil(n / cols))
    return rows, cols


def _assign(pts: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, float]:
    from scipy.optimize import linear_sum_assignment
    cost = ((pts[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    r, c = linear_sum_assignment(cost)
    out = np.empty(len(pts), np.int64)
    out[r] = c
    return out, float(cost[r, c].sum())


def grid_assign(coords, rows: int | None = None, cols: int | None = None, chunk: int = 20_000) -> GridAssignment:
    """Snap 2-D points to distinct cells of a rows x cols grid by exact linear assignment.

    Args:
        coords: (N, 2) any scale (normalized to the unit square per axis).
        rows: the grid's rows and
        cols: columns (default: near-square with rows * cols >= N); more cells than points
            leaves empty cells.
        chunk: above this many points, solve bands of whole grid rows separately (by y-rank).
    Example:
        >>> g = grid_assign(np.random.rand(100, 2)); sorted(g.cells) == list(range(100))
        True
    """
    import time
    t0 = time.perf_counter()
    c = _unit(coords)
    n = len(c)
    if rows is None or cols is None:
        rows, cols = grid_shape(n) if rows is None and cols is None else (
            rows or math.ceil(n / cols), cols or math.ceil(n / rows))
    if rows * cols < n:
        raise ConvlensError(f"a {rows} x {cols} grid has {rows * cols} cells for {n} points; enlarge it")
    gy, gx = np.meshgrid((np.arange(rows) + 0.5) / rows, (np.arange(cols) + 0.5) / cols, indexing="ij")
    centres = np.stack([gx.ravel(), 1 - gy.ravel()], 1)  # row 0 at the top (largest y)
    if n <= chunk:
        cells, cost = _assign(c, centres)
        return GridAssignment(cells, rows, cols, cost, time.perf_counter() - t0)
    # bands of whole rows; points go to bands by descending y, in proportion to the band's cells
    band_rows = max(1, chunk // cols)
    order = np.argsort(-c[:, 1], kind="stable")
    cells = np.empty(n, np.int64)
    cost, taken, r0 = 0.0, 0, 0
    while r0 < rows:
        r1 = min(rows, r0 + band_rows)
        share = n - taken if r1 == rows else round(n * (r1 * cols) / (rows * cols)) - taken
        pts = order[taken:taken + share]
        sel = np.arange(r0 * cols, r1 * cols)
        a, cst = _assign(c[pts], centres[sel])
        cells[pts] = sel[a]
        cost += cst
        taken += share
        r0 = r1
    return GridAssignment(cells, rows, cols, cost, time.perf_counter() - t0)


def grid_image(assignment: GridAssignment, images, tile: int = 48, background=(255, 255, 255)) -> Image.Image:
    """The tiled picture: image i drawn in its cell; empty cells stay ``background``."""
    g = assignment
    canvas = Image.new("RGB", (g.cols * tile, g.rows * tile), background)
    for i, cell in enumerate(g.cells):
        r, col = divmod(int(cell), g.cols)
        canvas.paste(tile_image(images[i], tile), (col * tile, r * tile))
    return canvas


def tsne_grid(store, projection=None, rows: int | None = None, cols: int | None = None, tile: int = 48,
              seed: int = 0, **kw) -> tuple[Image.Image, GridAssignment]:
    """Karpathy's t-SNE grid of a store: t-SNE (cached in the store), assignment, tiled image."""
    p = projection or project(store, "tsne", seed=seed, **kw)
    g = grid_assign(p.coords, rows, cols)
    return grid_image(g, store.thumbnails(), tile), g
