"""Figures of one layer or one unit, as the layer browser shows them: every channel's map as one
atlas (``activation_atlas``, laid out by ``atlas_layout``) and the weights of the conv producing a
channel (``unit_filters_figure``).

    lay = atlas_layout(32, 56, 56)                  # tile size and grid, about 960 px wide
    img, lay = activation_atlas(maps, "layer")      # maps: (C, H, W); tile c at row c // cols, column c % cols
    fig, boxes = unit_filters_figure(model, "features.6", 3)
"""
from __future__ import annotations

import torch
from PIL import Image

from ..errors import ConvlensError
from .activations import render_maps
from .draw import compose, near_square
from .stages import producing_conv

GRID_WIDTH = 960                       # target width of an activation atlas in pixels


def atlas_layout(C: int, H: int, W: int, width: int = GRID_WIDTH) -> dict:
    """Tile size and grid of an activation atlas of ``C`` maps of ``H x W``: about ``width`` px wide,
    ``cols = round(sqrt(1.6 C))`` columns, square tiles of 12-96 px (at most 8x the map) with ``pad``
    px between them. Tile ``c`` is at row ``c // cols``, column ``c % cols``; its top-left corner at
    ``(pad + col * (tile + pad), pad + row * (tile + pad))``."""
    cols = max(1, min(C, int(round((C * 1.6) ** 0.5))))
    pad = 2
    tile = max(12, min(96, width // cols - pad, max(H, W) * 8))
    rows = -(-C // cols)
    return {"cols": cols, "rows": rows, "tile": tile, "pad": pad,
            "width": cols * (tile + pad) + pad, "height": rows * (tile + pad) + pad}


def activation_atlas(maps: torch.Tensor, scale: str = "layer") -> tuple[Image.Image, dict]:
    """Every channel's map of ``maps`` (C, H, W) as one tile (channel order, row-major, white
    background), drawn as ``convlens.activations`` draws them: ``scale`` "layer" (one scale, the
    layer's 99.5th percentile) or "channel" (each map to its max); signed layers diverging (red > 0,
    blue < 0). Returns (image, ``atlas_layout``)."""
    C, H, W = maps.shape
    lay = atlas_layout(C, H, W)
    t, pad = lay["tile"], lay["pad"]
    canvas = Image.new("RGB", (lay["width"], lay["height"]), (255, 255, 255))
    resample = Image.NEAREST if t >= max(H, W) else Image.BILINEAR
    for c, tile in enumerate(render_maps(maps, scale)):
        r, q = divmod(c, lay["cols"])
        canvas.paste(tile.resize((t, t), resample), (pad + q * (t + pad), pad + r * (t + pad)))
    return canvas, lay


def unit_filters_figure(model, layer: str, channel: int):
    """The weights of the conv producing ``layer``'s channel ``channel``, one figure (see
    ``convlens.filters`` for the scale): a first layer as one RGB tile, a depthwise conv as its one
    kernel, deeper convs as a grid of per-input-channel kernels (grey, 0.5 + w / 2max|w|), the
    strongest inputs framed; 1x1 kernels as one square per input. Returns (figure, tile boxes)."""
    conv = producing_conv(model, layer)
    if conv is None:
        raise ConvlensError(f"layer '{layer}' is produced by no Conv2d with {model.layer_info(layer).shape[0]} "
                            "outputs; filters exist only for conv layers and their blocks")
    mod = model.module(conv)
    w = mod.weight.detach().float().cpu()[channel]       # (in/groups, kh, kw)
    in_g, kh, kw = w.shape
    s = float(w.abs().max()) or 1.0
    tiles = 0.5 + w / (2 * s)
    mname = getattr(model, "name", "model")
    shown = f" (the conv producing '{layer}')" if conv != layer else ""
    if in_g == 3 and mod.groups == 1:
        f = max(1, 160 // max(kh, kw))
        return compose([tiles], 1, 1, tile=(kh * f, kw * f), title=f"{mname} {conv}{shown}: filter {channel}",
                       notes=[f"RGB: the weights on the input's R, G, B ({kh}x{kw}); 0 = mid-grey, "
                              f"scale 0.5 + w / 2max|w| (max|w| = {s:.3g})."])
    per_out = mod.out_channels // mod.groups
    base = (channel // per_out) * in_g
    norms = w.flatten(1).norm(dim=1)
    strongest = set(torch.argsort(norms, descending=True)[:min(8, max(1, in_g // 8))].tolist())
    n = min(in_g, 512)
    rows, cols = near_square(n, 32 if kh * kw == 1 else 16)
    t = 14 if kh * kw == 1 else max(kh, kw) * max(1, 28 // max(kh, kw))
    notes = [f"Kernel {kh}x{kw} on each of {in_g} input channel(s) {base}..{base + in_g - 1}"
             + (f" (groups={mod.groups})" if mod.groups > 1 else "") + f"; grey 0.5 + w / 2max|w| (max|w| = {s:.3g}); "
             f"red frame: the {len(strongest)} inputs with the largest weight norm."]
    if n < in_g:
        notes.append(f"Showing inputs {base}..{base + n - 1} of {in_g}.")
    return compose([tiles[i][None] for i in range(n)], rows, cols, tile=(t, t), pad=1 if kh * kw == 1 else 2,
                   title=f"{mname} {conv}{shown}: filter {channel}, {in_g}x{kh}x{kw}", notes=notes,
                   highlight=[i in strongest for i in range(n)])
