"""Receptive fields (size, stride, offset) of a layer's units, for cropping input patches.

Two methods, one answer (tests/test_probe.py checks them against each other on MobileNetV2,
ResNet-18, VGG-16 and AlexNet, and against hand-computed values):

* **analytic** (used wherever it applies): one ``torch.fx`` trace of the network and one forward
  for the shapes give every module's field at once by composing the geometry of its ops along the
  module graph (``probe/geometry.py``: convolutions and pools compose, pointwise ops keep the
  field, residual adds and channel concatenations take the union of their branches). Every layer
  of MobileNetV2 or ResNet-50 in well under a second in all.
* **gradient** (exact for any architecture; the fallback where the trace fails or an op's geometry
  is not known, e.g. after a squeeze-excitation gate): on a float64 copy of the network made
  *structurally linear and positive* (conv weights 1/fan-in, biases 0, batch norms and pointwise
  activations replaced by identities, max pools by average pools of the same geometry), the gradient
  of one unit with respect to an all-ones input is non-zero exactly on the input pixels that unit
  can depend on. With no cancellations possible, that support is the theoretical receptive field,
  branches and residual adds included. We measure it for the first and last units and their
  neighbours: the first unit's field is clipped only at the top/left, the last one's only at the
  bottom/right, so together they give size, stride and offset exactly (the input doubles until
  neither clipped edge is reached). Several layers share one batched forward/backward; the copy is
  made once per model. Limitation: a *functional* max pool or gating inside ``forward``
  (``F.max_pool2d`` is patched to an average pool; other functional ops are not) is seen as what it
  computes on positive inputs.

A layer whose output is 1x1 at the model's input size is global: its field is the whole input.
"""
from __future__ import annotations

import copy
import weakref
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConvlensError
from ..models.model import Model
from ..progress import ProgressFn, call
from .geometry import ReceptiveField, module_fields
from .probe import Probe

__all__ = ["ReceptiveField", "receptive_field", "receptive_fields"]

METHODS = ("auto", "analytic", "gradient")
_POINTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
              nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh, nn.Mish, nn.Softplus, nn.Hardtanh,
              nn.Dropout, nn.Dropout2d, nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm, nn.LayerNorm,
              nn.LocalResponseNorm, nn.InstanceNorm2d)
_PASS_PIXELS = 16 * 224 * 224  # gradient method: batch items x input pixels per forward/backward


def _not_spatial(layer: str, shape) -> ConvlensError:
    return ConvlensError(f"layer '{layer}' has output shape {tuple(shape)}, not (C, H, W); "
                         "receptive fields are defined for spatial layers")


def _start_size(model: Model) -> tuple[int, int]:
    return tuple(max(s, 32) for s in model.input_size)


def _global(size) -> ReceptiveField:
    return ReceptiveField(size=tuple(size), stride=tuple(size), offset=(0, 0))


# --- analytic -----------------------------------------------------------------------------------
_ANALYTIC: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def _analytic_fields(model: Model) -> dict:
    """{layer: (field or GLOBAL, output shape)} of every module, cached per network ({} if untraceable)."""
    hit = _ANALYTIC.get(model.net)
    if hit is None:
        example = torch.zeros(1, model.mean.shape[1], *_start_size(model), dtype=model.mean.dtype,
                              device=model.device)
        try:
            hit = module_fields(model.net, example)
        except ValueError:
            hit = {}
        _ANALYTIC[model.net] = hit
    return hit


def _analytic(model: Model, layer: str) -> ReceptiveField | None:
    """The layer's field from the module graph, or None when the geometry is not known there."""
    entry = _analytic_fields(model).get(layer)
    if entry is None or entry[1] is None:
        return None
    field, shape = entry
    if len(shape) != 4:
        raise _not_spatial(layer, shape[1:])
    if tuple(shape[-2:]) == (1, 1):
        return _global(_start_size(model))
    return field if isinstance(field, ReceptiveField) else None


