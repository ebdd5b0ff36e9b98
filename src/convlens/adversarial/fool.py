"""Fooling images (Szegedy et al. 2014, "Intriguing properties of neural networks"; the lecture's recipe):
start from any image, pick any class, and step the image until the network says that class with the
chosen confidence. The change stays invisible: an L-inf of a few grey levels out of 255."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal


from ..errors import ConvlensError
from ..fields import resolve_config
from ..progress import ProgressFn
from .base import AdversarialResult, parse_eps, run_attack


@dataclass
class FoolConfig:
    """Parameters of ``fool``; sizes in pixel units of [0, 1] images."""

    confidence: float = field(default=0.99, metadata={"help": "stop once the target's probability reaches this"})
    max_steps: int = field(default=100, metadata={"help": "give up after this many steps"})
    method: Literal["pgd", "gradient"] = field(default="pgd", metadata={
        "help": "pgd: targeted sign steps in an L-inf ball; gradient: L2-normalized gradient steps, no ball"})
    step: float | str | None = field(default=None, metadata={
        "help": "step size (default: pgd 0.25/255 per pixel; gradient 0.1 in L2)"})
    eps: float | str = field(default="8/255", metadata={"help": "pgd: L-inf bound of the change ('inf': none)"})


def fool(model, image, target, config: FoolConfig | None = None, *, progress: ProgressFn | None = None,
         **overrides) -> AdversarialResult:
    """Make the network say ``target`` with probability >= ``confidence`` by small steps on the image.

    Each step lowers the cross-entropy of the target: ``pgd`` moves every pixel by ``step`` along the
    sign of the gradient and keeps the change within ``eps`` (L-inf); ``gradient`` moves by ``step``
    along the L2-normalized gradient (Szegedy et al.'s unbounded variant). An image stops as soon
    as its target probability reaches ``confidence`` (it leaves the batch).

    Args:
        model: a ``convlens.Model``.
        image: (N, 3, H, W) in [0, 1] (each image is fooled on its own).
        target: class index or name ("goldfish"), or one per image.
        config: a ``FoolConfig`` (default: its defaults), or its fields as keywords.
        progress: ``progress(step, max_steps)``.
    Keyword Args:
        confidence: target probability to reach (0.99).
        max_steps: bound on the steps (100).
        method: "pgd" (default) or "gradient".
        step: see ``FoolConfig``.
        eps: pgd's bound ("8/255").
    Returns:
        ``AdversarialResult`` with ``steps`` per image, ``target_prob_after`` (the confidence reached),
        ``linf`` / ``l2`` of the change, ``fooled`` (confidence reached) and ``render()`` (the lecture's
        figure: image | fooled image | difference | 10x difference).
    Example:
        >>> r = convlens.fool(m, convlens.sample_image("chelsea", 224), "goldfish"); print(r.summary())
    """
    c = resolve_config(FoolConfig, config, overrides)
    confidence, max_steps, method, step, eps = c.confidence, c.max_steps, c.method, c.step, c.eps
    if not 0 < confidence < 1:
        raise ConvlensError(f"confidence must be in (0, 1), got {confidence}")
    if max_steps < 1:
        raise ConvlensError(f"max_steps must be >= 1, got {max_steps}")
    if method not in ("pgd", "gradient"):
        raise ConvlensError(f"method must be 'pgd' or 'gradient', got {method!r}")
    if target is None:
        raise ConvlensError("fool needs a target class (index or name, e.g. 'goldfish')")
    if method == "pgd":
        norm, eps_v = "inf", parse_eps(eps, allow_inf=True)
        step_v = parse_eps(step, "step") if step is not None else 0.25 / 255
    else:
        norm, eps_v = "2", math.inf
        step_v = parse_eps(step, "step", unit=False) if step is not None else 0.1

    def reached(logits, lab):
        return logits.softmax(-1).gather(1, lab[:, None])[:, 0] >= confidence

    return run_attack("fool", model, image, None, target, eps=eps_v, step=step_v, steps=max_steps, norm=norm,
                      early_stop=True, stop=reached, progress=progress, method=method, confidence=confidence,
                      max_steps=max_steps)
