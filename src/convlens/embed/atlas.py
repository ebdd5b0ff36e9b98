"""Thumbnail atlases of a 2-D map: the store's rows along a Z-order (Morton) curve, 256 to an atlas.

A map of N points is sent to a viewer as N / 256 atlas images. The rows are first sorted along a
Z-order curve of their 2-D coordinates (``atlas_order``): each run of 256 consecutive rows then covers a
compact patch of the map, so a viewer zoomed into a region needs few atlases. Atlas ``a`` holds the
rows ``order[a * 256 .. a * 256 + 255]`` as ``cell`` px squares, 16 a row: slot ``j`` at column
``j % 16``, row ``j // 16`` (``atlas_image``).

    order = atlas_order(projection.coords)           # uint32 store rows
    atlas_image(store, order[:PER_ATLAS], cell=32)   # a 512 x 512 RGBA image

Morton (1966), "A computer oriented geodetic data base and a new technique in file sequencing": the
code of a point interleaves the bits of its quantized x and y (x on the even bits, y on the odd ones).
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps

ATLAS_SIDE = 16                 # cells per atlas row and column
PER_ATLAS = ATLAS_SIDE ** 2     # 256 thumbnails per atlas
CELLS = (32, 64)                # cell sizes in px (atlases of 512 or 1024 px)
MORTON_BITS = 16                # bits per axis of the quantized coordinates


def atlas_count(n: int) -> int:
    """How many atlases ``n`` rows fill (the last one may be partly empty)."""
    return -(-int(n) // PER_ATLAS)


def _spread(v: np.ndarray) -> np.ndarray:
    """16-bit integers -> the same bits on the even bit positions of 32 (0b1011 -> 0b1000101)."""
    v = (v | (v << np.uint64(8))) & np.uint64(0x00FF00FF)
    v = (v | (v << np.uint64(4))) & np.uint64(0x0F0F0F0F)
    v = (v | (v << np.uint64(2))) & np.uint64(0x33333333)
    return (v | (v << np.uint64(1))) & np.uint64(0x55555555)


def morton_codes(xy) -> np.ndarray:
    """Z-order codes (uint64) of non-negative integer points ``xy`` (N, 2) below 2**16: the bits of x
    on the even positions, those of y on the odd ones. ``morton_codes([[1, 0], [0, 1], [1, 1]])`` is
    ``[1, 2, 3]``."""
    q = np.asarray(xy, np.uint64).reshape(-1, 2)
    return _spread(q[:, 0]) | (_spread(q[:, 1]) << np.uint64(1))


def atlas_order(coords) -> np.ndarray:
    """Rows sorted along a Z-order (Morton) curve of their 2-D coordinates (uint32): each run of 256
    consecutive rows covers a compact patch of the map.

    Args:
        coords: (N, >=2) coordinates (only the first two columns are used).
    Returns:
        (N,) uint32 row indices; ties keep their row order.
    """
    c = np.asarray(coords, np.float64)[:, :2]
    if not len(c):
        return np.zeros(0, np.uint32)
    top = 2 ** MORTON_BITS - 1
    lo, span = c.min(0), np.maximum(np.ptp(c, 0), 1e-30)
    q = np.clip(((c - lo) / span * top).round(), 0, top).astype(np.uint64)
    return np.argsort(morton_codes(q), kind="stable").astype(np.uint32)


def atlas_image(store, rows, cell: int = 32) -> Image.Image:
    """The thumbnails of ``rows`` (at most 256) of ``store`` as ``cell`` px squares (centre crop,
    bilinear), 16 a row: slot ``j`` at column ``j % 16``, row ``j // 16``. RGBA, transparent where a
    row has no (readable) thumbnail.

    Args:
        store: any store with the read interface (``metadata()`` with a ``thumbnail`` column of PNG/JPEG bytes).
        rows: store rows in slot order.
        cell: cell side in px (32 or 64 in the explorer).
    """
    side = ATLAS_SIDE * cell
    img = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    col = store.metadata().column("thumbnail")
    for j, row in enumerate(list(rows)[:PER_ATLAS]):
        b = col[int(row)].as_py()
        if not b:
            continue
        try:
            t = Image.open(io.BytesIO(b)).convert("RGB")
        except OSError:
            continue
        t = ImageOps.fit(t, (cell, cell), Image.BILINEAR)
        img.paste(t, ((j % ATLAS_SIDE) * cell, (j // ATLAS_SIDE) * cell))
    return img


def atlas_png(store, rows, cell: int = 32) -> bytes:
    """``atlas_image`` as PNG bytes (fast compression: atlases are made on request)."""
    buf = io.BytesIO()
    atlas_image(store, rows, cell).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
