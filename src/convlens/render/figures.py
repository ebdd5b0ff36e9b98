"""Figures as PIL images: labelled grids, heat-map overlays with colour bars, side-by-side rows.

Everything takes tensors in [0, 1] ((3, H, W), (1, 3, H, W) or (H, W) maps) or uint8 arrays and
returns a ``PIL.Image``; ``save_png`` writes it atomically. Text uses matplotlib's bundled DejaVu
font, so the same inputs give byte-identical PNGs on every machine.
"""
from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..images.io import to_uint8

BG = (255, 255, 255)
FG = (20, 20, 20)


@lru_cache(maxsize=8)
def font(size: int = 12) -> ImageFont.FreeTypeFont:
    import matplotlib  # heavy: only when a font is first needed
    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    return ImageFont.truetype(str(path), size)


def as_pil(image) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    a = to_uint8(image)
    return Image.fromarray(a).convert("RGB")


def text_size(text: str, size: int = 12) -> tuple[int, int]:
    box = font(size).getbbox(text or " ")
    return box[2] - box[0], size + 4


def fit_text(text: str, width: int, size: int) -> str:
    if text_size(text, size)[0] <= width:
        return text
    while text and text_size(text + "…", size)[0] > width:
        text = text[:-1]
    return text + "…"


def grid(images: Sequence, labels: Sequence[str] | None = None, ncol: int | None = None, pad: int = 2,
         tile: int | tuple | None = None, label_size: int = 11, title: str | None = None,
         upscale: str = "nearest", highlight: Sequence[bool] | None = None) -> Image.Image:
    """Tiles in rows, each with an optional label below it.

    Args:
        images: tensors / arrays / PIL images (any sizes; tiles take the largest size unless ``tile``).
        labels: one caption per tile (truncated to the tile's width).
        ncol: tiles per row (default: a near-square layout).
        tile: resize every tile to this size (int or (H, W)); small filters use ``upscale``.
        highlight: draw a red frame around the tiles marked True.
    """
    pil = [as_pil(im) for im in images]
    n = len(pil)
    if n == 0:
        return Image.new("RGB", (1, 1), BG)
    if tile is not None:
        th, tw = (tile, tile) if isinstance(tile, int) else tile
        rs = Image.NEAREST if upscale == "nearest" else Image.BILINEAR
        pil = [p.resize((tw, th), rs) if p.size != (tw, th) else p for p in pil]
    th = max(p.height for p in pil)
    tw = max(p.width for p in pil)
    ncol = ncol or int(np.ceil(np.sqrt(n)))
    nrow = int(np.ceil(n / ncol))
    lab_h = text_size("Ag", label_size)[1] if labels else 0
    title_h = text_size(title, label_size + 3)[1] + 4 if title else 0
    W = ncol * (tw + pad) + pad
    H = title_h + nrow * (th + lab_h + pad) + pad
    canvas = Image.new("RGB", (W, H), BG)
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((pad, 2), fit_text(title, W - 2 * pad, label_size + 3), fill=FG, font=font(label_size + 3))
    for i, p in enumerate(pil):
        r, c = divmod(i, ncol)
        x = pad + c * (tw + pad)
        y = title_h + pad + r * (th + lab_h + pad)
        canvas.paste(p, (x, y))
        if highlight is not None and highlight[i]:
            draw.rectangle([x, y, x + p.width - 1, y + p.height - 1], outline=(220, 30, 30), width=2)
        if labels:
            draw.text((x, y + th + 1), fit_text(str(labels[i]), tw, label_size), fill=FG, font=font(label_size))
    return canvas


def colormap(values: np.ndarray, cmap: str = "inferno") -> np.ndarray:
    """Map values in [0, 1] to uint8 RGB with a matplotlib colour map."""
    import matplotlib
    lut = (matplotlib.colormaps[cmap](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)
    idx = np.clip(np.nan_to_num(values) * 255 + 0.5, 0, 255).astype(np.int64)
    return lut[idx]


def normalize_map(heat, mode: str = "abs", percentile: float = 99.5) -> np.ndarray:
    """A raw attribution map (H, W) -> [0, 1] for display.

    mode: "abs" (|m| / p-th percentile), "positive" (max(m, 0)), "negative" (max(-m, 0)),
    "signed" (0.5 + m / 2 max|m|: diverging, 0.5 = zero), "minmax" ((m - min) / (max - min)).
    NaN (not computed, e.g. an interrupted occlusion) is drawn as zero.
    """
    m = heat.detach().float().cpu().numpy() if isinstance(heat, torch.Tensor) else np.asarray(heat, np.float32)
    m = np.nan_to_num(np.squeeze(m), nan=0.0)
    if m.ndim == 3:  # (C, H, W) attribution -> per-pixel max of |.| (Simonyan)
        m = np.abs(m).max(0) if mode != "signed" else m.sum(0)
    if mode == "minmax":
        lo, hi = float(m.min()), float(m.max())
        return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
    if mode == "signed":
        s = float(np.abs(m).max()) or 1.0
        return 0.5 + m / (2 * s)
    if mode == "positive":
        m = np.maximum(m, 0)
    elif mode == "negative":
        m = np.maximum(-m, 0)
    else:
        m = np.abs(m)
    s = float(np.percentile(m, percentile)) if m.size else 0.0
    s = s if s > 0 else (float(m.max()) or 1.0)
    return np.clip(m / s, 0, 1)


def heatmap(heat, mode: str = "abs", cmap: str | None = None, size: tuple[int, int] | None = None) -> Image.Image:
    """A map as a coloured image (``cmap`` defaults to "inferno", "RdBu_r" for signed maps)."""
    m = normalize_map(heat, mode)
    img = Image.fromarray(colormap(m, cmap or ("RdBu_r" if mode == "signed" else "inferno")))
    if size is not None and img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.BILINEAR)
    return img


