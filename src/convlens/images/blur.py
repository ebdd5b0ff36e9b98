"""Separable Gaussian blur (differentiable), shared by regularizers and occlusion baselines."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gaussian_kernel1d(sigma: float, dtype=torch.float32) -> torch.Tensor:
    """Normalized 1-D Gaussian taps, radius ceil(3 sigma)."""
    r = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-r, r + 1, dtype=dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W), reflect padding (replicate on tiny images)."""
    if sigma <= 0:
        return x
    k = gaussian_kernel1d(sigma, x.dtype).to(x.device)
    r = (k.numel() - 1) // 2
    c = x.shape[1]
    pad_mode = "reflect" if min(x.shape[-2:]) > r else "replicate"
    x = F.pad(x, (r, r, 0, 0), mode=pad_mode)
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.pad(x, (0, 0, r, r), mode=pad_mode)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
