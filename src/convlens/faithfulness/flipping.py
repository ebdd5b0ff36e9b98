"""Pixel flipping (Bach et al. 2015) and region perturbation with its AOPC (Samek et al. 2017).

Pixel flipping removes the map's pixels in order (MoRF: most relevant first), ``pixels_per_step`` at a
time and cumulatively, and records the target's probability after each step: a faithful map makes it
fall fast (``value``: the area under the curve over the fraction of pixels flipped, lower is better).
It is deletion with a fixed step size and the whole curve kept, so it runs through deletion's
``curve_scores`` (the perturbation driver, all maps in one pass).

Region perturbation does the same with square regions: the image is cut into ``patch_size`` patches
(on a grid centred as Quantus pads it: the remainder split floor / ceil on both sides), patches are
ranked by the sum of the map inside them, and the first ``regions`` are replaced one per step (Samek
et al.: by uniform random values). The area over the perturbation curve,

    AOPC = 1 / (L + 1) * sum_{k=0..L} ( f(x) - f(x_k) ),

(x_k: the first k regions perturbed; the k = 0 term is 0, as in the paper) is the ``value``: higher is
better for MoRF.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from ..attribution.base import class_labels
from ..progress import ProgressFn
from .deletion import curve_scores, one_map, pixel_ranks
from .registry import Metric, register

Baseline = Literal["zero", "uniform", "mean", "grey", "blur", "noisy_linear"]


def _common(baseline: str):
    """The fields pixel flipping and region perturbation share with deletion's config (curve_scores reads them)."""
    return dict(
        baseline=field(default=baseline, metadata={
            "help": "what a flipped pixel becomes (uniform: seeded noise in [0, 1]; noisy_linear: ROAD's imputation)"}),
        order=field(default="morf", metadata={"help": "morf: most relevant first; lerf: least relevant first"}),
        score=field(default="prob", metadata={"help": "the target's softmax probability or logit"}),
        blur_sigma=field(default=5.0, metadata={"help": "sigma of the blur baseline, pixels", "range": (0, None)}),
        noise=field(default=0.01, metadata={"help": "noise std of the noisy_linear baseline", "range": (0, None)}),
        seed=field(default=0, metadata={"help": "seed of the uniform and noisy_linear baselines"}),
        batch_size=field(default=None, metadata={
            "help": "perturbed images per forward (default: what the activations allow in 1.5 GB)", "range": (1, None)}),
        backend=field(default="auto", metadata={"help": "forward backend of the perturbation passes (docs/forward.md)"}),
    )


_PF = _common("zero")
_RP = _common("uniform")


@dataclass
class PixelFlippingConfig:
    """Pixel flipping's parameters (Bach et al. 2015; Quantus's default baseline, black)."""

    pixels_per_step: int | None = field(default=None, metadata={
        "help": "pixels flipped per step (default: H * W / 100, about 100 steps; 1 is the paper's)", "range": (1, None)})
    baseline: Baseline = _PF["baseline"]
    order: Literal["morf", "lerf"] = _PF["order"]
    score: Literal["prob", "logit"] = _PF["score"]
    blur_sigma: float = _PF["blur_sigma"]
    noise: float = _PF["noise"]
    seed: int = _PF["seed"]
    batch_size: int | None = _PF["batch_size"]
    backend: Literal["auto", "torch", "onnxruntime"] = _PF["backend"]


@dataclass
class RegionPerturbationConfig:
    """Region perturbation's parameters (Samek et al. 2017: uniform noise; patches and regions as Quantus)."""

    patch_size: int = field(default=8, metadata={"help": "side of the square regions, pixels", "range": (1, None)})
    regions: int = field(default=100, metadata={"help": "regions perturbed (steps L of the AOPC)", "range": (1, None)})
    baseline: Baseline = _RP["baseline"]
    order: Literal["morf", "lerf"] = _RP["order"]
    score: Literal["prob", "logit"] = _RP["score"]
    blur_sigma: float = _RP["blur_sigma"]
    noise: float = _RP["noise"]
    seed: int = _RP["seed"]
    batch_size: int | None = _RP["batch_size"]
    backend: Literal["auto", "torch", "onnxruntime"] = _RP["backend"]


@dataclass
class FlippingCurve:
    """``scores`` (N, S + 1): the target's score after each step (column 0: the image); ``steps`` (S + 1,)
    the x axis (fraction of pixels flipped, or regions perturbed); ``value`` (N,): pixel flipping's AUC
    or region perturbation's AOPC."""

    kind: str
    steps: torch.Tensor
    scores: torch.Tensor
    value: torch.Tensor
    target: torch.Tensor
    labels: list
    config: object

    @property
    def drops(self) -> torch.Tensor:
        """(N, S) f(x) - f(x_k) for k = 1..S (Quantus's region perturbation output)."""
        return self.scores[:, :1] - self.scores[:, 1:]


