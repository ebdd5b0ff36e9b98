"""Mixing in a tiny bit of another class's weights (the lecture, after Karpathy's "Breaking linear
classifiers on ImageNet" and Goodfellow et al. 2015).

(a) Linear: a softmax classifier ``p = softmax(W x + b)`` has one weight template per class (a row
    of W, drawn as an image). Adding a multiple of class t's template to an image of class a raises
    score t by ``alpha * ||w_t||^2`` (and moves every other score by ``alpha * w_k . w_t``), so a
    small multiple makes the classifier say t. Trained here on scikit-learn's 8x8 digits (1,797
    images, shipped inside the package) in about a second.
(b) Deep net: a ConvNet has no single template, but at each image its local linear template for
    class t is the input gradient of the logit ``dS_t/dx``; adding ``eps * g / max|g|`` (an L-inf
    change of eps) is the same move.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..attribution.base import check_images, check_model
from ..attribution.gradients import class_gradient
from ..errors import ConvlensError
from ..render import grid
from .base import forward_logits, parse_eps


@dataclass
class LinearDigits:
    """A linear softmax classifier on 8x8 digits: ``W`` (10, 64), ``b`` (10,), accuracy on held-out digits,
    and the data it was trained / tested on (``x_*`` (n, 64) in [0, 1], ``y_*`` (n,))."""

    W: torch.Tensor
    b: torch.Tensor
    train_accuracy: float
    test_accuracy: float
    x_test: torch.Tensor = field(repr=False)
    y_test: torch.Tensor = field(repr=False)

    def probs(self, x: torch.Tensor) -> torch.Tensor:
        return (x.reshape(-1, 64).double() @ self.W.T + self.b).softmax(-1)

    def templates(self, tile: int = 64):
        """The ten class templates (rows of W) as signed images: grey = 0, white = positive, black = negative."""
        s = float(self.W.abs().max())
        imgs = [(0.5 + 0.5 * w.view(1, 8, 8) / s).clamp(0, 1).expand(3, 8, 8) for w in self.W]
        return grid(imgs, [f"w_{c}" for c in range(10)], ncol=10, tile=tile)


def train_linear_digits(weight_decay: float = 1e-3, test_fraction: float = 0.3, seed: int = 0) -> LinearDigits:
    """Train a linear softmax classifier on scikit-learn's ``load_digits`` (pixels / 16 in [0, 1]).

    Full-batch L-BFGS on cross-entropy + ``weight_decay * ||W||^2`` (float64, deterministic), about a
    second. Held-out accuracy is ~96%.
    """
    from sklearn.datasets import load_digits
    d = load_digits()
    X = torch.tensor(d.data / 16.0, dtype=torch.float64)
    y = torch.tensor(d.target, dtype=torch.long)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_test = int(round(test_fraction * len(y)))
    te, tr = perm[:n_test], perm[n_test:]
    W = torch.zeros(10, 64, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(10, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], lr=1, max_iter=150, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(X[tr] @ W.T + b, y[tr]) + weight_decay * (W * W).sum()
        loss.backward()
        return loss
    with torch.enable_grad():
        opt.step(closure)
    W, b = W.detach(), b.detach()
    acc = lambda idx: float(((X[idx] @ W.T + b).argmax(-1) == y[idx]).double().mean())  # noqa: E731
    return LinearDigits(W, b, acc(tr), acc(te), X[te], y[te])


@dataclass
class LinearMix:
    """One linear mix: ``x' = clip(x + alpha * w_t / max|w_t|, 0, 1)`` (alpha = the largest pixel change).

    Attributes: x, mixed (64,), source and target classes, alpha, probs_before / probs_after (10,).
    """

    x: torch.Tensor
    mixed: torch.Tensor
    source: int
    target: int
    alpha: float
    probs_before: torch.Tensor
    probs_after: torch.Tensor

    def line(self) -> str:
        s, t = self.source, self.target
        return (f"digit {s} + {self.alpha:.2f} x template {t}: p({s}) {self.probs_before[s]:.1%} -> "
                f"{self.probs_after[s]:.1%}, p({t}) {self.probs_before[t]:.1%} -> {self.probs_after[t]:.1%}")


def mix_linear(clf: LinearDigits, x: torch.Tensor, target: int, *, confidence: float = 0.9,
               alpha: float | None = None) -> LinearMix:
    """Add the smallest multiple of class ``target``'s template that makes ``p(target) >= confidence``
    (bisection on alpha, since p(target) rises monotonically along its own template for a linear model
    only up to the other classes' overlap: we scan, then bisect), or a given ``alpha``."""
    if not 0 <= int(target) < 10:
        raise ConvlensError(f"digit target must be 0..9, got {target}")
    x = x.reshape(64).double()
    w = clf.W[int(target)] / clf.W[int(target)].abs().max()
    p = lambda a: clf.probs((x + a * w).clamp(0, 1))[0]  # noqa: E731
    if alpha is None:
        grid = np.linspace(0, 4, 161)
        ok = [a for a in grid if float(p(a)[target]) >= confidence]
        if not ok:
            raise ConvlensError(f"no multiple up to 4 of template {target} reaches p >= {confidence}")
        hi, lo = ok[0], max(0.0, ok[0] - grid[1])
        for _ in range(40):
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if float(p(mid)[target]) >= confidence else (mid, hi)
        alpha = hi
    p0 = clf.probs(x)[0]
    return LinearMix(x, (x + alpha * w).clamp(0, 1), int(p0.argmax()), int(target), float(alpha), p0, p(alpha))


def linear_mixing_panel(clf: LinearDigits, pairs=((3, 8), (7, 1), (0, 6)), confidence: float = 0.9, tile: int = 128):
    """Rows: digit (probabilities) | + alpha x template | = mixed digit (probabilities). Returns (PIL, mixes)."""
    tiles, labels, mixes = [], [], []
    s = float(clf.W.abs().max())
    for src, tgt in pairs:
        pool = clf.x_test[clf.y_test == src]
        m = mix_linear(clf, pool[int(clf.probs(pool)[:, src].argmax())], tgt, confidence=confidence)
        mixes.append(m)
        w = clf.W[tgt] / clf.W[tgt].abs().max()
        img = lambda v: v.view(1, 8, 8).clamp(0, 1).expand(3, 8, 8)  # noqa: E731
        tiles += [img(m.x), (0.5 + 0.5 * w.view(1, 8, 8) * float(clf.W[tgt].abs().max()) / s).clamp(0, 1).expand(3, 8, 8),
                  img(m.mixed)]
        labels += [f"{src}: {m.probs_before[src]:.0%} '{src}', {m.probs_before[tgt]:.0%} '{tgt}'",
                   f"+ {m.alpha:.2f} x w_{tgt}",
                   f"= {m.probs_after[src]:.0%} '{src}', {m.probs_after[tgt]:.0%} '{tgt}'"]
    return grid(tiles, labels, ncol=3, tile=tile, label_size=11), mixes


@dataclass
class DeepMix:
    """The deep-net analogue: ``x' = clip(x + eps * n(g), 0, 1)``, g = dS_target/dx (the local template).

    Attributes: images (len(eps), 3, H, W), eps (list), repeats, normalize, target, target_name,
    probs_target (list), top1 (list of (name, prob)), gradient (3, H, W) at the clean image.
    """

    images: torch.Tensor
    eps: list[float]
    repeats: int
    normalize: str
    target: int
    target_name: str
    probs_target: list[float]
    top1: list[tuple[str, float]]
    gradient: torch.Tensor = field(repr=False)

    def labels(self) -> list[str]:
        how = "" if self.repeats == 1 else f", {self.repeats} mixes"
        return [f"+{255 * e:.3g}/255{how}: p {p:.1%}" + ("" if n == self.target_name else " (not top)")
                for e, p, (n, _) in zip(self.eps, self.probs_target, self.top1)]

    def render(self, tile: int = 160, template: bool = True):
        g = self.gradient.float()
        scale = float(torch.quantile(g.abs().flatten(), 0.995)) or float(g.abs().max()) or 1.0
        gimg = (0.5 + 0.5 * g / scale).clamp(0, 1)
        tiles, labels = list(self.images), self.labels()
        if template:
            tiles, labels = [gimg] + tiles, [f"template dS({self.target_name})/dx"] + labels
        return grid(tiles, labels, ncol=len(labels), tile=tile, upscale="bilinear")


NORMALIZE = ("sign", "l2", "max")


def _normalized(g: torch.Tensor, how: str) -> torch.Tensor:
    if how == "sign":
        return g.sign()
    if how == "l2":  # unit RMS per pixel: eps is the RMS change
        return g / (g.flatten(1).norm(dim=1).clamp_min(1e-30) / g[0].numel() ** 0.5).view(-1, 1, 1, 1)
    return g / g.flatten(1).abs().amax(1).clamp_min(1e-30).view(-1, 1, 1, 1)


def mix_gradient(model, image, target, eps_list=(0, 1 / 255, 2 / 255, 4 / 255, 8 / 255), *, normalize: str = "sign",
                 repeats: int = 1) -> DeepMix:
    """Add ``eps`` times the normalized input gradient of the target's logit (its local template) to a photo.

    ``x' = clip(x + eps * n(dS_t/dx), 0, 1)`` with ``n`` = sign (L-inf change eps; the linear
    picture's ``eps * sign(w)``), "l2" (unit RMS per pixel) or "max" (largest entry 1). ``repeats=k``
    mixes in k portions of ``eps / k``, recomputing the gradient each time (a deep net is only locally
    linear). Gradients through the model's BN-folded twin (``class_gradient``).
    """
    model = check_model(model)
    if normalize not in NORMALIZE:
        raise ConvlensError(f"normalize must be one of {', '.join(NORMALIZE)}, got {normalize!r}")
    if repeats < 1:
        raise ConvlensError(f"repeats must be >= 1, got {repeats}")
    x = check_images(model, image)[:1]
    t = model.targets(target, x)
    eps = [parse_eps(e) for e in eps_list]
    g0, _, _ = class_gradient(model, x, t)
    cur = x.expand(len(eps), -1, -1, -1).clone()
    steps = torch.tensor(eps, dtype=x.dtype, device=x.device).view(-1, 1, 1, 1) / repeats
    for k in range(repeats):
        g = g0.expand_as(cur) if k == 0 else class_gradient(model, cur, t.expand(len(eps)))[0]
        cur = (cur + steps * _normalized(g, normalize)).clamp(0, 1)
    p = forward_logits(model, cur).softmax(-1)
    names = model.classes or [str(i) for i in range(p.shape[1])]
    ti = int(t[0])
    top = [(names[int(i)], float(v)) for v, i in zip(*p.max(-1))]
    return DeepMix(cur, eps, repeats, normalize, ti, names[ti], p[:, ti].tolist(), top, g0[0].detach())
