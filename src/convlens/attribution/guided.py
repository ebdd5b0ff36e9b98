"""Guided backpropagation (Springenberg et al. 2015) and deconvnet (Zeiler & Fergus 2014)."""
from __future__ import annotations

from .base import Attribution, check_images, check_model
from .gradients import gradient_attribution


def guided_backprop(model, images, target=None, *, layer: str | None = None, channel: int | None = None,
                    unit=None) -> Attribution:
    """Guided backprop: the gradient with every ReLU passing back only positive signal where it fired.

    At each ReLU (and ReLU6, functional or module, in-place or not): ``dx = max(dy, 0) * [x > 0]``;
    at each smooth activation f (GELU: ConvNeXt, SiLU: EfficientNet, Hardswish: MobileNetV3) the same
    rule with f's own slope, ``dx = max(dy, 0) * f'(x) * [x > 0]``, which is the ReLU rule when
    f = ReLU (see ``convlens.probe.relu_modes``, where the definition and its sources are given). The override is a torch function mode active only during
    this call: the model is neither copied, hooked nor modified.

    Args:
        target: a class (None = predicted), when explaining the output.
        layer: explain one inner neuron instead (dotted name, see ``model.layers()``), with
        channel: its channel (None = the image's most active one) and
        unit: (y, x) position, "max" (the strongest position, as in Zeiler & Fergus) or None (the
            sum over the channel).
    Returns:
        ``Attribution``: ``attributions`` (N, 3, H, W) raw values (render with mode "rgb" for the
        paper's images), ``map`` = max_c |values|. Matches Captum's ``GuidedBackprop`` on models
        whose ReLUs are modules, and also handles functional ReLUs, ReLU6 and the smooth
        activations (where Captum leaves the plain gradient).
    Raises:
        ConvlensError: if the model has none of those activations (e.g. only ELU / tanh).
    Example:
        >>> convlens.guided_backprop(m, cat, layer="features.14", channel=7, unit="max").labels
    """
    return _modified(model, images, target, layer, channel, unit, "guided")


def deconvnet(model, images, target=None, *, layer: str | None = None, channel: int | None = None,
              unit=None) -> Attribution:
    """Deconvnet: the gradient with every ReLU replaced by a ReLU on the backward signal.

    At each ReLU: ``dx = max(dy, 0)`` (the forward mask is ignored; Zeiler & Fergus 2014, as
    formulated by Springenberg et al. 2015 and Captum's ``Deconvolution``); the same at GELU, SiLU
    and Hardswish (the forward is ignored there too). Arguments as in ``guided_backprop``.
    """
    return _modified(model, images, target, layer, channel, unit, "deconvnet")


def _modified(model, images, target, layer, channel, unit, mode):
    model = check_model(model)
    x = check_images(model, images)
    g, t, labels, info = gradient_attribution(model, x, target, mode, layer, channel, unit)
    return Attribution("guided_backprop" if mode == "guided" else "deconvnet", g.abs().amax(1), g, t, labels, x,
                       info, default_mode="rgb")