# --- gradient (exact, any architecture) ---------------------------------------------------------
_LINEAR: "weakref.WeakKeyDictionary[nn.Module, Model]" = weakref.WeakKeyDictionary()


def _linearized(model: Model) -> Model:
    """The float64 structurally linear, positive copy of the network (made once per network)."""
    hit = _LINEAR.get(model.net)
    if hit is not None:
        return hit
    # conv / linear weights become constants: share one stride-0 value per module instead of copying
    # them (VGG-16's 138M weights would cost 1.1 GB in float64); the rest is copied as is
    weighted = [m for m in model.net.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d))]
    memo = {id(p): None for m in weighted for p in (m.weight, m.bias) if p is not None}
    net = copy.deepcopy(model.net, memo)
    for src, m in zip(model.net.modules(), net.modules()):
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d)):
            w = torch.full((1,) * src.weight.ndim, 1.0 / max(1, src.weight[0].numel()), dtype=torch.float64)
            m.weight = nn.Parameter(w.expand(src.weight.shape), requires_grad=False)
            m.bias = None
    net = net.double()

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
    lin = Model(net, mean=[0.0] * model.mean.shape[1], std=[1.0] * model.mean.shape[1],
                input_size=model.input_size, classes=model.classes, name=model.name).double()
    _LINEAR[model.net] = lin
    return lin


def _corner_units(H: int, W: int) -> list[tuple[int, int]]:
    return [(0, 0), (min(1, H - 1), min(1, W - 1)), (H - 1, W - 1), (max(H - 2, 0), max(W - 2, 0))]


def _supports(lin: Model, layers: list[str], size: tuple[int, int]) -> dict:
    """{layer: (bounding boxes of the input support of its corner units, (Hout, Wout))}, from one
    forward for the shapes and one batched forward/backward (4 batch items per layer)."""
    x0 = torch.ones(1, lin.mean.shape[1], *size, dtype=torch.float64)
    relu, maxpool = F.relu, F.max_pool2d
    try:  # functional pieces commonly used inside forward()
        F.relu = lambda t, inplace=False: t
        F.max_pool2d = lambda t, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, \
            return_indices=False: F.avg_pool2d(t, kernel_size, stride, padding, ceil_mode, True)
        with torch.no_grad(), Probe(lin, layers, stop=True) as probe:
            probe.run(x0)
        shapes = {layer: probe[layer].shape for layer in layers}
        for layer, shape in shapes.items():
            if len(shape) != 4:
                raise _not_spatial(layer, shape[1:])
        x = x0.expand(4 * len(layers), -1, -1, -1).clone().requires_grad_(True)
        with Probe(lin, layers, stop=True) as probe:
            probe.run(x)
            acts = {layer: probe[layer] for layer in layers}
    finally:
        F.relu, F.max_pool2d = relu, maxpool
    units = {layer: _corner_units(*shapes[layer][-2:]) for layer in layers}
    total = sum(acts[layer][4 * i + j, :, uy, ux].sum()
                for i, layer in enumerate(layers) for j, (uy, ux) in enumerate(units[layer]))
    g, = torch.autograd.grad(total, x)
    out = {}
    for i, layer in enumerate(layers):
        boxes = []
        for j, (uy, ux) in enumerate(units[layer]):
            nz = g[4 * i + j].abs().sum(0).nonzero()
            if nz.numel() == 0:
                raise ConvlensError(f"layer '{layer}': unit ({uy}, {ux}) depends on no input pixel")
            boxes.append((int(nz[:, 0].min()), int(nz[:, 1].min()), int(nz[:, 0].max()) + 1, int(nz[:, 1].max()) + 1))
        out[layer] = boxes, tuple(shapes[layer][-2:])
    return out


