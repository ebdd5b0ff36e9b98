"""Tile canvases for the inspect figures: a grid with a title, notes, row/column labels and
per-tile captions, returning where each tile was pasted (tests read tile pixels back from it).

Text uses the foundation's bundled DejaVu font, so the same inputs give byte-identical PNGs.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..render.figures import BG, FG, as_pil, fit_text, font, text_size

HIGHLIGHT = (220, 30, 30)


def to_pil(tile, px: tuple[int, int] | None = None, resample=Image.NEAREST) -> Image.Image:
    """A (C, h, w) tensor in [0, 1] (C = 1 or 3), an (h, w) map, or a PIL image -> RGB PIL at ``px`` (H, W)."""
    if isinstance(tile, torch.Tensor):
        t = tile.detach().float().cpu()
        if t.ndim == 2:
            t = t[None]
        if t.shape[0] == 1:
            t = t.expand(3, -1, -1)
        img = as_pil(t)
    elif isinstance(tile, np.ndarray):
        img = Image.fromarray(tile).convert("RGB")
    else:
        img = tile.convert("RGB")
    if px is not None and img.size != (px[1], px[0]):
        img = img.resize((px[1], px[0]), resample)
    return img


def compose(tiles: Sequence, nrow: int, ncol: int, *, tile: tuple[int, int], pad: int = 2,
            labels: Sequence[str] | None = None, row_labels: Sequence[str] | None = None,
            col_labels: Sequence[str] | None = None, title: str | None = None, notes: Sequence[str] = (),
            highlight: Sequence[bool] | None = None, label_size: int = 11, resample=Image.NEAREST,
            left: Image.Image | None = None, gap: tuple[int, int] | None = None) -> tuple[Image.Image, list]:
    """Paste ``tiles`` (row-major, None = empty cell) on a white canvas.

    Args:
        tile: (H, W) of each cell in pixels; tiles are resized to it with ``resample``.
        labels: caption under each tile; row_labels / col_labels: text left of rows / above columns.
        title, notes: lines of text above the grid (notes in grey).
        highlight: a red frame around the tiles marked True.
        left: an image pasted left of the grid (e.g. the input image).
        gap: (every, px) adds ``px`` extra pixels after every ``every`` columns (group separators).
    Returns:
        (image, boxes) with boxes[i] = (x, y, w, h) of tile i on the canvas (None for empty cells).
    """
    th, tw = tile
    lab_h = text_size("Ag", label_size)[1] if labels else 0
    title_h = text_size("Ag", label_size + 3)[1] + 2 if title else 0
    note_h = len(notes) * (text_size("Ag", label_size)[1])
    row_w = max([text_size(r, label_size)[0] for r in row_labels] + [0]) + 6 if row_labels else 0
    col_h = text_size("Ag", label_size - 1)[1] if col_labels else 0
    gaps = [0] * ncol
    if gap:
        every, px = gap
        gaps = [px * (c // every) for c in range(ncol)]
    left_w = (left.width + 3 * pad) if left is not None else 0
    grid_w = row_w + ncol * (tw + pad) + pad + (gaps[-1] if ncol else 0)
    grid_h = col_h + nrow * (th + lab_h + pad) + pad
    header_h = title_h + note_h + (2 if title or notes else 0)
    W = left_w + grid_w
    H = header_h + max(grid_h, (left.height + 2 * pad) if left is not None else 0)
    # the header text must fit: widen the canvas rather than cut the note
    text_w = max([text_size(t, label_size + 3)[0] for t in ([title] if title else [])] +
                 [text_size(n, label_size)[0] for n in notes] + [0]) + 2 * pad
    W = max(W, min(text_w, 4 * W))
    canvas = Image.new("RGB", (W, H), BG)
    d = ImageDraw.Draw(canvas)
    y0 = pad
    if title:
        d.text((pad, 0), fit_text(title, W - 2 * pad, label_size + 3), fill=FG, font=font(label_size + 3))
        y0 = title_h
    for n in notes:
        d.text((pad, y0), fit_text(n, W - 2 * pad, label_size), fill=(90, 90, 90), font=font(label_size))
        y0 += text_size("Ag", label_size)[1]
    if left is not None:
        canvas.paste(left, (pad, header_h + col_h + pad))
    gx, gy = left_w + row_w, header_h + col_h
    if col_labels:
        for c, lab in enumerate(col_labels[:ncol]):
            d.text((gx + pad + c * (tw + pad) + gaps[c], header_h), str(lab), fill=FG, font=font(label_size - 1))
    if row_labels:
        for r, lab in enumerate(row_labels[:nrow]):
            ty = gy + pad + r * (th + lab_h + pad) + max(0, (th - label_size) // 2 - 2)
            d.text((left_w + 2, ty), str(lab), fill=FG, font=font(label_size))
    boxes: list = []
    for i, t in enumerate(tiles):
        r, c = divmod(i, ncol)
        if r >= nrow:
            break
        if t is None:
            boxes.append(None)
            continue
        img = to_pil(t, (th, tw), resample)
        x = gx + pad + c * (tw + pad) + gaps[c]
        y = gy + pad + r * (th + lab_h + pad)
        canvas.paste(img, (x, y))
        boxes.append((x, y, tw, th))
        if highlight is not None and highlight[i]:
            d.rectangle([x - 1, y - 1, x + tw, y + th], outline=HIGHLIGHT, width=2)
        if labels and labels[i]:
            d.text((x, y + th + 1), fit_text(str(labels[i]), tw + pad, label_size), fill=FG, font=font(label_size))
    return canvas, boxes


def near_square(n: int, max_cols: int = 16) -> tuple[int, int]:
    """(rows, cols) of a near-square layout for ``n`` tiles."""
    ncol = max(1, min(max_cols, int(np.ceil(np.sqrt(max(n, 1))))))
    return int(np.ceil(n / ncol)), ncol
