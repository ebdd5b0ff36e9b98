"""Shared pieces of the adversarial family: eps parsing, the loss gradient, the iterated attack, the result.

Gradients run through the model's BN-folded channels_last forward twin (``drivers.inference_twin``,
the same twin the attribution family's ``class_gradient`` uses): the same function as the model with
fewer, faster ops, equal to it up to float rounding (1e-15 in float64). ``torch.autograd.grad`` on a
detached copy of the images: no ``.grad`` lands anywhere, the caller's tensors and model are untouched.

One loop (``iterate``) serves FGSM (one step), PGD (L-inf and L2, projected) and fooling images
(targeted, until a confidence): each step is ``x <- Proj(x + step * direction(grad))`` with
torchattacks' exact update rules, so ``early_stop=False`` reproduces torchattacks to float rounding.
With ``early_stop`` an image leaves the batch as soon as it is fooled, so the remaining ones run faster.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ..render.figures import fig_to_pil, new_figure  # noqa: F401  (moved to render: every family plots)
from ..attribution.base import check_images, check_model, class_labels
from ..drivers.forward import inference_twin
from ..errors import ConvlensError
from ..images import save_png
from ..models.model import Model
from ..progress import ProgressFn, call
from ..render import side_by_side

NORMS = ("inf", "2")


def parse_eps(eps, name: str = "eps", allow_inf: bool = False, unit: bool = True) -> float:
    """A perturbation size in pixel units of [0, 1] images: a number or a fraction like ``"2/255"``.

    Raises a one-line ``ConvlensError`` for negative, unparsable or (``unit``: L-inf sizes) > 1 values;
    ``allow_inf`` accepts "inf" (no bound).
    Example:
        >>> parse_eps("2/255")
        0.00784313725490196
    """
    if isinstance(eps, str):
        s = eps.strip()
        if allow_inf and s.lower() in ("inf", "none"):
            return math.inf
        m = re.fullmatch(r"(-?[0-9]*\.?[0-9]+(?:e-?[0-9]+)?)\s*(?:/\s*([0-9]*\.?[0-9]+))?", s)
        if not m:
            raise ConvlensError(f"{name} '{eps}' is not a number; give e.g. 0.01 or a fraction like 2/255")
        den = float(m.group(2)) if m.group(2) else 1.0
        if den == 0:
            raise ConvlensError(f"{name} '{eps}' divides by zero; give e.g. 2/255")
        v = float(m.group(1)) / den
    else:
        try:
            v = float(eps)
        except (TypeError, ValueError):
            raise ConvlensError(f"{name} {eps!r} is not a number; give e.g. 0.01 or a fraction like 2/255") from None
    if math.isinf(v) and not allow_inf:
        raise ConvlensError(f"{name} must be finite, got {eps}")
    if math.isnan(v) or v < 0 or (unit and v > 1 and not math.isinf(v)):
        raise ConvlensError(f"{name} {eps} is outside [0, 1]; it is in pixel units of [0, 1] images (e.g. 2/255)")
    return v


def parse_eps_list(text) -> list[float]:
    """``"0,1/255,2/255"`` or a sequence -> list of floats (each checked by ``parse_eps``)."""
    items = [s for s in text.split(",") if s.strip()] if isinstance(text, str) else list(text)
    if not items:
        raise ConvlensError("give at least one eps, e.g. 0,1/255,2/255,4/255")
    return [parse_eps(s) for s in items]


def check_norm(norm) -> str:
    n = str(norm).lower().replace("l", "")
    if n in ("inf", "linf", "infinity"):
        return "inf"
    if n == "2":
        return "2"
    raise ConvlensError(f"norm must be 'inf' or '2', got {norm!r}")


def resolve_class(model: Model, target, n: int) -> torch.Tensor:
    """Class index / name (or one per image) -> LongTensor (n,) on the model's device."""
    return model.targets(target, logits=torch.empty(n, 1))


def gradient_twin(model: Model):
    """The model's cached BN-folded channels_last twin (``drivers.inference_twin``)."""
    return inference_twin(model, channels_last=True, fuse_bn=True)


def forward_logits(model, x: torch.Tensor) -> torch.Tensor:
    """Logits of [0, 1] images through the folded twin (or a twin given as ``model``), no graph."""
    net = gradient_twin(model) if isinstance(model, Model) else model
    with torch.inference_mode():
        return net(x.contiguous(memory_format=torch.channels_last)).clone()


