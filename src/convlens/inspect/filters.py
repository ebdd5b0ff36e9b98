"""Filter grids: a conv layer's raw weights drawn as images (the lecture's "first-layer filters").

Scaling (sign-preserving, so zero is mid-grey and colour/sign stay visible)::

    pixel = 0.5 + w / (2 s)          s = max |w| over one filter  (scale="per_filter", default)
                                     s = max |w| over the layer   (scale="shared")

A first layer with 3 input channels draws each filter as an RGB tile (R, G, B = the weights applied
to the input's R, G, B). Later layers draw each (output, input) kernel as a grey tile, rows = output
channels, columns = input channels; "per_filter" then shares one ``s`` across a row (the whole
filter of one output channel). Grouped / depthwise convs draw only the kernels that exist and say
which inputs each output channel sees. Big layers are cut to ``max_out`` x ``max_in`` tiles with a
note saying so.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from PIL import Image
from torch import nn

from ..errors import ConvlensError, closest
from ..images.io import save_png
from .draw import compose, near_square

SCALES = ("per_filter", "shared")


@dataclass
class FilterGrid:
    """What ``filters`` drew.

    Attributes:
        layer: the conv module's dotted name; kind: "rgb", "grey", "depthwise" or "grouped".
        weight: the raw weight tensor (out, in/groups, kh, kw), a detached copy.
        tiles: (n, 3, kh, kw) for "rgb", (n, 1, kh, kw) otherwise: the scaled tiles in [0, 1], row-major
            as drawn (for "grey"/"grouped": rows x cols kernels; "depthwise": one per channel).
        rows, cols: layout of the tiles; out_index / in_index: weight indices of each tile.
        scale: "per_filter" or "shared"; scales: the ``s`` used for each tile.
        note: what is shown (limits, grouping); figure: the PIL image; boxes: (x, y, w, h) per tile.
    """

    layer: str
    kind: str
    weight: torch.Tensor
    tiles: torch.Tensor
    rows: int
    cols: int
    out_index: list[int]
    in_index: list[int]
    scale: str
    scales: torch.Tensor
    note: str
    figure: Image.Image = field(repr=False)
    boxes: list = field(repr=False, default_factory=list)

    def save(self, path):
        """Write the figure as a PNG (atomic). Returns the path."""
        return save_png(self.figure, path)


def conv_layer(model: nn.Module, layer: str | None) -> tuple[str, nn.Conv2d]:
    """Resolve ``layer`` to a Conv2d: None -> the first one; a container -> the first one inside it."""
    net = getattr(model, "net", model)
    mods = dict(net.named_modules())
    convs = [n for n, m in mods.items() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ConvlensError("this model has no Conv2d layer to draw filters of")
    if layer is None:
        return convs[0], mods[convs[0]]
    if layer not in mods or layer == "":
        raise ConvlensError(f"unknown layer '{layer}'; closest conv layers: {closest(layer, convs)} "
                            f"(list them with `convlens layers MODEL --kind conv`)")
    m = mods[layer]
    if isinstance(m, nn.Conv2d):
        return layer, m
    inside = [n for n in convs if n.startswith(layer + ".")]
    if not inside:
        raise ConvlensError(f"layer '{layer}' is a {type(m).__name__} with no Conv2d inside; closest conv "
                            f"layers: {closest(layer, convs)}")
    return inside[0], mods[inside[0]]


def _factor(k: int, target: int) -> int:
    return max(1, round(target / k))


def filters(model: nn.Module, layer: str | None = None, *, scale: str = "per_filter", max_out: int = 64,
            max_in: int = 32, tile: int | None = None, title: str | None = None) -> FilterGrid:
    """Draw a conv layer's raw weights as a grid of tiles.

    Args:
        model: a ``convlens.Model`` or any ``nn.Module`` (only read).
        layer: dotted name of a Conv2d, or of a block (its first Conv2d is used); None: the first conv.
        scale: "per_filter" (pixel = 0.5 + w / 2max|w| of that filter) or "shared" (max over the layer).
        max_out: at most this many output rows are drawn (a note says so).
        max_in: at most this many input columns are drawn.
        tile: tile size in pixels (kernels are upscaled by an integer factor, nearest neighbour);
            default ~44 px for RGB tiles, ~22 px for grey kernels.
        title: figure title (default: model, layer, weight shape).
    Returns:
        ``FilterGrid`` (``.figure`` is the PIL image, ``.tiles`` the scaled kernels).
    Example:
        >>> g = filters(load_model("alexnet", weights=None), "features.0")
        >>> g.tiles.shape
        torch.Size([64, 3, 11, 11])
    """
    if scale not in SCALES:
        raise ConvlensError(f"scale must be one of {', '.join(SCALES)}, got '{scale}'")
    if max_out < 1 or max_in < 1:
        raise ConvlensError("max_out and max_in must be at least 1")
    name, conv = conv_layer(model, layer)
    w = conv.weight.detach().float().cpu().clone()
    out_c, in_g, kh, kw = w.shape
    groups = conv.groups
    in_c = in_g * groups
    layer_s = float(w.abs().max()) or 1.0
    mname = getattr(model, "name", type(model).__name__)
    shape_txt = f"{out_c}x{in_g}x{kh}x{kw}"
    notes = []
    if layer is not None and name != layer:
        notes.append(f"'{layer}' is a block; drawing its first conv '{name}'.")

    def svals(rows_w: torch.Tensor) -> torch.Tensor:  # one s per output channel
        if scale == "shared":
            return torch.full((rows_w.shape[0],), layer_s)
        s = rows_w.abs().flatten(1).amax(1)
        return torch.where(s > 0, s, torch.ones_like(s))

    n_out = min(out_c, max_out)
    s_out = svals(w[:n_out])
    if in_c == 3 and groups == 1:
        kind = "rgb"
        tiles = 0.5 + w[:n_out] / (2 * s_out.view(-1, 1, 1, 1))
        out_idx, in_idx = list(range(n_out)), [-1] * n_out
        rows, cols = near_square(n_out, 16)
        scales = s_out
        f = _factor(max(kh, kw), tile or 44)
        draw_tiles = list(tiles)
        labels, row_labels, col_labels = None, None, None
        notes.insert(0, f"RGB tiles: each filter's R, G, B weights; 0 = mid-grey; scale {scale}: "
                        f"0.5 + w / 2max|w| ({'per filter' if scale == 'per_filter' else f'max|w| = {layer_s:.3g} for all'}).")
    elif in_g == 1 and groups == out_c and groups > 1:
        kind = "depthwise"
        tiles = 0.5 + w[:n_out] / (2 * s_out.view(-1, 1, 1, 1))
        out_idx, in_idx = list(range(n_out)), list(range(n_out))
        rows, cols = near_square(n_out, 16)
        scales = s_out
        f = _factor(max(kh, kw), tile or 30)
        draw_tiles = list(tiles)
        labels = [f"c{o}" for o in out_idx]
        row_labels = col_labels = None
        notes.insert(0, f"Depthwise conv (groups={groups}): one {kh}x{kw} kernel per channel; channel c sees "
                        f"only input channel c. Grey: 0.5 + w / 2max|w| ({scale}).")
    else:
        kind = "grouped" if groups > 1 else "grey"
        n_in = min(in_g, max_in)
        rows, cols = n_out, n_in
        sub = w[:n_out, :n_in]
        tiles = (0.5 + sub / (2 * s_out.view(-1, 1, 1, 1))).reshape(n_out * n_in, 1, kh, kw)
        out_idx = [o for o in range(n_out) for _ in range(n_in)]
        if groups > 1:
            per_out = out_c // groups
            in_idx = [(o // per_out) * in_g + i for o in range(n_out) for i in range(n_in)]
            notes.insert(0, f"Grouped conv (groups={groups}): output channel o sees input channels "
                            f"g*{in_g}..g*{in_g}+{in_g - 1}, g = o // {per_out}; columns are those {in_g} inputs.")
        else:
            in_idx = [i for _ in range(n_out) for i in range(n_in)]
        scales = s_out.repeat_interleave(n_in)
        f = _factor(max(kh, kw), tile or (22 if kh > 1 else 12))
        draw_tiles = list(tiles)
        labels = None
        row_labels = [f"out {o}" for o in range(n_out)]
        every = 1 if kw * f >= 22 else (2 if kw * f >= 12 else 4)
        col_labels = [f"{i}" if i % every == 0 else "" for i in range(n_in)]
        notes.insert(0, f"Rows = output channels, columns = input channels; each tile one {kh}x{kw} kernel, "
                        f"grey 0.5 + w / 2max|w| ({'per output filter' if scale == 'per_filter' else 'shared'}).")
        if n_in < in_g:
            notes.append(f"Too large to draw whole: showing input channels 0..{n_in - 1} of {in_g} "
                         f"(max_in={max_in}).")
    if n_out < out_c:
        notes.append(f"Too large to draw whole: showing output channels 0..{n_out - 1} of {out_c} "
                     f"(max_out={max_out}).")
    tpx = (kh * f, kw * f)
    title = title or f"{mname} {name}: weights {shape_txt}" + (f", groups={groups}" if groups > 1 else "")
    fig, boxes = compose(draw_tiles, rows, cols, tile=tpx, pad=2 if kind != "grey" or kh > 1 else 1,
                         labels=labels, row_labels=row_labels, col_labels=col_labels, title=title, notes=notes,
                         label_size=11)
    return FilterGrid(layer=name, kind=kind, weight=w, tiles=tiles.contiguous(), rows=rows, cols=cols,
                      out_index=out_idx, in_index=in_idx, scale=scale, scales=scales, note=" ".join(notes),
                      figure=fig, boxes=boxes)