def overlay(image, heat, alpha: float = 0.55, mode: str = "abs", cmap: str | None = None,
            colorbar: bool = False, label: str | None = None) -> Image.Image:
    """A heat map blended over an image (resized to it); optionally with a colour bar on the right.

    The colour bar is labelled with the raw map's range, so the figure keeps the unnormalized scale.
    """
    base = as_pil(image)
    hm = heatmap(heat, mode, cmap, size=(base.height, base.width))
    out = Image.blend(base, hm, alpha)
    if not colorbar:
        return out
    m = heat.detach().float().cpu().numpy() if isinstance(heat, torch.Tensor) else np.asarray(heat)
    m = np.nan_to_num(m, nan=0.0)
    lo, hi = (float(np.abs(m).min()), float(np.abs(m).max())) if mode == "abs" else (float(m.min()), float(m.max()))
    bar_w, pad = 14, 6
    bar = colormap(np.linspace(1, 0, out.height)[:, None].repeat(bar_w, 1), cmap or ("RdBu_r" if mode == "signed" else "inferno"))
    labw = max(text_size(f"{hi:.3g}", 10)[0], text_size(f"{lo:.3g}", 10)[0])
    canvas = Image.new("RGB", (out.width + pad + bar_w + 4 + labw + 2, out.height + (16 if label else 0)), BG)
    canvas.paste(out, (0, 0))
    canvas.paste(Image.fromarray(bar), (out.width + pad, 0))
    d = ImageDraw.Draw(canvas)
    d.text((out.width + pad + bar_w + 3, 0), f"{hi:.3g}", fill=FG, font=font(10))
    d.text((out.width + pad + bar_w + 3, out.height - 13), f"{lo:.3g}", fill=FG, font=font(10))
    if label:
        d.text((2, out.height + 1), label, fill=FG, font=font(11))
    return canvas


def side_by_side(images: Sequence, labels: Sequence[str] | None = None, height: int | None = 224,
                 title: str | None = None) -> Image.Image:
    """One row of panels scaled to a common height, with captions."""
    pil = [as_pil(im) for im in images]
    if height:
        pil = [p.resize((max(1, round(p.width * height / p.height)), height), Image.BILINEAR)
               if p.height != height else p for p in pil]
    pad = 4
    lab_h = text_size("Ag", 12)[1] if labels else 0
    title_h = text_size("Ag", 14)[1] + 2 if title else 0
    W = sum(p.width for p in pil) + pad * (len(pil) + 1)
    H = max(p.height for p in pil) + lab_h + 2 * pad + title_h
    canvas = Image.new("RGB", (W, H), BG)
    d = ImageDraw.Draw(canvas)
    if title:
        d.text((pad, 1), fit_text(title, W - 2 * pad, 14), fill=FG, font=font(14))
    x = pad
    for i, p in enumerate(pil):
        canvas.paste(p, (x, title_h + pad))
        if labels:
            d.text((x, title_h + pad + p.height + 1), fit_text(str(labels[i]), p.width, 12), fill=FG, font=font(12))
        x += p.width + pad
    return canvas


def stack_rows(rows: Sequence[Image.Image], pad: int = 4) -> Image.Image:
    """Stack figures vertically, left-aligned."""
    W = max(r.width for r in rows)
    H = sum(r.height for r in rows) + pad * (len(rows) - 1)
    canvas = Image.new("RGB", (W, H), BG)
    y = 0
    for r in rows:
        canvas.paste(r, (0, y))
        y += r.height + pad
    return canvas


def new_figure(width: float = 6.0, height: float = 4.0, ncols: int = 1):
    """A matplotlib (figure, axes) on the Agg backend (no display needed); ``ncols`` > 1: an array of axes."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), dpi=100)
    if ncols == 1:
        return fig, fig.add_subplot(1, 1, 1)
    return fig, fig.subplots(1, ncols)


def fig_to_pil(fig):
    """Render a matplotlib figure to a PIL image (RGB)."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    buf.seek(0)
    return Image.open(buf).convert("RGB")
