"""A universal (image-agnostic) perturbation: one change, added to every image, that changes the top-1
of most of them (Moosavi-Dezfooli et al. 2017 found them by iterated DeepFool; here by projected sign
steps on the summed loss of a batch, the batch analogue of mixing in a class's template).

``delta <- clip(delta + step * sign(sum_i grad J(x_i + delta)), -eps, eps)``, J the cross-entropy of
each image's clean top-1 (untargeted) or, with ``target``, minus that of the target class.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..attribution.base import check_images, check_model
from ..errors import ConvlensError
from ..progress import ProgressFn, call
from .base import forward_logits, loss_gradient, parse_eps


@dataclass
class Universal:
    """``delta`` (1, 3, H, W) the shared perturbation; ``fooling_rate`` on the images it was made on and
    ``held_out_rate`` on other images (None if none given); ``history`` of the batch fooling rate."""

    delta: torch.Tensor
    eps: float
    fooling_rate: float
    held_out_rate: float | None
    history: list[float] = field(default_factory=list)
    target: int | None = None


def _rate(model, x, delta, labels, target) -> float:
    pred = forward_logits(model, (x + delta).clamp(0, 1)).argmax(-1)
    return float((pred == target).float().mean()) if target is not None else float((pred != labels).float().mean())


def universal_perturbation(model, images, eps="8/255", *, steps: int = 20, step=None, target=None,
                           held_out=None, progress: ProgressFn | None = None) -> Universal:
    """One perturbation for all ``images`` (N, 3, H, W), L-inf <= eps, by projected sign steps on the summed loss.

    Args:
        eps: L-inf bound ("8/255"); step: default eps / 4; steps: 20.
        target: a class to push every image to (default: untargeted, away from each clean top-1).
        held_out: other images to measure how well it transfers.
    Example:
        >>> u = universal_perturbation(m, convlens.sample_dataset(16).tensor(), "8/255"); u.fooling_rate
    """
    model = check_model(model)
    x = check_images(model, images)
    eps = parse_eps(eps)
    step = eps / 4 if step is None else parse_eps(step, "step")
    if steps < 1:
        raise ConvlensError(f"steps must be >= 1, got {steps}")
    labels = forward_logits(model, x).argmax(-1)
    t = None if target is None else model.class_index(target)
    lab = labels if t is None else torch.full_like(labels, t)
    delta = torch.zeros_like(x[:1])
    history = []
    for k in range(steps):
        g, logits, _ = loss_gradient(model, (x + delta).clamp(0, 1), lab, targeted=t is not None)
        pred = logits.argmax(-1)
        history.append(float(((pred == t) if t is not None else (pred != labels)).float().mean()))
        delta = (delta + step * g.sum(0, keepdim=True).sign()).clamp(-eps, eps)
        call(progress, k + 1, steps)
    held = None
    if held_out is not None:
        h = check_images(model, held_out)
        held = _rate(model, h, delta, forward_logits(model, h).argmax(-1), t)
    return Universal(delta.contiguous(), eps, _rate(model, x, delta, labels, t), held, history, t)