def _from_corners(boxes, out_hw, size, final: bool) -> ReceptiveField | None:
    """The field from the corner units' supports; None when a clipped edge was reached (grow the input)."""
    (first, second, last, _), (Hout, Wout) = boxes, out_hw
    if Hout == 1 and Wout == 1:  # a global layer: every unit sees the whole input
        return _global(size)
    # unclipped: the first two units' bottom/right edges (they give the stride) and the last one's top/left
    ok = max(first[2], second[2]) < size[0] and max(first[3], second[3]) < size[1] and last[0] > 0 and last[1] > 0
    if not (ok or final):
        return None
    sy = second[2] - first[2] if Hout > 1 else size[0]
    sx = second[3] - first[3] if Wout > 1 else size[1]
    oy, ox = last[0] - (Hout - 1) * sy, last[1] - (Wout - 1) * sx
    return ReceptiveField(size=(first[2] - oy, first[3] - ox), stride=(sy, sx), offset=(oy, ox))


def _gradient(model: Model, layers: list[str], max_size: int, done=lambda layer, rf: None) -> dict:
    """Exact fields of ``layers`` by the gradient method, several layers per pass; ``done`` is
    called as each one is known."""
    lin = _linearized(model)
    pending, size, out = list(layers), _start_size(model), {}
    while pending:
        per = max(1, _PASS_PIXELS // (4 * size[0] * size[1]))
        still = []
        for k in range(0, len(pending), per):
            for layer, (boxes, hw) in _supports(lin, pending[k:k + per], size).items():
                rf = _from_corners(boxes, hw, size, final=size[0] >= max_size)
                if rf is None:
                    still.append(layer)
                else:
                    out[layer] = rf
                    done(layer, rf)
        pending, size = still, (size[0] * 2, size[1] * 2)
    return out


# --- public -------------------------------------------------------------------------------------
_CACHE: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def receptive_fields(model: Model, layers: Iterable[str], *, method: str = "auto", max_size: int = 2048,
                     progress: ProgressFn | None = None) -> dict[str, ReceptiveField]:
    """Receptive fields of several layers: {layer: ReceptiveField} (see the module docstring).

    Args:
        layers: dotted layer names (``model.layers()``).
        method: "auto" (analytic where the module graph allows it, else the gradient method),
            "analytic" (a ``ConvlensError`` where it does not apply) or "gradient".
        max_size: the gradient method's largest input side (it doubles the input up to this).
        progress: called with (layers done, total).
    Example:
        >>> m = convlens.load_model("resnet50", weights=None)
        >>> convlens.probe.receptive_fields(m, ["layer1", "layer4"])["layer4"].size
        (427, 427)
    """
    if method not in METHODS:
        raise ConvlensError(f"unknown receptive-field method '{method}'; use one of {', '.join(METHODS)}")
    layers = list(dict.fromkeys(layers))
    for layer in layers:
        model.module(layer)  # unknown names: one line listing the closest ones
    cached = _CACHE.setdefault(model.net, {})
    out: dict[str, ReceptiveField] = {}
    todo = []
    for layer in layers:
        rf = cached.get((layer, method))
        if rf is None and method != "gradient":
            rf = _analytic(model, layer)
            if rf is None and method == "analytic":
                raise ConvlensError(f"layer '{layer}': the analytic receptive field does not reach it (an op of "
                                    "unknown geometry, or an untraceable network); use method='gradient'")
        if rf is None:
            todo.append(layer)
        else:
            out[layer] = cached[(layer, method)] = rf
    call(progress, len(out), len(layers))

    def done(layer, rf):
        out[layer] = cached[(layer, method)] = rf
        call(progress, len(out), len(layers))
    if todo:
        _gradient(model, todo, max_size, done)
    return {layer: out[layer] for layer in layers}


def receptive_field(model: Model, layer: str, max_size: int = 2048, method: str = "auto") -> ReceptiveField:
    """Receptive field of the units of ``layer`` (see ``receptive_fields`` and the module docstring).

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=2, padding=1), torch.nn.Conv2d(4, 4, 3))
        >>> receptive_field(Model.wrap(net, input_size=32, classes=["x"]), "1")
        ReceptiveField(size=(7, 7), stride=(2, 2), offset=(-1, -1))
    """
    return receptive_fields(model, [layer], method=method, max_size=max_size)[layer]
