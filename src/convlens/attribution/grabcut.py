"""Segmentation without supervision: GrabCut (Rother, Kolmogorov & Blake 2004) seeded by saliency.

The lecture's recipe (Simonyan et al. 2014, section 3.1): the most salient pixels are taken as
foreground, the least salient as background, and GrabCut's colour models + graph cut propagate
those seeds to an object mask. OpenCV's ``cv2.grabCut`` does the cut.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from ..errors import ConvlensError
from ..fields import resolve_config
from .base import Attribution
from .saliency import saliency, smoothgrad
from ..images.io import to_uint8
from ..render import colormap, side_by_side


@dataclass
class GrabCutConfig:
    """GrabCut from saliency: the seed map and the quantiles that make the seeds (Simonyan et al. 2014, 3.1;
    their 95 % / 30 % quantiles; the probable band at 70 %)."""

    method: Literal["smoothgrad", "saliency"] = field(default="smoothgrad", metadata={
        "help": "seed map: smoothgrad (coherent) or saliency (the lecture's)"})
    samples: int = field(default=16, metadata={"help": "SmoothGrad samples of the seed map", "range": (1, None)})
    foreground: float = field(default=0.95, metadata={"help": "quantile above which pixels are foreground seeds",
                                                      "range": (0, 1), "flag": "fg"})
    probable: float = field(default=0.7, metadata={"help": "quantile above which pixels are probable foreground",
                                                   "range": (0, 1)})
    background: float = field(default=0.3, metadata={"help": "quantile below which pixels are background seeds",
                                                     "range": (0, 1), "flag": "bg"})
    iterations: int = field(default=5, metadata={"help": "GrabCut iterations", "range": (1, None)})
    seed: int = field(default=0, metadata={"help": "OpenCV's RNG seed (GrabCut's k-means init)"})

    def __post_init__(self):
        if not self.background < self.probable <= self.foreground:
            raise ConvlensError(f"grabcut quantiles must satisfy background < probable <= foreground (--bg < "
                                f"--probable <= --fg), got {self.background}, {self.probable}, {self.foreground}")


@dataclass
class GrabCutResult:
    """mask (H, W) bool; cutout (1, 3, H, W) in [0, 1] with a white background; seeds (H, W) uint8
    with OpenCV's labels (0 background, 1 foreground, 2 probable background, 3 probable foreground);
    saliency (H, W) the smoothed, [0, 1]-scaled map that made the seeds; image (1, 3, H, W)."""

    mask: torch.Tensor
    cutout: torch.Tensor
    seeds: np.ndarray
    saliency: np.ndarray
    image: torch.Tensor

    @property
    def foreground_fraction(self) -> float:
        return float(self.mask.float().mean())

    def rgba(self) -> np.ndarray:
        """The cut-out as an RGBA uint8 array (transparent background)."""
        rgb = to_uint8(self.image)
        return np.dstack([rgb, self.mask.cpu().numpy().astype(np.uint8) * 255])

    def render(self, height: int = 224):
        """Image, saliency, seeds + mask, cut-out in one row (PIL image)."""
        seeds = np.array([[40, 40, 40], [255, 255, 255], [90, 90, 160], [230, 200, 90]], np.uint8)[self.seeds]
        mask = self.mask.cpu().numpy().astype(np.uint8) * 255
        return side_by_side([self.image, colormap(self.saliency), seeds, mask, self.cutout],
                            ["image", "saliency (smoothed)", "seeds: bg / pr.bg / pr.fg / fg", "GrabCut mask",
                             f"cut-out ({100 * self.foreground_fraction:.0f}% of pixels)"], height=height)


def grabcut(image, saliency_map, config: GrabCutConfig | None = None, *, smooth: float | None = None, index: int = 0,
            **overrides) -> GrabCutResult:
    """Cut the object out of ``image`` with GrabCut seeded from saliency quantiles.

    Seeds from the smoothed saliency s: ``s >= q(foreground)`` -> foreground;
    ``q(probable) <= s`` -> probable foreground; ``s < q(background)`` -> background; the rest
    probable background. GrabCut (``cv2.GC_INIT_WITH_MASK``) then fits colour GMMs and cuts.

    Args:
        config: a ``GrabCutConfig`` (its ``method``/``samples`` are for ``grabcut_from_saliency``), or its
            fields as keywords.
        image: (1, 3, H, W) or (3, H, W) in [0, 1].
        saliency_map: an ``Attribution`` (its map for image ``index``, upsampled), or an (H, W) /
            (1, H, W) / (3, H, W) tensor or array (channels reduced by max |.|).
        smooth: Gaussian sigma in pixels applied to the map first (default: 1.5 % of the image
            side; raw gradients are speckled).
    Keyword Args:
        foreground: quantile in [0, 1] of the foreground seeds,
        probable: of the probable foreground, and
        background: of the background; background < probable <= foreground.
        iterations: GrabCut iterations (default 5).
        seed: OpenCV's RNG seed (GrabCut's k-means init), for repeatable masks.
    Returns:
        ``GrabCutResult`` (``render()`` gives the lecture's row: image, saliency, mask, cut-out).
    Example:
        >>> g = convlens.grabcut(cat, convlens.saliency(m, cat)); g.mask.shape
        torch.Size([224, 224])
    """
    import cv2

    c = resolve_config(GrabCutConfig, config, overrides)
    foreground, probable, background, iterations, seed = c.foreground, c.probable, c.background, c.iterations, c.seed
    img = image.detach().float().cpu()
    if img.ndim == 4:
        img = img[index:index + 1] if img.shape[0] > 1 else img
        img = img[0]
    if img.ndim != 3 or img.shape[0] != 3:
        raise ConvlensError(f"grabcut needs one RGB image (3, H, W), got {tuple(image.shape)}")
    H, W = img.shape[1:]
    if isinstance(saliency_map, Attribution):
        sal = saliency_map.upsampled(index)[0].detach().double().abs().cpu().numpy()
    else:
        s = saliency_map.detach().double().cpu().numpy() if isinstance(saliency_map, torch.Tensor) else np.asarray(saliency_map, float)
        s = np.squeeze(s)
        sal = np.abs(s).max(0) if s.ndim == 3 else np.abs(s)
    if sal.shape != (H, W):
        raise ConvlensError(f"saliency map {sal.shape} does not match the image {(H, W)}; pass the map of this image")
    sigma = smooth if smooth is not None else 0.015 * max(H, W)
    if sigma > 0:
        sal = cv2.GaussianBlur(sal, (0, 0), sigma)
    lo, hi = float(sal.min()), float(sal.max())
    sal = (sal - lo) / (hi - lo) if hi > lo else np.zeros_like(sal)
    qf, qp, qb = np.quantile(sal, [foreground, probable, background])
    seeds = np.full((H, W), cv2.GC_PR_BGD, np.uint8)
    seeds[sal >= qp] = cv2.GC_PR_FGD
    seeds[sal >= qf] = cv2.GC_FGD
    seeds[sal < qb] = cv2.GC_BGD
    if not (seeds == cv2.GC_FGD).any() or not ((seeds == cv2.GC_BGD) | (seeds == cv2.GC_PR_BGD)).any():
        raise ConvlensError("the saliency map is flat: no foreground / background seeds; check the map")
    bgr = np.ascontiguousarray((img.permute(1, 2, 0).numpy()[..., ::-1] * 255 + 0.5).clip(0, 255).astype(np.uint8))
    mask = seeds.copy()
    cv2.setRNGSeed(int(seed))
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(bgr, mask, None, bgd, fgd, int(iterations), cv2.GC_INIT_WITH_MASK)
    fg = torch.from_numpy((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD))
    cut = torch.where(fg[None], img, torch.ones_like(img))[None]
    return GrabCutResult(fg, cut, seeds, sal.astype(np.float32), img[None])


def grabcut_from_saliency(model, image, target=None, config: GrabCutConfig | None = None, **overrides
                          ) -> tuple[GrabCutResult, Attribution]:
    """The lecture's recipe end to end: the seed map of ``image`` for ``target`` (``config.method``:
    SmoothGrad or plain saliency), then ``grabcut``. Returns (the cut, the seed map's ``Attribution``).

    Example:
        >>> cut, sal = convlens.attribution.grabcut_from_saliency(m, cat); cut.foreground_fraction
    """
    c = resolve_config(GrabCutConfig, config, overrides)
    sal = smoothgrad(model, image, target, samples=c.samples) if c.method == "smoothgrad" else saliency(model, image, target)
    return grabcut(sal.images, sal, c), sal
