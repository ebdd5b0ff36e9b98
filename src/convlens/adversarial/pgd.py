"""Projected gradient descent (Madry et al. 2018, "Towards deep learning models resistant to
adversarial attacks"; Kurakin et al. 2017's iterative FGSM without a random start):
``x_{k+1} = Proj_{B_eps(x)} (x_k + a * d_k)``, ``d_k = sign(g_k)`` (L-inf) or ``g_k / ||g_k||_2`` (L2),
g the gradient of the cross-entropy (raised for the label, lowered for a target), then clipped to [0, 1]."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from ..errors import ConvlensError
from ..fields import resolve_config
from ..progress import ProgressFn
from .base import AdversarialResult, check_norm, parse_eps, run_attack


@dataclass
class PGDConfig:
    """PGD parameters (Madry et al. 2018). Sizes are in pixel units of [0, 1] images."""

    eps: float | str = field(default="4/255", metadata={"help": "radius of the ball (L-inf: per pixel; L2: whole image), e.g. 4/255"})
    step: float | str | None = field(default=None, metadata={"help": "step size a (default 2.5 * eps / steps, Madry et al.)"})
    steps: int = field(default=10, metadata={"help": "number of steps"})
    norm: Literal["inf", "2"] = field(default="inf", metadata={"help": "ball: L-inf or L2"})
    random_start: bool = field(default=True, metadata={"help": "start at a random point of the ball"})
    seed: int = field(default=0, metadata={"help": "seed of the random start"})
    early_stop: bool = field(default=True, metadata={"help": "an image leaves the batch once fooled"})


def default_step(eps: float, steps: int) -> float:
    """2.5 * eps / steps: enough to cross the ball and back (Madry et al. 2018)."""
    return 2.5 * eps / steps


def pgd(model, images, eps=None, *, label=None, target=None, config: PGDConfig | None = None,
        progress: ProgressFn | None = None, **overrides) -> AdversarialResult:
    """PGD adversarial images; with ``early_stop=False, random_start=False`` equal to torchattacks'
    ``PGD`` / ``PGDL2`` (float rounding; the L2 step divides by ``||g|| + 1e-10`` as they do).

    Each step: ``x <- clip(x0 + clip_eps(x + a * d - x0), 0, 1)`` (L-inf) or the L2 analogue
    (the change rescaled by ``min(1, eps / ||x - x0||)``). With ``early_stop`` an image leaves the batch
    as soon as it is fooled (top-1 != label, or == target), so the batch shrinks and later steps run faster.

    Args:
        model: a ``convlens.Model``.
        images: (N, 3, H, W) in [0, 1].
        eps: radius (a float or "4/255"; default: the config's, 4/255); replaces the config's value.
        label: as ``fgsm`` (untargeted), or
        target: as ``fgsm`` (targeted).
        config: a ``PGDConfig`` (default: its defaults), or its fields as keywords.
        progress: ``progress(step, steps)``.
    Keyword Args:
        step: step size a (default ``2.5 * eps / steps``).
        steps: number of steps (10).
        norm: "inf" (per pixel) or "2" (whole image, e.g. eps 0.5).
        random_start: start uniformly in the L-inf ball (L2: a random direction, radius ~ U(0, eps)).
        seed: seed of the random start.
        early_stop: an image leaves the batch once fooled.
    Returns:
        ``AdversarialResult``; ``steps`` holds the steps each image took.
    Example:
        >>> r = convlens.pgd(m, cat, "2/255", steps=10, target="goldfish"); print(r.summary())
    """
    if "norm" in overrides:  # 2, "l2", "Linf"... as before
        overrides["norm"] = check_norm(overrides["norm"])
    c = resolve_config(PGDConfig, config, {**overrides, **({} if eps is None else {"eps": eps})})
    step, steps, random_start, seed, early_stop = c.step, c.steps, c.random_start, c.seed, c.early_stop
    norm = check_norm(c.norm)
    eps = parse_eps(c.eps, allow_inf=True, unit=norm == "inf")
    if steps < 1:
        raise ConvlensError(f"steps must be >= 1, got {steps}")
    if step is None:
        if math.isinf(eps):
            raise ConvlensError("with an unbounded eps give the step size (step=...)")
        step = default_step(eps, steps)
    step = parse_eps(step, "step", unit=norm == "inf")
    return run_attack("pgd", model, images, label, target, eps=eps, step=step, steps=steps, norm=norm,
                      early_stop=early_stop, random_start=random_start, seed=seed, progress=progress, max_steps=steps)
