"""Feature accentuation (Hamblin, Fel, Saha, Konkle & Alvarez 2024, "Feature accentuation: revealing
'what' features respond to in natural images"): grow a visualization *from a photo* under a
similarity constraint, "what would make this photo more flamingo for this model".

Starting from the seed image ``x0`` (a decorrelated-colour parameterization initialized to it, so
step 0 is the photo itself), maximize

    S_target(x) - weight * ||phi_l(x) - phi_l(x0)||^2 / ||phi_l(x0)||^2

with ``S_target`` a class logit and ``phi_l`` the spatially pooled activations of a regularization
layer ``l`` (default: the middle spatial layer of the network): the image may change only in ways
that keep its mid-level features, so what grows is the target's evidence *in this photo*, not a new
image. Optimized through Lucid's random pad / jitter / scale / rotate (``transforms="standard"``;
pooling makes the constraint indifferent to those shifts), which, as in the paper, keeps the change
from being an invisible adversarial perturbation. Adam, lr 0.05 on a decorrelated-colour image.
Measured (chelsea -> "tiger", 24 steps at 128 px): p(tiger) 0.00 -> 1.00, mean |change| 0.035,
visible as darker stripes over the fur; with ``transforms="none"`` the same p is reached by an
invisible noise pattern (mean |change| 0.018).

    a = convlens.accentuate(m, convlens.sample_image("chelsea"), "tiger")
    a.image, a.prob_before, a.prob_after, a.distance
    a.figure().save("more_tiger.png")     # seed | accentuated | |difference|
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from ..errors import ConvlensError
from ..fields import resolve_config
from ..images import fit
from ..models.model import Model
from ..optim import objectives as O
from ..probe.probe import activations
from ..render import grid
from .visualize import VizConfig, Visualization, run_viz


@dataclass
class AccentuateConfig:
    """Parameters of ``accentuate`` (Hamblin et al. 2024)."""

    steps: int = field(default=64, metadata={"help": "optimization steps", "range": (1, 5000)})
    lr: float = field(default=0.05, metadata={"help": "Adam learning rate on the decorrelated image", "range": (0.0, 1.0)})
    weight: float = field(default=1.0, metadata={
        "help": "weight of the similarity constraint (normalized squared feature distance to the seed)",
        "range": (0.0, 1000.0)})
    reg_layer: str | None = field(default=None, metadata={
        "help": "layer whose features must stay close to the seed's (default: the middle spatial layer)"})
    size: int | None = field(default=None, metadata={"help": "image side in px (default: the model's input size)",
                                                      "range": (16, 1024)})
    transforms: Literal["standard", "light", "none"] = field(default="standard", metadata={
        "help": "robustness transforms (standard: Lucid's pad/jitter/scale/rotate; light: jitter and scale; "
                "none gives an invisible, adversarial change)"})
    seed: int = field(default=0, metadata={"help": "random seed of the transforms"})


@dataclass
class Accentuation:
    """Result of ``accentuate``: ``seed`` and ``image`` (1, 3, H, W), the target, its logit and
    probability before / after, the final normalized feature distance at ``reg_layer``, the loop's result."""

    seed: torch.Tensor
    image: torch.Tensor
    label: str
    logit_before: float
    logit_after: float
    prob_before: float
    prob_after: float
    distance: float
    reg_layer: str
    viz: Visualization = field(repr=False)

    def figure(self, tile: int = 224):
        """seed | accentuated | |difference| (amplified to its max)."""
        diff = (self.image - self.seed).abs().sum(1, keepdim=True)
        diff = (diff / diff.max().clamp(min=1e-8)).expand(-1, 3, -1, -1)
        return grid([self.seed[0], self.image[0], diff[0]],
                    [f"seed: {self.label} p={self.prob_before:.2f}", f"accentuated p={self.prob_after:.2f}",
                     f"|difference| (feature dist {self.distance:.3f})"], ncol=3, tile=tile, upscale="bilinear")


def pooled_distance(layer: str, ref: torch.Tensor) -> O.Objective:
    """``||mean_p phi_l(x) - ref||^2 / ||ref||^2`` per image (``ref``: (1, C) pooled seed features)."""
    def fn(f: O.Features):
        a = f[layer].flatten(2).mean(2)
        return (a - ref.to(a)).pow(2).sum(1) / ref.pow(2).sum().clamp(min=1e-12)
    return O.Objective(fn, [layer], name=f"pooled_distance({layer})")


def middle_layer(model: Model) -> str:
    """The middle one of the layers with a (C, H, W) output (a mid-level representation)."""
    spatial = [li.name for li in model.layers() if len(li.shape) == 3 and li.shape[1] > 1]
    if not spatial:
        raise ConvlensError(f"{model.name} has no layer with a spatial output; pass reg_layer=...")
    return spatial[len(spatial) // 2]


def accentuate(model: Model, image: torch.Tensor, target, config: AccentuateConfig | None = None, *,
               progress=None, callback=None, **overrides) -> Accentuation:
    """Make ``image`` more ``target`` for ``model`` while keeping its features at ``reg_layer`` (see module doc).

    Args:
        model: a ``convlens.Model``.
        image: the seed photo, (1, 3, H, W) in [0, 1] (fitted to ``size``).
        target: a class index or name.
        config: an ``AccentuateConfig``; keyword ``overrides`` replace its fields.
        progress: ``progress(done, total)``; callback: ``callback(StepInfo)`` per step (True stops).
    Keyword Args:
        steps, lr, weight, reg_layer, size, transforms, seed: see ``AccentuateConfig``.
    Returns:
        ``Accentuation`` (``image``, probabilities before / after, ``figure()``).
    Example:
        >>> a = convlens.accentuate(m, convlens.sample_image("chelsea"), "tiger", steps=32)
    """
    c = resolve_config(AccentuateConfig, config, overrides)
    if not isinstance(model, Model):
        raise ConvlensError("accentuate needs a convlens.Model; wrap your module with convlens.Model.wrap(module)")
    if image.ndim != 4 or image.shape[0] != 1:
        raise ConvlensError(f"accentuate takes one seed image (1, 3, H, W), got {tuple(image.shape)}")
    idx = model.class_index(target)
    label = model.classes[idx] if model.classes else str(idx)
    size = c.size or model.input_size[0]
    seed = fit(image.float(), size).clamp(0, 1)
    layer = c.reg_layer or middle_layer(model)
    model.module(layer)
    ref = activations(model, seed, layer).flatten(2).mean(2)
    keep = -c.weight * pooled_distance(layer, ref)
    cfg = VizConfig(steps=c.steps, size=size, lr=c.lr, optimizer="adam", param="decorrelated", transforms=c.transforms,
                    l2=0.0, seed=c.seed)
    v = run_viz(model, O.class_logit(idx), cfg, 1, [label], init=seed, extra=keep, progress=progress,
                callback=callback, unit={"kind": "class", "index": [idx]})
    img = v.optim.images.clamp(0, 1)
    with torch.no_grad():
        before, after = model(seed), model(img)
        dist = float(pooled_distance(layer, ref)(O.Features(img, img, {layer: activations(model, img, layer)}))[0])
    return Accentuation(seed, img, label, float(before[0, idx]), float(after[0, idx]),
                        float(before.softmax(1)[0, idx]), float(after.softmax(1)[0, idx]), dist, layer, v)


__all__ = ["AccentuateConfig", "Accentuation", "accentuate", "middle_layer"]
