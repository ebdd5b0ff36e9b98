"""One unit (a channel of a layer): the conv producing it and its strongest inputs, and its slice of
a layer's top-k pass.

    u = conv_inputs(model, "features.6", 3)          # u.conv, u.kernel, u.strongest [(input, norm), ...]
    top = top_activations(model, images, "features.6", None, k=9)   # every channel, one pass
    sub = channel_top(top, 3)                        # channel 3 alone, e.g. for max_activating_patches(state=sub)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConvlensError
from .stages import producing_conv
from .topk import TopActivations


@dataclass
class ConvInputs:
    """The conv producing a unit, and the input channels with the largest weight norm.

    Attributes:
        conv: the Conv2d's dotted name; kernel: (kh, kw); in_channels, groups: the conv's.
        first_layer: True for a conv on the RGB image (groups 1, 3 inputs).
        weight_norm: L2 norm of the unit's whole filter.
        strongest: [(input channel, L2 norm of its kernel)], largest first (input channels numbered
            in the conv's input, so a grouped conv's unit names its own group's channels).
    """

    conv: str
    kernel: tuple[int, int]
    in_channels: int
    groups: int
    first_layer: bool
    weight_norm: float
    strongest: list[tuple[int, float]]


def conv_inputs(model, layer: str, channel: int, top: int = 8) -> ConvInputs | None:
    """The conv producing ``layer``'s channel ``channel`` and its ``top`` strongest input channels
    (by the L2 norm of the kernel on each input); None when no Conv2d produces the layer."""
    conv = producing_conv(model, layer)
    if conv is None:
        return None
    mod = model.module(conv)
    w = mod.weight.detach()[channel].float()
    norms = w.flatten(1).norm(dim=1)
    per_group = mod.in_channels // mod.groups
    base = (channel // (mod.out_channels // mod.groups)) * per_group
    order = torch.argsort(norms, descending=True)[:top].tolist()
    return ConvInputs(conv=conv, kernel=tuple(mod.kernel_size), in_channels=mod.in_channels, groups=mod.groups,
                      first_layer=mod.groups == 1 and mod.in_channels == 3, weight_norm=float(w.norm()),
                      strongest=[(base + i, float(norms[i])) for i in order])


def channel_top(top: TopActivations, channel: int) -> TopActivations:
    """The rows of one ``channel`` of a multi-channel ``TopActivations`` (copies: the pass's state is
    not shared), as ``top_activations`` would have returned for that channel alone."""
    if channel not in top.channels:
        raise ConvlensError(f"channel {channel} is not in this top-k pass (channels {top.channels[:8]}...); "
                            "run top_activations with it")
    r = top.channels.index(channel)
    return TopActivations(layer=top.layer, channels=[channel], k=top.k, values=top.values[r:r + 1].clone(),
                          image_index=top.image_index[r:r + 1].clone(), positions=top.positions[r:r + 1].clone(),
                          n_images=top.n_images, per_image=top.per_image, map_size=top.map_size)
