"""Where to look in a network: its browsable layers, the last block of each resolution stage, and
the conv that produces a layer's channels. Found from ``model.layers()`` and the module tree; no
architecture is hard-coded (the explorer's layer browser and the demo report use these).

    convlens.inspect.stages.stage_layers(load_model())       # ['features.1', ..., 'features.18']
    convlens.inspect.stages.producing_conv(m, "features.6")  # 'features.6.conv.2'
"""
from __future__ import annotations

from collections import OrderedDict

import torch


def browsable(model) -> list:
    """Layers with a (C, H, W) output: the ones whose channels can be browsed."""
    return [li for li in model.layers() if len(li.shape) == 3]


def stage_layers(model) -> list[str]:
    """Sensible default layers: the last block of each resolution stage, found from the model.

    From ``model.layers()`` (no architecture is hard-coded): layers with a spatial (C, H, W) output
    (H * W > 1, adaptive pools excluded, and no whole-network container such as a top-level
    Sequential of more than 4 blocks, e.g. ``features``) are grouped by (H, W); in each group the
    outermost ones (fewest dots) are the stage's blocks and the last of them, in forward order, is
    its default. MobileNetV2 -> features.1, .3, .6, .13, .18; ResNet -> relu, layer1 .. layer4;
    VGG16 -> the ReLU / pool ending each stage.
    """
    def container(name):
        mod = model.module(name)
        return isinstance(mod, torch.nn.Sequential) and "." not in name and len(mod) > 4
    spatial = [li for li in browsable(model) if li.shape[1] * li.shape[2] > 1
               and not li.type.startswith("Adaptive") and not container(li.name)]
    groups: OrderedDict = OrderedDict()
    for li in spatial:
        groups.setdefault(tuple(li.shape[1:]), []).append(li.name)
    out = []
    for names in groups.values():
        depth = min(n.count(".") for n in names)
        out.append([n for n in names if n.count(".") == depth][-1])
    return out


def default_layer(model) -> str | None:
    """The layer the browser opens on: the middle stage (mid-level features: textures, parts)."""
    stages = stage_layers(model)
    if stages:
        return stages[len(stages) // 2]
    layers = browsable(model)
    return layers[-1].name if layers else None


def producing_conv(model, layer: str) -> str | None:
    """The Conv2d that last wrote ``layer``'s channels: the layer itself, else the last Conv2d (in
    module order, up to the end of the layer's own block) with as many output channels."""
    C = model.layer_info(layer).shape[0]
    mods = list(model.net.named_modules())
    end = max(i for i, (n, _) in enumerate(mods) if n == layer or n.startswith(layer + "."))
    for n, m in reversed(mods[:end + 1]):
        if isinstance(m, torch.nn.Conv2d) and m.out_channels == C:
            return n
    return None
