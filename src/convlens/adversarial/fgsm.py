"""The fast gradient sign method (Goodfellow, Shlens & Szegedy 2015, "Explaining and harnessing
adversarial examples"): one step of size eps along the sign of the loss gradient,
``x' = clip_[0,1](x + eps * sign(grad_x J(x, y)))`` (untargeted) or
``x' = clip_[0,1](x - eps * sign(grad_x J(x, t)))`` (targeted), J the cross-entropy."""
from __future__ import annotations

from dataclasses import dataclass, field


from ..fields import resolve_config
from .base import AdversarialResult, parse_eps, run_attack


@dataclass
class FGSMConfig:
    """FGSM's one parameter, in pixel units of [0, 1] images."""

    eps: float | str = field(default="2/255", metadata={"help": "step size (L-inf), a number or a fraction like 2/255"})


def fgsm(model, images, eps=None, *, label=None, target=None, config: FGSMConfig | None = None) -> AdversarialResult:
    """FGSM adversarial images (Goodfellow et al. 2015), equal to torchattacks' ``FGSM`` to float rounding.

    ``x' = clip(x + eps * sign(dJ(x, y)/dx), 0, 1)`` untargeted (J = cross-entropy of ``label``),
    ``x' = clip(x - eps * sign(dJ(x, t)/dx), 0, 1)`` targeted. One forward + backward through the
    model's BN-folded twin (whose logits are the clean predictions), and one forward for the predictions after.

    Args:
        model: a ``convlens.Model`` (normalization inside; eps is in [0, 1] pixel units).
        images: (N, 3, H, W) in [0, 1].
        eps: L-inf size of the step: a float or a fraction string like "2/255" (default: the config's, 2/255).
        label: untargeted: the class whose loss is raised (index, name, or one per image; default:
            each image's predicted class).
        target: targeted: the class to reach (index or name, or one per image).
        config: an ``FGSMConfig`` (default: its defaults); ``eps`` replaces its value.
    Returns:
        ``AdversarialResult`` (images, perturbation, predictions and probabilities before/after,
        L-inf / L2 per image; ``render()`` draws the lecture's figure).
    Example:
        >>> r = convlens.fgsm(m, cat, "2/255"); r.pred_after
    """
    eps = parse_eps(resolve_config(FGSMConfig, config, {} if eps is None else {"eps": eps}).eps)
    return run_attack("fgsm", model, images, label, target, eps=eps, step=eps, steps=1, norm="inf", early_stop=False)
