"""Integrated gradients (Sundararajan, Taly & Yan 2017) with a completeness check."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from ..errors import ConvlensError
from ..fields import resolve_config
from ..progress import ProgressFn, call
from .base import Attribution, check_images, check_model, chunks, class_labels, resolve_targets
from .gradients import class_gradient

METHODS = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle")


def quadrature(steps: int, method: str = "gausslegendre") -> tuple[np.ndarray, np.ndarray]:
    """(alphas, weights) on [0, 1]: Gauss-Legendre (Captum's default) or a Riemann rule."""
    if method == "gausslegendre":
        if steps < 1:
            raise ConvlensError("integrated_gradients needs steps >= 1")
        x, w = np.polynomial.legendre.leggauss(steps)
        return 0.5 * (x + 1), 0.5 * w
    if method not in METHODS:
        raise ConvlensError(f"unknown IG method '{method}'; choose one of {', '.join(METHODS)}")
    if steps < 2:
        raise ConvlensError(f"{method} needs steps >= 2")
    n, kind = steps, method.split("_")[1]
    w = np.full(n, 1 / n)
    if kind == "trapezoid":  # n points at spacing 1/(n-1), halved ends: weights sum to 1 (Captum's sum to 1 - 1/n)
        w = np.full(n, 1 / (n - 1))
        w[0] /= 2
        w[-1] /= 2
        a = np.linspace(0, 1, n)
    else:
        a = {"left": np.linspace(0, 1 - 1 / n, n), "right": np.linspace(1 / n, 1, n),
             "middle": np.linspace(1 / (2 * n), 1 - 1 / (2 * n), n)}[kind]
    return a, w


@dataclass
class IntegratedGradientsConfig:
    """Integrated gradients' parameters (Sundararajan et al. 2017; Gauss-Legendre as Captum)."""

    steps: int = field(default=50, metadata={"help": "quadrature points along the path", "range": (1, None)})
    baseline: float = field(default=0.0, metadata={"help": "baseline pixel value in [0, 1] (0 = black); "
                                                   "the Python API also takes a tensor", "range": (0, 1)})
    method: Literal["gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle"] = field(
        default="gausslegendre", metadata={"help": "quadrature"})


def integrated_gradients(model, images, target=None, config: IntegratedGradientsConfig | None = None, *,
                         batch_size: int | None = None, progress: ProgressFn | None = None,
                         **overrides) -> Attribution:
    """Integrated gradients: ``IG_i = (x_i - x'_i) * int_0^1 dS/dx_i (x' + a (x - x')) da``.

    The integral is a quadrature over ``steps`` points (Gauss-Legendre by default, as Captum). By
    completeness, ``sum_i IG_i = S(x) - S(x')`` for an exact integral; the achieved difference is
    reported in ``info["delta"]`` (per image) next to ``info["score_diff"]``.

    Args:
        config: an ``IntegratedGradientsConfig`` (default: its defaults); or its fields as keywords.
        batch_size: interpolated images per forward/backward (default 16).
    Keyword Args:
        baseline: x' in [0, 1] pixel units: a float (0 = black, 0.5 = grey), or a tensor
            broadcastable to the images.
        steps: quadrature points (default 50).
        method: "gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle".
    Returns:
        ``Attribution``: ``attributions`` (N, 3, H, W) in logit units, ``map`` = their sum over
        channels (signed; render "abs", "positive" or "signed").
    Example:
        >>> r = convlens.integrated_gradients(m, cat, steps=16); r.info["delta"]
    """
    c = resolve_config(IntegratedGradientsConfig, config, overrides)
    baseline, steps, method = c.baseline, c.steps, c.method
    model = check_model(model)
    x = check_images(model, images)
    t = resolve_targets(model, target, x)
    x0 = torch.as_tensor(baseline, dtype=x.dtype, device=x.device).expand_as(x).contiguous()
    alphas, weights = quadrature(int(steps), method)
    N, S = x.shape[0], len(alphas)
    al = torch.as_tensor(alphas, dtype=x.dtype, device=x.device).view(S, 1, 1, 1, 1)
    path = (x0[None] + al * (x - x0)[None]).reshape(S * N, *x.shape[1:])
    tt = t.repeat(S)
    grads = torch.empty_like(path)
    for sl in chunks(path.shape[0], batch_size or 16):
        grads[sl] = class_gradient(model, path[sl], tt[sl])[0]
        call(progress, sl.stop, path.shape[0])
    w = torch.as_tensor(weights, dtype=x.dtype, device=x.device).view(S, 1, 1, 1, 1)
    total = (grads.view(S, *x.shape) * w).sum(0)
    attr = (x - x0) * total
    with torch.no_grad():
        both = model(torch.cat([x, x0]))
    s = both.gather(1, torch.cat([t, t]).view(-1, 1))[:, 0]
    diff = (s[:N] - s[N:])
    delta = attr.flatten(1).sum(1) - diff
    info = {"baseline": baseline if not isinstance(baseline, torch.Tensor) else "tensor", "steps": S,
            "method": method, "delta": delta.tolist(), "score_diff": diff.tolist(),
            "sum_attributions": attr.flatten(1).sum(1).tolist()}
    return Attribution("integrated_gradients", attr.sum(1), attr, t, class_labels(model, t), x, info,
                       default_mode="abs")