def loss_gradient(model, x: torch.Tensor, labels: torch.Tensor | None, targeted: bool):
    """(grad, logits, labels) of the attack objective per image, through the folded twin.

    ``labels=None``: each image's predicted class, from this same forward pass.

    Untargeted: ``+CE(f(x), label)`` (raise the loss of the true class); targeted: ``-CE(f(x), target)``
    (lower the loss of the target). Summed over images (each image's gradient is its own: eval mode).
    """
    net = gradient_twin(model) if isinstance(model, Model) else model
    x = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    with torch.enable_grad():
        logits = net(x)
        if labels is None:
            labels = logits.detach().argmax(-1)
        loss = F.cross_entropy(logits, labels, reduction="sum")
        (g,) = torch.autograd.grad(-loss if targeted else loss, x)
    return g, logits.detach(), labels


@dataclass
class AdversarialResult:
    """Adversarial images and what they did, for a batch of N images.

    Attributes:
        method: "fgsm", "pgd", "fool".
        images: (N, 3, H, W) adversarial images in [0, 1]; clean: the inputs.
        perturbation: images - clean.
        label: (N,) the class whose loss was raised (untargeted) or None; target: (N,) the class aimed
            at (targeted) or None.
        pred_before, prob_before, pred_after, prob_after: (N,) top-1 class and its probability.
        target_prob_before, target_prob_after: (N,) probability of the target (targeted) or of the
            label (untargeted) before / after.
        adv_logits: (N, K) logits of the adversarial images.
        linf, l2: (N,) norms of the perturbation; steps: (N,) gradient steps each image took.
        fooled: (N,) bool (untargeted: top-1 != label; targeted: top-1 == target, and the confidence
            reached for ``fool``).
        classes: the model's class names (for labels).
        info: eps, step, norm, ... what was used.

    The "after" values of images that did not stop early (all of them for FGSM and for PGD without
    early stopping) need one more forward pass; it runs when one of them is first read, through the
    twin of the model as it was during the attack (torchattacks returns images only: a caller who
    wants just ``images`` does not pay for it). ``after`` holds those logits, or the pending pass.
    """

    method: str
    images: torch.Tensor
    clean: torch.Tensor
    label: torch.Tensor | None
    target: torch.Tensor | None
    pred_before: torch.Tensor
    prob_before: torch.Tensor
    target_prob_before: torch.Tensor
    steps: torch.Tensor
    after: Any = field(repr=False)
    classes: list[str] | None = field(default=None, repr=False)
    info: dict[str, Any] = field(default_factory=dict)
    rule: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = field(default=None, repr=False)

    @property
    def adv_logits(self) -> torch.Tensor:
        if callable(self.after):
            self.after = self.after().cpu()
        return self.after

    def _labels(self) -> torch.Tensor:
        return self.target if self.target is not None else self.label

    @property
    def pred_after(self) -> torch.Tensor:
        return self.adv_logits.argmax(-1)

    @property
    def prob_after(self) -> torch.Tensor:
        return self.adv_logits.softmax(-1).amax(-1)

    @property
    def target_prob_after(self) -> torch.Tensor:
        return self.adv_logits.softmax(-1).gather(1, self._labels().view(-1, 1).cpu())[:, 0]

    @property
    def fooled(self) -> torch.Tensor:
        lab = self._labels().cpu()
        if self.rule is not None:
            return self.rule(self.adv_logits, lab).cpu()
        return (self.pred_after == lab) if self.target is not None else (self.pred_after != lab)

    @property
    def perturbation(self) -> torch.Tensor:
        return self.images - self.clean

    @property
    def linf(self) -> torch.Tensor:
        return self.perturbation.flatten(1).abs().amax(1)

    @property
    def l2(self) -> torch.Tensor:
        return self.perturbation.flatten(1).norm(dim=1)

    def __len__(self) -> int:
        return self.images.shape[0]

    def name(self, index: int) -> str:
        names = self.classes or []
        return names[index] if 0 <= index < len(names) else str(index)

    def summary(self) -> str:
        """One line per image: before -> after, norms, steps."""
        lines = []
        for i in range(len(self)):
            aim = (f"target {self.name(int(self.target[i]))}" if self.target is not None
                   else f"label {self.name(int(self.label[i]))}")
            lines.append(
                f"[{i}] {aim}: {self.name(int(self.pred_before[i]))} {self.prob_before[i]:.3f} -> "
                f"{self.name(int(self.pred_after[i]))} {self.prob_after[i]:.3f}"
                f" ({'fooled' if bool(self.fooled[i]) else 'not fooled'}; L-inf {255 * float(self.linf[i]):.2f}/255,"
                f" L2 {float(self.l2[i]):.3f}, {int(self.steps[i])} step{'' if int(self.steps[i]) == 1 else 's'})")
        return "\n".join(lines)

    def render(self, index: int = 0, height: int = 224, amplify: float = 10.0):
        """The lecture's figure: image (label, prob) | adversarial (label, prob) | difference | 10x difference.

        Differences are drawn as ``0.5 + d`` (grey = no change) and ``0.5 + amplify * d``.
        """
        d = self.perturbation[index].float()
        panels = [self.clean[index].float(), self.images[index].float(), (0.5 + d).clamp(0, 1),
                  (0.5 + amplify * d).clamp(0, 1)]
        labels = [f"{self.name(int(self.pred_before[index]))} {self.prob_before[index]:.1%}",
                  f"{self.name(int(self.pred_after[index]))} {self.prob_after[index]:.1%}",
                  f"difference (L-inf {255 * float(self.linf[index]):.2f}/255)",
                  f"{amplify:g}x difference"]
        return side_by_side(panels, labels, height=height)

    def save(self, path, index: int = 0, **kw):
        return save_png(self.render(index, **kw), path)


