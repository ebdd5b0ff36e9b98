"""Objectives: what the loop *maximizes*, composable with ``+``, ``-`` and scalar ``*``.

An ``Objective`` maps a ``Features`` record (the images, the network input after transforms, the
activations of the layers it declared, the logits) to one value per image, shape (N,). It declares
which layers it reads (``layers``) and whether it needs the logits, so the loop runs the network only
as deep as needed (truncation). Penalties are objectives with negative sign.

    obj = objectives.class_logit(130) - 1e-4 * objectives.l2()            # Simonyan 2014
    obj = objectives.channel("features.10", 7) + objectives.tv() * -0.05   # a channel, smoothed
    obj = -objectives.feature_match("features.4", target)                  # inversion (Mahendran 2015)

New objectives (Gram matrices for texture, cross-entropy for adversarial examples) are one function
returning ``Objective(fn, layers=..., logits=...)``: the loop never changes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import torch

from ..errors import ConvlensError

LOGITS = "logits"


@dataclass
class Features:
    """What an objective can read at one step.

    Attributes:
        image: the parameterization's images (N, 3, H, W) in [0, 1] (penalties use these).
        input: what entered the network (after the robustness transforms).
        acts: {layer name: activation} for the layers the objective declared.
        logits: (N, classes) when an objective asked for them, else None.
    """

    image: torch.Tensor
    input: torch.Tensor
    acts: dict = field(default_factory=dict)
    logits: torch.Tensor | None = None

    def __getitem__(self, name: str) -> torch.Tensor:
        if name == LOGITS:
            if self.logits is None:
                raise ConvlensError("logits were not computed; declare logits=True in the objective")
            return self.logits
        if name not in self.acts:
            raise ConvlensError(f"layer '{name}' was not recorded; declare it in the objective's layers")
        return self.acts[name]


def _per_image(v: torch.Tensor, n: int) -> torch.Tensor:
    if v.ndim == 0:
        return v.expand(n)
    return v.reshape(v.shape[0], -1).sum(1) if v.ndim > 1 else v


class Objective:
    """A value to maximize, per image; ``a + b``, ``a - b``, ``w * a``, ``-a``, ``a / w`` compose.

    Args:
        fn: ``Features -> (N,)`` tensor (a scalar is broadcast to every image).
        layers: layer names ``fn`` reads; logits: whether ``fn`` reads the logits.
        name: for printing.
    """

    def __init__(self, fn: Callable[[Features], torch.Tensor], layers: Iterable[str] = (), logits: bool = False,
                 name: str = "objective"):
        self.fn = fn
        self.layers = tuple(dict.fromkeys(layers))
        self.logits = logits
        self.name = name

    def __call__(self, f: Features) -> torch.Tensor:
        return _per_image(self.fn(f), f.image.shape[0])

    def _join(self, other: "Objective", fn, name: str) -> "Objective":
        return Objective(fn, (*self.layers, *other.layers), self.logits or other.logits, name)

    def __add__(self, other):
        if isinstance(other, (int, float)):
            if other == 0:
                return self
            return Objective(lambda f: self(f) + other, self.layers, self.logits, f"{self.name} + {other}")
        return self._join(other, lambda f: self(f) + other(f), f"{self.name} + {other.name}")

    __radd__ = __add__  # so sum([...]) works

    def __neg__(self):
        return Objective(lambda f: -self(f), self.layers, self.logits, f"-{self.name}")

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):
        return (-self) + other

    def __mul__(self, w):
        if isinstance(w, Objective):
            return self._join(w, lambda f: self(f) * w(f), f"({self.name}) * ({w.name})")
        return Objective(lambda f: w * self(f), self.layers, self.logits, f"{w:g} * {self.name}")

    __rmul__ = __mul__

    def __truediv__(self, w: float):
        return self * (1.0 / w)

    def __repr__(self) -> str:
        return f"Objective({self.name}; layers={list(self.layers)}, logits={self.logits})"


def per_image_index(sel, n: int, device) -> torch.Tensor:
    """One index per image from an int or a sequence of length n."""
    if isinstance(sel, torch.Tensor) and sel.ndim == 0:
        sel = int(sel)
    if isinstance(sel, int):
        return torch.full((n,), sel, dtype=torch.long, device=device)
    t = torch.as_tensor(list(sel) if not isinstance(sel, torch.Tensor) else sel, dtype=torch.long, device=device)
    if t.numel() != n:
        raise ConvlensError(f"got {t.numel()} targets for a batch of {n} images; give one per image or a single one")
    return t


# --- network objectives -------------------------------------------------------------------------
def class_logit(target) -> Objective:
    """The class score before softmax, ``S_c(I)`` (Simonyan et al. 2014). ``target``: index or one per image."""
    def fn(f: Features):
        idx = per_image_index(target, f.logits.shape[0], f.logits.device)
        return f.logits.gather(1, idx[:, None])[:, 0]
    return Objective(fn, logits=True, name=f"class_logit({target})")


def channel(layer: str, ch, batch_mean: bool = False) -> Objective:
    """Mean activation of a channel over positions, ``mean_{y,x} A[n, c, y, x]``; ``ch``: int or one per image."""
    def fn(f: Features):
        a = f[layer]
        idx = per_image_index(ch, a.shape[0], a.device)
        sel = a[torch.arange(a.shape[0], device=a.device), idx]
        return sel.reshape(a.shape[0], -1).mean(1)
    return Objective(fn, [layer], name=f"channel({layer}, {ch})")


def neuron(layer: str, ch, unit: tuple[int, int] | None = None) -> Objective:
    """One unit ``A[n, c, y, x]``; ``unit=None`` takes the centre position (a fully connected layer: (N, D))."""
    def fn(f: Features):
        a = f[layer]
        n = a.shape[0]
        idx = per_image_index(ch, n, a.device)
        rows = torch.arange(n, device=a.device)
        if a.ndim == 2:
            return a[rows, idx]
        if unit is None:
            y, x = a.shape[2] // 2, a.shape[3] // 2
        else:  # transforms (pad, scale) may change the map's size a little: stay inside it
            y, x = min(max(unit[0], 0), a.shape[2] - 1), min(max(unit[1], 0), a.shape[3] - 1)
        return a[rows, idx, y, x]
    return Objective(fn, [layer], name=f"neuron({layer}, {ch}, {unit})")


def direction(layer: str, vector: torch.Tensor) -> Objective:
    """Mean over positions of the projection of the activation vector on ``vector`` (C,)."""
    def fn(f: Features):
        a = f[layer]
        v = vector.to(a).view(1, -1, *([1] * (a.ndim - 2)))
        return (a * v).sum(1).reshape(a.shape[0], -1).mean(1)
    return Objective(fn, [layer], name=f"direction({layer})")


def layer_l2(layer: str) -> Objective:
    """DeepDream: ``1/2 sum A^2`` over the layer (Mordvintsev et al. 2015); its gradient w.r.t. A is A itself."""
    def fn(f: Features):
        a = f[layer]
        return 0.5 * a.pow(2).reshape(a.shape[0], -1).sum(1)
    return Objective(fn, [layer], name=f"dream({layer})")


def feature_match(layer: str, target: torch.Tensor, normalize: bool = True) -> Objective:
    """Distance to target features, ``||phi(x) - phi0||^2 / ||phi0||^2`` (Mahendran & Vedaldi 2015).

    This is a *distance*: maximize its negative (``-feature_match(...)``). ``target``: (1 or N, ...)
    activations of the layer; ``normalize=False`` gives the raw squared distance.
    """
    target = target.detach().clone()  # a normal tensor even if computed under inference_mode
    denom = target.pow(2).reshape(target.shape[0], -1).sum(1).clamp(min=1e-12) if normalize else None

    def fn(f: Features):
        a = f[layer]
        if a.shape[1:] != target.shape[1:]:
            raise ConvlensError(f"feature_match: layer {layer} gives {tuple(a.shape[1:])} but the target has "
                                f"{tuple(target.shape[1:])}; use the same image size for both")
        d = (a - target).pow(2).reshape(a.shape[0], -1).sum(1)
        return d / denom if normalize else d
    return Objective(fn, [layer], name=f"feature_distance({layer})")


def guided_dream(layer: str, guide: torch.Tensor) -> Objective:
    """Guided DeepDream: each position's features move toward the guide's best-matching feature.

    ``sum_p max_q <A(p), G(q)>`` (Mordvintsev's guided dream): with the guide image's activations G
    (1, C, h, w), the gradient at position p is the guide feature most similar to A(p).
    """
    g = guide.detach().clone().flatten(2)[0]  # (C, hw); clone: may come from inference_mode

    def fn(f: Features):
        a = f[layer].flatten(2)  # (N, C, HW)
        dots = torch.einsum("nca,cb->nab", a, g.to(a))
        return dots.max(2).values.sum(1)
    return Objective(fn, [layer], name=f"guided_dream({layer})")


# --- image penalties (return the penalty; subtract them: obj - lam * l2()) ---------------------
def l2(center: float | Sequence[float] | torch.Tensor = 0.0) -> Objective:
    """Squared L2 norm of the image around ``center``: ``sum (I - center)^2`` (Simonyan's ``||I||^2``)."""
    def fn(f: Features):
        c = torch.as_tensor(center, dtype=f.image.dtype, device=f.image.device)
        c = c.view(1, -1, 1, 1) if c.ndim == 1 else c
        return (f.image - c).pow(2).reshape(f.image.shape[0], -1).sum(1)
    return Objective(fn, name="l2")


def l1(center: float = 0.0) -> Objective:
    """L1 norm of the image around ``center``: ``sum |I - center|``."""
    return Objective(lambda f: (f.image - center).abs().reshape(f.image.shape[0], -1).sum(1), name="l1")


def alpha_norm(alpha: float = 6.0, center: float | Sequence[float] = 0.5) -> Objective:
    """``sum |I - center|^alpha`` (Mahendran & Vedaldi 2015's alpha-norm; alpha=6 bounds the range)."""
    def fn(f: Features):
        c = torch.as_tensor(center, dtype=f.image.dtype, device=f.image.device)
        c = c.view(1, -1, 1, 1) if c.ndim == 1 else c
        return (f.image - c).abs().pow(alpha).reshape(f.image.shape[0], -1).sum(1)
    return Objective(fn, name=f"alpha_norm({alpha})")


def total_variation(x: torch.Tensor, beta: float = 2.0, eps: float = 1e-8) -> torch.Tensor:
    """``R_TV(x) = sum_ij ((x[i,j+1]-x[i,j])^2 + (x[i+1,j]-x[i,j])^2)^(beta/2)`` per image, (N,).

    Mahendran & Vedaldi 2015, eq. (4): the sum runs over pixels having both a right and a lower
    neighbour and over channels. ``eps`` keeps beta < 2 differentiable at flat regions.
    """
    dx = x[..., :-1, 1:] - x[..., :-1, :-1]
    dy = x[..., 1:, :-1] - x[..., :-1, :-1]
    s = dx * dx + dy * dy
    if beta == 2.0:
        r = s
    else:
        r = (s + eps).pow(beta / 2)
    return r.reshape(x.shape[0], -1).sum(1)


def tv(beta: float = 2.0) -> Objective:
    """Total variation penalty ``R_TV`` of the image (see ``total_variation``)."""
    return Objective(lambda f: total_variation(f.image, beta), name=f"tv({beta})")


def center_bias(power: float = 2.0, center: float = 0.5) -> Objective:
    """Centre-bias penalty: ``sum r^power * (I - center)^2`` with r the distance to the image centre
    (0 at the centre, 1 at the corners). Subtracting it keeps content in the middle (Nguyen 2016)."""
    def fn(f: Features):
        n, _, h, w = f.image.shape
        yy = torch.linspace(-1, 1, h, device=f.image.device)[:, None]
        xx = torch.linspace(-1, 1, w, device=f.image.device)[None, :]
        r = ((yy * yy + xx * xx) / 2).sqrt().pow(power)
        return ((f.image - center).pow(2) * r).reshape(n, -1).sum(1)
    return Objective(fn, name="center_bias")


def as_objective(obj) -> Objective:
    if isinstance(obj, Objective):
        return obj
    if callable(obj):
        return Objective(obj, name=getattr(obj, "__name__", "callable"))
    raise ConvlensError(f"objective must be an Objective or a callable, got {type(obj).__name__}")


__all__ = ["Objective", "Features", "LOGITS", "class_logit", "channel", "neuron", "direction", "layer_l2",
           "feature_match", "guided_dream", "l2", "l1", "alpha_norm", "tv", "total_variation", "center_bias",
           "as_objective"]
