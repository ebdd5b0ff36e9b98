"""Shared pieces of the non-parametric texture methods: sample input, results, window statistics."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConvlensError
from .samples import texture_image
from ..images import save_png


def as_sample(sample) -> np.ndarray:
    """A sample name, path, (H, W) / (H, W, 3) array or (1, 3, H, W) tensor -> float64 (H, W, C) in
    [0, 1], C = 1 when the image is grey (all channels equal: 3x less work), else 3."""
    if isinstance(sample, np.ndarray):
        a = sample.astype(np.float64) / (255.0 if sample.dtype == np.uint8 else 1.0)
        if a.ndim == 2:
            a = a[..., None]
        if a.ndim != 3 or a.shape[2] not in (1, 3):
            raise ConvlensError(f"sample array must be (H, W) or (H, W, 3), got {sample.shape}")
    else:
        t = texture_image(sample) if not isinstance(sample, torch.Tensor) else sample.detach().float()
        if t.ndim == 3:
            t = t[None]
        if t.ndim != 4 or t.shape[0] != 1 or t.shape[1] not in (1, 3):
            raise ConvlensError(f"sample tensor must be (1, 3, H, W), got {tuple(t.shape)}")
        a = t[0].permute(1, 2, 0).double().numpy()
    if a.shape[2] == 3 and np.allclose(a[..., 0], a[..., 1]) and np.allclose(a[..., 0], a[..., 2]):
        a = a[..., :1]
    if not np.isfinite(a).all():
        raise ConvlensError("the sample contains NaN or infinite values")
    return np.ascontiguousarray(a)


def as_size(size) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if h < 1 or w < 1:
        raise ConvlensError(f"output size must be positive, got {size}")
    return h, w


@dataclass
class TextureResult:
    """A synthesized texture.

    Attributes:
        array: (H, W) or (H, W, 3) float in [0, 1] (grey when the sample was grey).
        filled: (H, W) bool, False where synthesis did not reach (Ctrl-C).
        seconds: wall time; stopped: "done" or "interrupted"; method: which algorithm.
    """

    array: np.ndarray
    filled: np.ndarray
    seconds: float
    stopped: str
    method: str

    @property
    def image(self) -> torch.Tensor:
        """(1, 3, H, W) float32 in [0, 1] (grey repeated on 3 channels)."""
        a = self.array if self.array.ndim == 3 else self.array[..., None]
        t = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).float()[None]
        return t.expand(-1, 3, -1, -1).contiguous() if t.shape[1] == 1 else t

    def save(self, path):
        return save_png(self.image, path)


def finish(canvas: np.ndarray, filled: np.ndarray, seconds: float, stopped: str, method: str) -> TextureResult:
    out = np.clip(canvas, 0, 1)
    return TextureResult(out[..., 0] if out.shape[2] == 1 else out, filled, seconds, stopped, method)


def window_found_rate(output: np.ndarray, sample: np.ndarray, window: int, decimals: int = 6) -> float:
    """Share of ``output``'s ``window`` x ``window`` windows that occur exactly in ``sample``
    (values rounded to ``decimals``): how literally a method copies the sample."""
    def windows(a):
        a = np.round(a if a.ndim == 3 else a[..., None], decimals)
        v = np.lib.stride_tricks.sliding_window_view(a, (window, window), axis=(0, 1))
        return v.reshape(v.shape[0] * v.shape[1], -1)
    ref = {w.tobytes() for w in windows(sample)}
    out = windows(output)
    return float(np.mean([w.tobytes() in ref for w in out])) if len(out) else 0.0


def patches(a: np.ndarray, k: int) -> np.ndarray:
    """All k x k windows of (H, W, C) ``a`` as rows: ((H-k+1)(W-k+1), k*k*C), row-major positions."""
    v = np.lib.stride_tricks.sliding_window_view(a, (k, k), axis=(0, 1))  # (H', W', C, k, k)
    v = v.transpose(0, 1, 3, 4, 2)
    return np.ascontiguousarray(v.reshape(v.shape[0] * v.shape[1], -1))
