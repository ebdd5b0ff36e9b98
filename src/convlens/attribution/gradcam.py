"""Grad-CAM (Selvaraju et al. 2017): class activation maps from an inner layer's gradients."""
from __future__ import annotations

import torch

from ..errors import ConvlensError
from ..probe import Probe
from .base import Attribution, check_images, check_model, class_labels, resolve_targets


def default_layer(model) -> str:
    """The last block with a spatial output (e.g. ``layer4`` for ResNets, ``features.18`` for
    MobileNetV2, ``features.30`` for VGG16): the deepest features that still have a map.

    Found from ``model.layers()``: the last layer whose output is (C, h, w) with h * w > 1, then its
    shallowest ancestor with the same output shape, skipping a whole-network container (``features``).
    """
    spatial = [li for li in model.layers() if len(li.shape) == 3 and li.shape[1] * li.shape[2] > 1
               and not li.type.startswith("Adaptive")]  # VGG's AdaptiveAvgPool2d(7) belongs to the head
    if not spatial:
        raise ConvlensError(f"{model.name} has no layer with a spatial output; pass layer=... (see model.layers())")
    last = spatial[-1]
    shapes = {li.name: li.shape for li in spatial}
    parts = last.name.split(".")
    ancestors = [".".join(parts[:k]) for k in range(1, len(parts) + 1)]
    same = [a for a in ancestors if shapes.get(a) == last.shape]
    for a in same:
        mod = model.module(a)
        if isinstance(mod, torch.nn.Sequential) and "." not in a and len(mod) > 4:
            continue  # a whole feature extractor ("features"): name its last block instead
        return a
    return last.name


def grad_cam(model, images, target=None, *, layer: str | None = None) -> Attribution:
    """Grad-CAM: ``L = sum_k a_k A^k`` with ``a_k = mean_ij dS_target / dA^k_ij`` (Selvaraju et al. 2017).

    The raw map keeps its sign and the layer's resolution (as Captum's ``LayerGradCam`` with
    ``relu_attributions=False``); the paper's ReLU is the default *render* mode ("positive"), and
    ``upsampled()`` / ``overlay()`` resize it bilinearly to the image.

    Args:
        target: class (None = predicted), index, name, or one per image.
        layer: dotted layer name (default ``default_layer(model)``: the last spatial block).
    Returns:
        ``Attribution`` with ``map`` (N, h, w) at the layer's resolution; ``info["weights"]``
        holds a_k (N, C).
    Example:
        >>> convlens.grad_cam(m, cat).info["layer"]
        'features.18'
    """
    model = check_model(model)
    x = check_images(model, images)
    layer = layer or default_layer(model)
    t = resolve_targets(model, target, x) if target is not None else None
    with torch.enable_grad(), Probe(model, layer) as probe:
        xg = x.detach().requires_grad_(True)  # so the graph exists even though parameters are frozen
        logits = probe.run(xg)
        a = probe[layer]
        if a.ndim != 4:
            raise ConvlensError(f"grad_cam needs a layer with a (C, h, w) output; '{layer}' gives {tuple(a.shape[1:])}")
        if t is None:  # the predicted class, from this same forward pass
            t = logits.detach().argmax(-1)
        score = logits.gather(1, t.view(-1, 1)).sum()
        (g,) = torch.autograd.grad(score, a)
    w = g.mean((2, 3), keepdim=True)
    cam = (w * a.detach()).sum(1)
    return Attribution("grad_cam", cam, None, t, class_labels(model, t), x,
                       {"layer": layer, "weights": w[:, :, 0, 0]}, default_mode="positive")
