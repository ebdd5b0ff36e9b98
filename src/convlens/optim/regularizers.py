"""Yosinski's periodic image operations (Yosinski et al. 2015, "Understanding neural networks
through deep visualization", section 3), applied by the loop after optimizer steps.

They edit the raw pixels of a pixel parameterization in place, in the space centred on the
``background`` colour (the model's mean colour, i.e. a zero network input - the paper's "0"):

    decay(theta)                 x <- (1 - theta) x                          (L2 decay)
    blur(sigma, every)           x <- GaussianBlur_sigma(x) every n steps     (high frequencies)
    clip_norm(pct, every)        pixels whose RGB norm is below the pct-th percentile <- 0
    clip_contribution(pct, every) pixels with |sum_c x_c * grad_c| below the pct-th percentile <- 0

Each is an object with ``every`` and ``__call__(x_centred, grad) -> x_centred``. The paper's four
hyper-parameter sets (Table 1, from a random search) are in ``YOSINSKI_SETS``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..images.blur import gaussian_blur, gaussian_kernel1d

# Yosinski et al. 2015, Table 1: (decay, blur width, blur every, norm pct, contribution pct).
YOSINSKI_SETS = {
    1: (0.0, 0.5, 4, 50.0, 0.0),
    2: (0.3, 0.0, 0, 20.0, 0.0),
    3: (0.0001, 1.0, 4, 0.0, 0.0),
    4: (0.0, 0.5, 4, 0.0, 90.0),
}


def _below_pct(score: torch.Tensor, pct: float) -> torch.Tensor:
    """(N, 1, H, W) mask of pixels whose score is below the pct-th percentile of their image."""
    flat = score.flatten(1)
    q = torch.quantile(flat, pct / 100.0, dim=1, keepdim=True)
    return (flat < q).view_as(score)


@dataclass
class decay:  # noqa: N801
    """L2 decay: ``x <- (1 - theta) x`` every step (the gradient of ``-theta/2 ||x||^2`` per step)."""
    theta: float
    every: int = 1

    def __call__(self, x, grad):
        return x * (1 - self.theta)


@dataclass
class blur:  # noqa: N801
    """Gaussian blur of width ``sigma`` pixels every ``every`` steps."""
    sigma: float
    every: int = 4

    def __call__(self, x, grad):
        return gaussian_blur(x, self.sigma)


@dataclass
class clip_norm:  # noqa: N801
    """Set pixels whose RGB norm is below the ``pct``-th percentile to 0 (the background)."""
    pct: float
    every: int = 1

    def __call__(self, x, grad):
        return x.masked_fill(_below_pct(x.norm(dim=1, keepdim=True), self.pct), 0.0)


@dataclass
class clip_contribution:  # noqa: N801
    """Set pixels of small contribution ``|sum_c x_c * dObjective/dx_c|`` (a linear estimate of how much
    the objective drops if the pixel is zeroed) below the ``pct``-th percentile to 0."""
    pct: float
    every: int = 1

    def __call__(self, x, grad):
        if grad is None:
            return x
        contrib = (x * grad).sum(1, keepdim=True).abs()
        return x.masked_fill(_below_pct(contrib, self.pct), 0.0)


def yosinski(decay_: float, blur_width: float, blur_every: int, norm_pct: float, contribution_pct: float) -> list:
    """The four operations with the given settings (zeros disable one)."""
    ops = []
    if decay_ > 0:
        ops.append(decay(decay_))
    if blur_width > 0 and blur_every > 0:
        ops.append(blur(blur_width, blur_every))
    if norm_pct > 0:
        ops.append(clip_norm(norm_pct))
    if contribution_pct > 0:
        ops.append(clip_contribution(contribution_pct))
    return ops


__all__ = ["YOSINSKI_SETS", "gaussian_blur", "gaussian_kernel1d", "decay", "blur", "clip_norm",
           "clip_contribution", "yosinski"]