def _project(adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """torchattacks' projection: clamp the change to the eps ball, then the image to [0, 1]."""
    if norm == "inf":
        if math.isinf(eps):
            return adv.clamp(0, 1)
        delta = torch.clamp(adv - x, min=-eps, max=eps)
        return torch.clamp(x + delta, min=0, max=1)
    delta = adv - x
    if not math.isinf(eps):
        norms = delta.flatten(1).norm(p=2, dim=1)
        factor = torch.min(eps / norms, torch.ones_like(norms))
        delta = delta * factor.view(-1, 1, 1, 1)
    return torch.clamp(x + delta, min=0, max=1)


def _direction(g: torch.Tensor, norm: str) -> torch.Tensor:
    """sign(g) for L-inf; g / (||g||_2 + 1e-10) per image for L2 (torchattacks' PGDL2)."""
    if norm == "inf":
        return g.sign()
    n = g.flatten(1).norm(p=2, dim=1) + 1e-10
    return g / n.view(-1, 1, 1, 1)


def random_start_point(x: torch.Tensor, eps: float, norm: str, seed: int) -> torch.Tensor:
    """Uniform in the L-inf ball, or (L2) a Gaussian direction scaled to a radius ~ U(0, eps), as torchattacks."""
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    if norm == "inf":
        u = (torch.rand(x.shape, generator=gen, dtype=x.dtype) * 2 - 1).to(x.device)
        return torch.clamp(x + eps * u, 0, 1)
    d = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
    n = d.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    r = torch.rand(x.shape[0], 1, 1, 1, generator=gen, dtype=x.dtype).to(x.device)
    return torch.clamp(x + d * r / n * eps, 0, 1)


def iterate(model: Model, x: torch.Tensor, adv: torch.Tensor, labels: torch.Tensor | None, targeted: bool, *,
            eps: float, step: float, steps: int, norm: str, early_stop: bool,
            stop: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
            progress: ProgressFn | None = None):
    """Projected steps ``adv <- Proj_eps(adv + step * direction(grad))``.

    Returns (adv, steps (N,), final logits (N, K) or the function computing them, labels (N,),
    logits of the start (N, K), interrupted).
    ``labels=None`` (untargeted): each image's predicted class at the start, from the first step's
    forward pass (so starting at x, the clean logits cost nothing extra). ``stop(logits, labels) -> (n,)
    bool`` decides when an image is done (default: fooled); with ``early_stop`` images that are done
    leave the batch. Ctrl-C returns what was reached so far (valid attacks-in-progress).
    """
    stop = stop or (lambda lg, lb: (lg.argmax(-1) == lb) if targeted else (lg.argmax(-1) != lb))
    N = x.shape[0]
    cl = torch.channels_last  # the twin's layout: no conversion copies per step (elementwise ops ignore layout)
    x, adv = x.contiguous(memory_format=cl), adv.clone(memory_format=cl)
    taken = torch.zeros(N, dtype=torch.long)
    active = torch.arange(N, device=x.device)
    done_logits: dict[int, torch.Tensor] = {}
    first, interrupted = None, False
    try:
        for k in range(steps):
            full = active.numel() == N  # every image still in: no gather / scatter copies
            g, logits, lab = loss_gradient(model, adv if full else adv[active],
                                           None if labels is None else labels[active], targeted)
            if first is None:  # step 0 sees every image
                first, labels = logits, lab
            if early_stop:
                done = stop(logits, labels[active])
                if bool(done.any()):
                    for j in torch.nonzero(done).flatten().tolist():
                        done_logits[int(active[j])] = logits[j]
                    keep = ~done
                    active, g = active[keep], g[keep]
                    if active.numel() == 0:
                        break
            if active.numel() == N:
                adv = _project(adv + step * _direction(g, norm), x, eps, norm)
            else:
                adv[active] = _project(adv[active] + step * _direction(g, norm), x[active], eps, norm)
            taken[active.cpu()] += 1
            call(progress, k + 1, steps)
    except KeyboardInterrupt:
        interrupted = True
    if first is None:  # interrupted before the first step finished
        first = forward_logits(model, x)
        labels = first.argmax(-1) if labels is None else labels
    rest = [i for i in range(N) if i not in done_logits]
    if not rest:
        return adv, taken, torch.stack([done_logits[i] for i in range(N)]), labels, first, interrupted
    net, pending = gradient_twin(model), adv[rest]  # the twin as attacked; a copy of the images

    def after() -> torch.Tensor:
        out = torch.empty(N, first.shape[1], dtype=first.dtype)
        for i, lg in done_logits.items():
            out[i] = lg
        out[rest] = forward_logits(net, pending).to(out.device)
        return out
    return adv, taken, after, labels, first, interrupted


def run_attack(kind: str, model, images, label, target, *, eps: float, step: float, steps: int, norm: str,
               early_stop: bool, random_start: bool = False, seed: int = 0, stop=None,
               progress: ProgressFn | None = None, **info) -> "AdversarialResult":
    """Shared driver of fgsm / pgd / fool: checks, start point, ``iterate``, the result.

    Starting at x, the clean logits (and the default labels) come from the first step's forward pass;
    a random start needs one extra clean forward.
    """
    model = check_model(model)
    x = check_images(model, images)
    if label is not None and target is not None:
        raise ConvlensError("give either label= (untargeted: move away from it) or target= (targeted), not both")
    targeted = target is not None
    given = target if targeted else label
    labels = resolve_class(model, given, x.shape[0]) if given is not None else None
    clean, start = None, x
    if random_start and not math.isinf(eps):
        clean = forward_logits(model, x)
        labels = clean.argmax(-1) if labels is None else labels
        start = random_start_point(x, eps, norm, seed)
    adv, taken, logits, labels, first, interrupted = iterate(
        model, x, start, labels, targeted, eps=eps, step=step, steps=steps, norm=norm, early_stop=early_stop,
        stop=stop, progress=progress)
    return make_result(kind, model, x, adv, first if clean is None else clean, logits, labels, targeted, taken,
                       rule=stop, eps=eps, step=step, norm=norm, early_stop=early_stop,
                       random_start=random_start, interrupted=interrupted, **info)


def make_result(kind: str, model: Model, x: torch.Tensor, adv: torch.Tensor, clean_logits: torch.Tensor,
                adv_logits, labels: torch.Tensor, targeted: bool, steps: torch.Tensor,
                rule=None, **info) -> AdversarialResult:
    """The result; ``adv_logits`` may be a function computing them (run when first read)."""
    p0 = clean_logits.softmax(-1)
    pb, cb = p0.max(-1)
    labels = labels.cpu()
    return AdversarialResult(
        kind, adv.detach().contiguous(), x, None if targeted else labels, labels if targeted else None,
        cb.cpu(), pb.cpu(), p0.cpu().gather(1, labels.view(-1, 1))[:, 0], steps.cpu(),
        adv_logits if callable(adv_logits) else adv_logits.cpu(), model.classes, info, rule)


__all__ = ["AdversarialResult", "parse_eps", "parse_eps_list", "class_labels"]