def flip_counts(h: int, w: int, per_step: int | None) -> np.ndarray:
    """Pixels flipped after each step: 0, p, 2p, ..., H * W (the last step may be partial)."""
    p = int(per_step or max(1, (h * w) // 100))
    return np.minimum(np.arange(math.ceil(h * w / p) + 1) * p, h * w)


def _padding(n: int, p: int) -> int:
    """Quantus's ``get_padding_size``: the grid starts floor((p - n % p) / 2) pixels before the image."""
    return 0 if n % p == 0 else (p - n % p) // 2


def region_ranks(maps: torch.Tensor, patch_size: int, order: str = "morf") -> tuple[torch.Tensor, int]:
    """(N, H, W) each pixel's region position in the order (0 = perturbed first), and the region count.
    Regions are ranked by the sum of the map inside them (a stable sort: ties keep row-major order)."""
    N, H, W = maps.shape
    p = int(patch_size)
    top, left = _padding(H, p), _padding(W, p)
    rows = (torch.arange(H) + top) // p
    cols = (torch.arange(W) + left) // p
    nr, nc = int(rows[-1]) + 1, int(cols[-1]) + 1
    region = (rows[:, None] * nc + cols[None, :]).reshape(-1)            # (H * W,) region of each pixel
    sums = torch.zeros(N, nr * nc, dtype=torch.float64).index_add_(1, region, maps.reshape(N, -1).double())
    pos = pixel_ranks(sums.view(N, 1, nr * nc), order).view(N, nr * nc)
    return pos[:, region].view(N, H, W), nr * nc


def _flip_scores(model, x, t, maps, c, progress=None):
    H, W = x.shape[-2:]
    counts = flip_counts(H, W, c.pixels_per_step)
    fractions, scores = curve_scores("deletion", model, x, t, maps, c, progress, counts=counts)
    return fractions, scores


def _region_scores(model, x, t, maps, c, progress=None):
    M, N, H, W = maps.shape
    ranks, n = region_ranks(maps.reshape(M * N, H, W), c.patch_size, c.order)
    L = min(int(c.regions), n)
    _, scores = curve_scores("deletion", model, x, t, maps, c, progress, ranks=ranks, counts=np.arange(L + 1))
    return torch.arange(L + 1, dtype=torch.float64), scores


def _pf_result(steps, s, t, labels, c):
    return FlippingCurve("pixel_flipping", steps, s, torch.trapezoid(s, steps, dim=1), t.cpu(), labels, c)


def _rp_result(steps, s, t, labels, c):
    return FlippingCurve("region_perturbation", steps, s, (s[:, :1] - s).mean(1), t.cpu(), labels, c)


def _run(scores_fn, result_fn, cls, model, images, attribution, target, config, progress, overrides):
    return one_map(cls, _many(scores_fn, result_fn), model, images, attribution, target, config, progress, overrides)


def pixel_flipping(model, images, attribution, target=None, config: PixelFlippingConfig | None = None, *,
                   progress: ProgressFn | None = None, **overrides) -> FlippingCurve:
    """Pixel flipping (Bach et al. 2015): the target's probability as the map's top pixels are flipped to the
    baseline, ``pixels_per_step`` at a time; ``value`` is the area under it (lower is better).

    Args:
        model: a ``convlens.Model``.
        images: (N, 3, H, W) in [0, 1].
        attribution: an ``Attribution`` or maps (N, H, W) / (N, C, H, W).
        target: the class tracked (default: each image's predicted class).
        config: a ``PixelFlippingConfig``, or its fields as keywords.
        progress: ``progress(done, total)`` perturbed images.
    Returns:
        ``FlippingCurve`` (``scores`` (N, S + 1), ``steps`` (fraction flipped), ``value`` (N,)).
    Example:
        >>> convlens.faithfulness.pixel_flipping(m, cat, convlens.saliency(m, cat), pixels_per_step=2000).value
    """
    return _run(_flip_scores, _pf_result, PixelFlippingConfig, model, images, attribution, target, config,
                progress, overrides)


def region_perturbation(model, images, attribution, target=None, config: RegionPerturbationConfig | None = None,
                        *, progress: ProgressFn | None = None, **overrides) -> FlippingCurve:
    """Region perturbation (Samek et al. 2017): the map's top ``patch_size`` regions replaced one per step;
    ``value`` is the AOPC, the mean drop f(x) - f(x_k) over k = 0..L (higher is better for MoRF).

    The arguments are pixel flipping's, with a ``RegionPerturbationConfig``; ``drops`` (N, L) is the curve
    of drops.

    Example:
        >>> convlens.faithfulness.region_perturbation(m, cat, convlens.grad_cam(m, cat), regions=20).value
    """
    return _run(_region_scores, _rp_result, RegionPerturbationConfig, model, images, attribution, target, config,
                progress, overrides)


def _many(scores_fn, result_fn):
    def run(model, x, t, maps, c, progress=None):
        steps, scores = scores_fn(model, x, t, maps, c, progress)
        labels = class_labels(model, t)
        return [result_fn(steps, s, t, labels, c) for s in scores]
    return run


register(Metric("pixel_flipping", "model", pixel_flipping, "lower", "Pixel flipping AUC", "Bach et al. 2015",
                PixelFlippingConfig, value=lambda r: r.value, many=_many(_flip_scores, _pf_result),
                curve=lambda r: (r.steps, r.scores, "fraction of pixels flipped")))
register(Metric("region_perturbation", "model", region_perturbation, "higher", "Region perturbation AOPC",
                "Samek et al. 2017", RegionPerturbationConfig, value=lambda r: r.value,
                many=_many(_region_scores, _rp_result),
                curve=lambda r: (r.steps, r.scores, "regions perturbed")))
