"""Activation grids: the C feature maps of one image at one layer (Yosinski et al. 2015, the Deep
Visualization Toolbox), ordered by channel or by mean activation, the strongest channels framed in
red, with a per-channel summary (mean, max, fraction of positions > 0).

Display scale: ``scale="layer"`` (default) divides every map by one number for the whole layer (the
99.5th percentile of |a| over all maps, values above it saturate), so weak channels look weak, as in
the toolbox; ``scale="channel"`` stretches each map to its own max.
Non-negative layers (after a ReLU) are drawn black -> white; layers with negative values (linear
bottlenecks such as MobileNetV2's block outputs) use a diverging map, white = 0, red > 0, blue < 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from PIL import Image

from ..errors import ConvlensError
from ..images import fit, image_from_arg, load_image
from ..images.io import save_png
from ..models.model import Model
from ..probe import Probe
from ..render.figures import colormap
from .draw import compose, near_square, to_pil

ORDERS = ("channel", "mean")


@dataclass
class LayerActivations:
    """What ``activations`` computed and drew.

    Attributes:
        layer: dotted name; maps: (C, H, W) activations of the image (equal to ``Probe``'s).
        mean, max, active: (C,) per-channel mean, max and fraction of positions > 0.
        order: channel indices in drawing order; strongest: the highlighted channels (by mean).
        figure: the PIL image (input image left, map grid right); note: what is shown.
    """

    layer: str
    maps: torch.Tensor
    mean: torch.Tensor
    max: torch.Tensor
    active: torch.Tensor
    order: list[int]
    strongest: list[int]
    note: str
    figure: Image.Image = field(repr=False)
    boxes: list = field(repr=False, default_factory=list)

    def summary(self, n: int | None = None, by: str = "mean") -> list[tuple[int, float, float, float]]:
        """(channel, mean, max, fraction active) rows, strongest first by ``by`` ("mean" or "max")."""
        key = self.mean if by == "mean" else self.max
        idx = torch.argsort(key, descending=True, stable=True).tolist()[: n or len(key)]
        return [(c, float(self.mean[c]), float(self.max[c]), float(self.active[c])) for c in idx]

    def save(self, path):
        return save_png(self.figure, path)


def layer_scale(maps: torch.Tensor, q: float = 0.995) -> torch.Tensor:
    """The layer's display scale: the ``q`` quantile of |a| over all maps (one hot spot must not
    turn every other map black), or the max when that quantile is 0."""
    a = maps.abs().flatten().float()
    if a.numel() > 1_000_000:
        a = a[torch.linspace(0, a.numel() - 1, 1_000_000).long()]
    s = torch.quantile(a, q)
    return (s if s > 0 else a.max()).clamp_min(1e-12)


def render_maps(maps: torch.Tensor, scale: str) -> list[Image.Image]:
    """Activation maps (C, H, W) as PIL tiles: maps with negative values on RdBu_r (0 in its middle),
    others in grey from 0; ``scale`` "layer" divides all by ``layer_scale``, else each map by its own max |a|."""
    signed = bool((maps < 0).any())
    m = maps.float()
    if scale == "layer":
        s = layer_scale(m).view(1, 1, 1)
    else:
        s = m.abs().flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)
    if signed:
        vals = (0.5 + m / (2 * s)).clamp(0, 1).numpy()
        return [Image.fromarray(colormap(v, "RdBu_r")) for v in vals]
    vals = (m / s).clamp(0, 1)
    return [to_pil(v) for v in vals]




def activations(model: Model, image, layer: str, *, order: str = "channel", highlight: int = 8,
                max_channels: int = 256, scale: str = "layer", tile: int | None = None,
                size="model") -> LayerActivations:
    """Feature maps of one image at ``layer`` as a grid, with a per-channel summary.

    Args:
        model: a ``convlens.Model``.
        image: (1, 3, H, W) in [0, 1], a path, or a sample name such as "chelsea".
        layer: dotted name of a layer with a (C, H, W) output (``model.layers()``).
        order: "channel" (0, 1, 2, ...) or "mean" (strongest mean activation first).
        highlight: frame the ``highlight`` channels with the largest mean in red.
        max_channels: draw at most this many maps (in ``order``); the note says when some are left out.
        scale: "layer" (one scale for all maps) or "channel" (each map to its own max).
        tile: tile side in pixels (default: the map size upscaled to 48-96 px).
        size: "model" resizes + centre-crops the image to the model's input size; None keeps it.
    Returns:
        ``LayerActivations`` (maps, mean, max, active, order, strongest, figure).
    Example:
        >>> a = activations(load_model(), "chelsea", "features.3", order="mean")
        >>> a.maps.shape
        torch.Size([24, 56, 56])
    """

    if order not in ORDERS:
        raise ConvlensError(f"order must be one of {', '.join(ORDERS)}, got '{order}'")
    if scale not in ("layer", "channel"):
        raise ConvlensError(f"scale must be 'layer' or 'channel', got '{scale}'")
    if not isinstance(model, Model):
        raise ConvlensError("activations needs a convlens.Model; wrap your module with convlens.Model.wrap(module)")
    img = image_from_arg(image) if isinstance(image, str) else load_image(image)
    if img.shape[0] != 1:
        raise ConvlensError(f"activations draws one image; got a batch of {img.shape[0]} (pass images[i:i+1])")
    if size == "model":
        img = fit(img, model.input_size)
    elif size is not None:
        img = fit(img, size)
    with Probe(model, layer, detach=True, stop=True) as probe, torch.inference_mode():
        probe.run(img.to(model.device))
        a = probe[layer]
    if a.ndim != 4:
        raise ConvlensError(f"layer '{layer}' has output shape {tuple(a.shape[1:])}, not (C, H, W); pick a conv layer")
    maps = a[0].detach().float().cpu().clone()
    C, H, W = maps.shape
    mean, mx = maps.flatten(1).mean(1), maps.flatten(1).amax(1)
    active = (maps > 0).flatten(1).float().mean(1)
    by_mean = torch.argsort(mean, descending=True, stable=True).tolist()
    seq = by_mean if order == "mean" else list(range(C))
    shown = seq[:max_channels]
    strongest = by_mean[:max(0, highlight)]
    tpx = tile or int(min(96, max(48, H * max(1, round(48 / H)))))
    rows, cols = near_square(len(shown), 16 if tpx <= 64 else 12)
    tiles = render_maps(maps[shown], scale)
    mname = getattr(model, "name", "model")
    signed = bool((maps < 0).any())
    notes = [f"{C} maps of {H}x{W}, ordered by {'channel index' if order == 'channel' else 'mean activation'}; "
             f"label: channel and mean; red frame: the {len(strongest)} strongest by mean.",
             f"Scale: {'one for the layer' if scale == 'layer' else 'each map to its max'} "
             f"({'99.5th pct of |a| = ' + format(float(layer_scale(maps)), '.3g') + ', ' if scale == 'layer' else ''}"
             f"max |a| = {float(maps.abs().max()):.3g}); "
             + ("diverging: red > 0, blue < 0, white = 0." if signed else "black = 0, white = max.")]
    if len(shown) < C:
        notes.append(f"Too many to draw: showing {len(shown)} of {C} channels (max_channels={max_channels}).")
    left = to_pil(img[0], (min(224, 3 * tpx), min(224, 3 * tpx)), Image.BILINEAR)
    fig, boxes = compose(tiles, rows, cols, tile=(tpx, tpx), labels=[f"c{c} {float(mean[c]):.2f}" for c in shown],
                         title=f"{mname} {layer}: activations of one image", notes=notes,
                         highlight=[c in strongest for c in shown], left=left,
                         resample=Image.NEAREST if tpx >= H else Image.BILINEAR,
                         label_size=10)
    return LayerActivations(layer=layer, maps=maps, mean=mean, max=mx, active=active, order=shown,
                            strongest=strongest, note=" ".join(notes), figure=fig, boxes=boxes)
