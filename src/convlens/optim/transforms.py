"""Robustness transforms: random, differentiable changes of the image before the network sees it.

Optimizing through random jitter / scale / rotation makes the result work for many nearby images,
which removes the high-frequency patterns a single fixed view would exploit (Mordvintsev et al.
2015; Olah et al. 2017). Each transform is a callable ``t(images, generator) -> images``; all draws
come from the loop's ``torch.Generator``, so a seed fixes them.

    transforms.compose(transforms.pad(12), transforms.jitter(8), transforms.random_scale(...))
    transforms.standard()   # Lucid's set: pad 12, jitter 8, scale 0.9..1.1, rotate -10..10, jitter 4
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _choice(seq: Sequence, g: torch.Generator):
    return seq[int(torch.randint(len(seq), (1,), generator=g))]


class jitter:  # noqa: N801 - lower-case like a function, it is a callable
    """Random crop shifting the image by up to ``d`` pixels: output is (H - d, W - d)."""

    def __init__(self, d: int):
        self.d = int(d)

    def __call__(self, x, g):
        if self.d <= 0:
            return x
        dy, dx = (int(v) for v in torch.randint(self.d + 1, (2,), generator=g))
        return x[..., dy:dy + x.shape[-2] - self.d, dx:dx + x.shape[-1] - self.d]

    def __repr__(self):
        return f"jitter({self.d})"


class roll:  # noqa: N801
    """Random circular shift by up to ``d`` pixels each way (DeepDream's jitter; size unchanged)."""

    def __init__(self, d: int):
        self.d = int(d)

    def __call__(self, x, g):
        if self.d <= 0:
            return x
        dy, dx = (int(v) - self.d for v in torch.randint(2 * self.d + 1, (2,), generator=g))
        return torch.roll(x, shifts=(dy, dx), dims=(-2, -1))

    def __repr__(self):
        return f"roll({self.d})"


class pad:  # noqa: N801
    """Pad by ``w`` pixels with a constant (``value``, default 0.5 grey) or "reflect"."""

    def __init__(self, w: int, mode: str = "constant", value: float = 0.5):
        self.w, self.mode, self.value = int(w), mode, value

    def __call__(self, x, g):
        if self.w <= 0:
            return x
        p = (self.w,) * 4
        return F.pad(x, p, mode=self.mode, value=self.value) if self.mode == "constant" else F.pad(x, p, mode=self.mode)

    def __repr__(self):
        return f"pad({self.w}, {self.mode})"


class random_scale:  # noqa: N801
    """Resize by a factor drawn from ``scales`` (bilinear)."""

    def __init__(self, scales: Sequence[float]):
        self.scales = list(scales)

    def __call__(self, x, g):
        s = float(_choice(self.scales, g))
        if s == 1.0:
            return x
        h, w = x.shape[-2:]
        return F.interpolate(x, size=(max(1, round(h * s)), max(1, round(w * s))), mode="bilinear", align_corners=False)

    def __repr__(self):
        return f"random_scale({min(self.scales):g}..{max(self.scales):g})"


class random_rotate:  # noqa: N801
    """Rotate by an angle in degrees drawn from ``angles`` (bilinear, border pixels repeated)."""

    def __init__(self, angles: Sequence[float]):
        self.angles = list(angles)

    def __call__(self, x, g):
        a = float(_choice(self.angles, g))
        if a == 0:
            return x
        t = math.radians(a)
        theta = torch.tensor([[math.cos(t), -math.sin(t), 0.0], [math.sin(t), math.cos(t), 0.0]],
                             dtype=x.dtype, device=x.device)
        grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def __repr__(self):
        return f"random_rotate({min(self.angles):g}..{max(self.angles):g})"


class compose:  # noqa: N801
    """Apply transforms in order."""

    def __init__(self, *ts: Transform):
        self.ts = [t for t in ts if t is not None]

    def __call__(self, x, g):
        for t in self.ts:
            x = t(x, g)
        return x

    def __repr__(self):
        return "compose(" + ", ".join(map(repr, self.ts)) + ")"


def standard(scale: float = 1.0) -> compose:
    """Lucid's standard transforms, scaled by ``scale`` for image sizes other than 224:
    pad 12 (grey), jitter 8, scale 0.9..1.1, rotate -10..10 degrees (0 more often), jitter 4."""
    return compose(pad(round(12 * scale)), jitter(round(8 * scale)),
                   random_scale([1 + (i - 5) / 50 for i in range(11)]),
                   random_rotate(list(range(-10, 11)) + 5 * [0]), jitter(round(4 * scale)))


def light() -> compose:
    """Jitter and a small scale change only (Yosinski-style robustness)."""
    return compose(jitter(4), random_scale([0.95, 1.0, 1.05]))


__all__ = ["Transform", "jitter", "roll", "pad", "random_scale", "random_rotate", "compose", "standard", "light"]
