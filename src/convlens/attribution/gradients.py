"""The one-gradient driver: d(objective)/d(pixels) for a batch, in one backward pass.

The objective is a class logit (the unnormalized score S_c, before softmax) or one neuron /
channel of an inner layer, optionally under a ReLU gradient override (guided / deconvnet; the rule is
generalized to GELU, SiLU and Hardswish: ``probe.relu_modes``).
Gradients are taken with ``torch.autograd.grad`` on a detached copy of the images, so no
``.grad`` is written anywhere (the model's parameters are frozen; the caller's tensor is not used).

Class-score gradients run through the model's cached forward twin (``drivers.inference_twin``: batch
norms folded into the convolutions, channels_last), the same function with fewer, faster ops (2.7x
on MobileNetV2, 1.3x on ResNet-18 at batch 16 on CPU). Equal to the plain network's gradient up to
float rounding (1e-15 in float64, tested against Captum); in float32 that rounding can flip a ReLU
gate or a max-pool choice sitting on a tie, which moves single pixels (mean relative change ~1e-4).
Neuron gradients need the layer names, so they use the model itself.
"""
from __future__ import annotations

import contextlib

import torch

from ..drivers.forward import inference_twin
from ..errors import ConvlensError
from ..models.model import Model
from ..probe import Probe
from ..probe.relu_modes import relu_mode
from .base import class_labels, resolve_targets


def class_gradient(model: Model, x: torch.Tensor, target: torch.Tensor | None, relu: str | None = None):
    """(grad (N, 3, H, W), logits (N, K), target (N,)) of sum_i S_{target_i}(x_i) w.r.t. x (images are
    independent in eval mode, so one backward gives every image's own gradient). ``target=None``
    takes each image's predicted class from the same forward pass."""
    net = inference_twin(model, channels_last=True, fuse_bn=True)
    x = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    ctx = relu_mode(relu, smooth=True) if relu else contextlib.nullcontext()
    with torch.enable_grad(), ctx as stats:
        logits = net(x)
        if target is None:  # the predicted class, from this same forward pass
            target = logits.detach().argmax(-1)
        score = logits.gather(1, target.view(-1, 1).to(logits.device)).sum()
        (g,) = torch.autograd.grad(score, x)
    if relu:
        _check_overridden(model, stats, relu)
    return g.contiguous(), logits.detach(), target


def neuron_gradient(model: Model, x: torch.Tensor, layer: str, channel=None, unit=None,
                    relu: str | None = None):
    """Gradient of one neuron or channel of ``layer`` w.r.t. the images.

    Objective per image: ``A[c, y, x]`` if ``unit=(y, x)``; ``max_yx A[c]`` (the strongest
    position, Zeiler & Fergus) if ``unit="max"``; ``sum_yx A[c]`` if ``unit=None``. ``channel=None``
    picks each image's most active channel (largest mean). Fully connected layers take ``channel``
    as the unit index. Returns (grad, labels, info).
    """
    x = x.detach().requires_grad_(True)
    ctx = relu_mode(relu, smooth=True) if relu else contextlib.nullcontext()
    with torch.enable_grad(), ctx as stats, Probe(model, layer, stop=True) as probe:
        probe.run(x)
        a = probe[layer]
        n = a.shape[0]
        if a.ndim == 2:
            a = a[:, :, None, None]
        if a.ndim != 4:
            raise ConvlensError(f"layer '{layer}' output has shape {tuple(a.shape)}; pick a conv or linear layer")
        C = a.shape[1]
        if channel is None:
            ch = a.detach().mean((2, 3)).argmax(1)
        else:
            if not 0 <= int(channel) < C:
                raise ConvlensError(f"channel {channel} out of range 0..{C - 1} for layer '{layer}'")
            ch = torch.full((n,), int(channel), dtype=torch.long, device=a.device)
        sel = a[torch.arange(n, device=a.device), ch]  # (N, h, w)
        if unit is None:
            obj, where = sel.sum((1, 2)), ["sum"] * n
        elif isinstance(unit, str) and unit == "max":
            flat = sel.flatten(1)
            idx = flat.detach().argmax(1)
            obj = flat.gather(1, idx[:, None])[:, 0]
            w = sel.shape[2]
            where = [f"max at ({int(i) // w}, {int(i) % w})" for i in idx]
        else:
            y, xx = (int(u) for u in unit)
            if not (0 <= y < sel.shape[1] and 0 <= xx < sel.shape[2]):
                raise ConvlensError(f"unit ({y}, {xx}) outside layer '{layer}' map {tuple(sel.shape[1:])}")
            obj, where = sel[:, y, xx], [f"at ({y}, {xx})"] * n
        (g,) = torch.autograd.grad(obj.sum(), x)
    if relu:
        _check_overridden(model, stats, relu)
    labels = [f"{layer} channel {int(c)} {w}" for c, w in zip(ch.tolist(), where)]
    return g, labels, {"layer": layer, "channel": ch.tolist(), "unit": unit,
                       "activation": obj.detach().tolist()}


def _check_overridden(model: Model, stats, relu: str) -> None:
    if stats.count == 0:
        skipped = ", ".join(stats.skipped) or "none found"
        raise ConvlensError(
            f"{relu}: {model.name} has no ReLU-like activation to override (ReLU, ReLU6, GELU, SiLU, Hardswish; "
            f"other activations: {skipped}); "
            f"use saliency / smoothgrad / integrated_gradients for this model")


def gradient_attribution(model, images, target, relu, layer, channel, unit):
    """Shared by saliency / guided / deconvnet: (grad, target tensor, labels, info)."""
    if layer is None:
        if channel is not None or unit is not None:
            raise ConvlensError("channel / unit need a layer (e.g. layer='features.14'); see model.layers()")
        t = resolve_targets(model, target, images) if target is not None else None
        g, logits, t = class_gradient(model, images, t, relu)
        return g, t, class_labels(model, t), {"score": logits.gather(1, t[:, None])[:, 0].tolist()}
    if target is not None:
        raise ConvlensError("give either a class target or a layer/channel, not both")
    g, labels, info = neuron_gradient(model, images, layer, channel, unit, relu)
    return g, torch.full((images.shape[0],), -1, dtype=torch.long), labels, info
