"""Exact receptive fields (size, stride, offset) of a layer's units, for cropping input patches.

Method: on a float64 copy of the network made *structurally linear and positive* (conv weights 1,
biases 0, batch norms and pointwise activations replaced by identities, max pools by average pools
of the same geometry), the gradient of one unit with respect to an all-ones input is non-zero
exactly on the input pixels that unit can depend on. With no cancellations possible, that support
is the theoretical receptive field of any architecture, branches and residual adds included. We
measure it for the first and last units and their neighbours (one batched backward): the first
unit's field is clipped only at the top/left, the last one's only at the bottom/right, so together
they give size, stride and offset exactly (the input grows until neither clipped edge is reached).
Cost: one forward/backward of a batch of 4, cached per layer.

Limitation: a *functional* max pool or gating (``F.max_pool2d`` is patched to an average pool;
other functional ops are not) inside ``forward`` is seen as what it computes on positive inputs.
"""
from __future__ import annotations

import copy
import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConvlensError
from ..models.model import Model

_POINTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
              nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh, nn.Mish, nn.Softplus, nn.Hardtanh,
              nn.Dropout, nn.Dropout2d, nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm, nn.LayerNorm,
              nn.LocalResponseNorm, nn.InstanceNorm2d)


@dataclass(frozen=True)
class ReceptiveField:
    """Unit (y, x) of the layer sees input rows ``offset[0] + y*stride[0]`` .. ``+ size[0] - 1``.

    ``offset`` can be negative: that part of the field lies in the padding.
    """

    size: tuple[int, int]
    stride: tuple[int, int]
    offset: tuple[int, int]

    def box(self, y: int, x: int) -> tuple[int, int, int, int]:
        """(top, left, bottom, right), bottom/right exclusive, in input pixels (may exceed the image)."""
        top = self.offset[0] + y * self.stride[0]
        left = self.offset[1] + x * self.stride[1]
        return top, left, top + self.size[0], left + self.size[1]

    def crop(self, image: torch.Tensor, y: int, x: int, fill: float = 0.0) -> torch.Tensor:
        """The input patch under unit (y, x) of ``image`` (..., H, W), padded with ``fill`` where the
        field leaves the image (never shifted to fit)."""
        top, left, bottom, right = self.box(y, x)
        H, W = image.shape[-2:]
        out = image.new_full((*image.shape[:-2], self.size[0], self.size[1]), fill)
        t, l, b, r = max(top, 0), max(left, 0), min(bottom, H), min(right, W)
        if b > t and r > l:
            out[..., t - top:b - top, l - left:r - left] = image[..., t:b, l:r]
        return out


def _linearized(model: Model) -> Model:
    net = copy.deepcopy(model.net).double()

    def swap(module):
        for name, child in module.named_children():
            if isinstance(child, _POINTWISE):
                setattr(module, name, nn.Identity())
            elif isinstance(child, nn.MaxPool2d):
                setattr(module, name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding,
                                                   ceil_mode=child.ceil_mode, count_include_pad=True))
            elif isinstance(child, nn.AdaptiveMaxPool2d):
                setattr(module, name, nn.AdaptiveAvgPool2d(child.output_size))
            else:
                swap(child)
    swap(net)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d)):
                m.weight.fill_(1.0 / max(1, m.weight[0].numel()))
                if m.bias is not None:
                    m.bias.zero_()
    lin = Model(net, mean=[0.0] * model.mean.shape[1], std=[1.0] * model.mean.shape[1],
                input_size=model.input_size, classes=model.classes, name=model.name)
    return lin.double()


def _supports(model: Model, layer: str, size: tuple[int, int], units) -> tuple[list, tuple[int, int]]:
    """Bounding boxes of the input support of each unit ``units(Hout, Wout) -> [(y, x), ...]``.

    One batch item per unit, so a single backward pass measures them all.
    """
    from .probe import Probe

    x0 = torch.ones(1, model.mean.shape[1], *size, dtype=torch.float64)
    relu, maxpool = F.relu, F.max_pool2d
    try:  # functional pieces commonly used inside forward()
        F.relu = lambda t, inplace=False: t
        F.max_pool2d = lambda t, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, \
            return_indices=False: F.avg_pool2d(t, kernel_size, stride, padding, ceil_mode, True)
        with torch.no_grad(), Probe(model, layer, stop=True) as probe:
            probe.run(x0)
        shape = probe[layer].shape
        if len(shape) != 4:
            raise ConvlensError(f"layer '{layer}' has output shape {tuple(shape[1:])}, not (C, H, W); "
                                "receptive fields are defined for spatial layers")
        Hout, Wout = shape[-2:]
        pts = units(Hout, Wout)
        x = x0.expand(len(pts), -1, -1, -1).clone().requires_grad_(True)
        with Probe(model, layer, stop=True) as probe:
            probe.run(x)
            act = probe[layer]
    finally:
        F.relu, F.max_pool2d = relu, maxpool
    total = sum(act[i, :, uy, ux].sum() for i, (uy, ux) in enumerate(pts))
    g, = torch.autograd.grad(total, x)
    boxes = []
    for i, (uy, ux) in enumerate(pts):
        nz = g[i].abs().sum(0).nonzero()
        if nz.numel() == 0:
            raise ConvlensError(f"layer '{layer}': unit ({uy}, {ux}) depends on no input pixel")
        boxes.append((int(nz[:, 0].min()), int(nz[:, 1].min()), int(nz[:, 0].max()) + 1, int(nz[:, 1].max()) + 1))
    return boxes, (Hout, Wout)


_CACHE: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def receptive_field(model: Model, layer: str, max_size: int = 2048) -> ReceptiveField:
    """Exact receptive field of the units of ``layer`` (see the module docstring for the method).

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=2, padding=1), torch.nn.Conv2d(4, 4, 3))
        >>> receptive_field(Model.wrap(net, input_size=32, classes=["x"]), "1")
        ReceptiveField(size=(7, 7), stride=(2, 2), offset=(-1, -1))
    """
    model.module(layer)
    cached = _CACHE.setdefault(model.net, {})
    if layer in cached:
        return cached[layer]
    lin = _linearized(model)
    size = tuple(max(s, 32) for s in model.input_size)
    # Corner units: the first unit's field is cut only by the top/left border and the last unit's
    # only by the bottom/right one, so an input a little larger than (size + offset) suffices.
    while True:
        def units(H, W):
            return [(0, 0), (min(1, H - 1), min(1, W - 1)), (H - 1, W - 1), (max(H - 2, 0), max(W - 2, 0))]
        (first, second, last, before), (Hout, Wout) = _supports(lin, layer, size, units)
        if Hout == 1 and Wout == 1:  # a global layer: every unit sees the whole input
            rf = ReceptiveField(size=tuple(size), stride=tuple(size), offset=(0, 0))
            break
        ok = first[2] < size[0] and first[3] < size[1] and last[0] > 0 and last[1] > 0
        if ok or size[0] >= max_size:
            sy = second[2] - first[2] if Hout > 1 else size[0]
            sx = second[3] - first[3] if Wout > 1 else size[1]
            oy, ox = last[0] - (Hout - 1) * sy, last[1] - (Wout - 1) * sx
            rf = ReceptiveField(size=(first[2] - oy, first[3] - ox), stride=(sy, sx), offset=(oy, ox))
            break
        size = (size[0] * 2, size[1] * 2)
    cached[layer] = rf
    return rf
