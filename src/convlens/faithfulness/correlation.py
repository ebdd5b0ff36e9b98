"""Faithfulness correlation (Bhatt, Weller & Moura 2020, "Evaluating and aggregating feature-based model
explanations", IJCAI): does the map's mass on a set of pixels predict what removing them costs?

For ``runs`` random subsets S of ``subset_size`` pixels: the map's sum over S, and the drop of the
target's score f(x) - f(x with S set to the baseline). The value is their Pearson correlation over the
subsets, per image (higher is better; a map that *is* the drop of each pixel, on a model additive in
the pixels, scores 1).

The subsets are seeded (``numpy.random.default_rng(seed)``: the ``subset_size`` smallest of H * W uniform
keys, run by run). The perturbed images do not depend on the map: every method is scored on the same subsets, from one
pass of the perturbation driver (N + runs x N images).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from ..attribution.base import class_labels
from ..drivers.perturb import perturbed_logits, target_scores
from ..errors import ConvlensError
from ..progress import ProgressFn
from .deletion import _baseline, one_map
from .registry import Metric, register


@dataclass
class FaithfulnessCorrelationConfig:
    """Faithfulness correlation's parameters (Quantus's defaults: 100 runs of 224 pixels, black baseline)."""

    runs: int = field(default=100, metadata={"help": "random subsets per image", "range": (2, None)})
    subset_size: int = field(default=224, metadata={"help": "pixels in each subset", "range": (1, None)})
    baseline: Literal["zero", "grey", "mean", "blur", "uniform"] = field(default="zero", metadata={
        "help": "what the subset's pixels become"})
    blur_sigma: float = field(default=5.0, metadata={"help": "sigma of the blur baseline, pixels", "range": (0, None)})
    score: Literal["prob", "logit"] = field(default="logit", metadata={"help": "the target's logit (as Quantus) or softmax probability"})
    seed: int = field(default=0, metadata={"help": "seed of the random subsets"})
    batch_size: int | None = field(default=None, metadata={
        "help": "perturbed images per forward (default: what the activations allow in 1.5 GB)", "range": (1, None)})
    backend: Literal["auto", "torch", "onnxruntime"] = field(default="auto", metadata={
        "help": "forward backend of the perturbation passes (docs/forward.md)"})


@dataclass
class FaithfulnessCorrelation:
    """``value`` (N,): Pearson r of ``attribution_sums`` and ``drops`` (N, runs) over the subsets."""

    value: torch.Tensor
    attribution_sums: torch.Tensor
    drops: torch.Tensor
    target: torch.Tensor
    labels: list
    config: FaithfulnessCorrelationConfig


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise Pearson correlation of (N, K) tensors (NaN for a constant row, as scipy)."""
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    den = (a.pow(2).sum(1) * b.pow(2).sum(1)).sqrt()
    return torch.where(den > 0, (a * b).sum(1) / den.clamp_min(1e-300), torch.full_like(den, float("nan")))


def random_subsets(n: int, runs: int, h: int, w: int, size: int, seed: int) -> np.ndarray:
    """(runs, n, size) distinct pixel indices per (run, image): a seeded uniform sample without replacement."""
    if size > h * w:
        raise ConvlensError(f"subset_size {size} exceeds the {h * w} pixels of the image; lower it")
    g = np.random.default_rng(int(seed))
    return np.stack([g.random((n, h * w)).argpartition(size - 1, axis=1)[:, :size] for _ in range(runs)])


def drops_and_sums(model, x, t, maps: torch.Tensor, c: FaithfulnessCorrelationConfig, progress=None):
    """``drops`` (N, runs) and the map sums (M, N, runs) of M maps (``maps`` (M, N, H, W)): one pass."""
    M, N, H, W = maps.shape
    R = int(c.runs)
    idx = torch.from_numpy(random_subsets(N, R, H, W, int(c.subset_size), c.seed))          # (R, N, k)
    inside = torch.zeros(R, N, H * W, dtype=torch.bool).scatter_(2, idx, True)
    base = _baseline(x, c.baseline, c.blur_sigma, c.seed)
    scores = torch.empty(N + R * N, dtype=torch.float64)
    flat_inside = inside.view(R * N, H, W).to(x.device)

    def rows(start, stop):
        j = torch.arange(start, stop)
        return j, j % N                         # row j < N: the image itself; then (run, image) row-major

    def make(start, stop):
        j, i = rows(start, stop)
        removed = torch.zeros(len(j), H, W, dtype=torch.bool, device=x.device)
        p = j >= N
        removed[p.to(x.device)] = flat_inside[(j[p] - N).to(x.device)]
        i = i.to(x.device)
        return torch.where(removed[:, None], base[i], x[i])

    def consume(start, stop, logits):
        _, i = rows(start, stop)
        scores[start:stop] = target_scores(logits, t.cpu()[i], c.score)

    perturbed_logits(model, N + R * N, make, consume, like=x[:1], batch_size=c.batch_size, backend=c.backend,
                     progress=progress)
    drops = (scores[:N][None] - scores[N:].view(R, N)).T                                    # (N, R)
    flat = maps.reshape(M, N, H * W)
    k = idx.shape[-1]
    sums = flat.gather(2, idx.permute(1, 0, 2).reshape(1, N, R * k).expand(M, -1, -1)).view(M, N, R, k).sum(-1)
    return drops, sums


def _results(drops, sums, t, labels, c):
    return [FaithfulnessCorrelation(pearson(s, drops), s, drops, t.cpu(), labels, c) for s in sums]


def faithfulness_correlation(model, images, attribution, target=None,
                             config: FaithfulnessCorrelationConfig | None = None, *,
                             progress: ProgressFn | None = None, **overrides) -> FaithfulnessCorrelation:
    """Faithfulness correlation (Bhatt et al. 2020): Pearson r between the map's sum over random pixel subsets
    and the target's drop when they are removed (higher is better).

    Args:
        model: a ``convlens.Model``.
        images: (N, 3, H, W) in [0, 1].
        attribution: an ``Attribution`` or maps (N, H, W) / (N, C, H, W).
        target: the class tracked (default: each image's predicted class).
        config: a ``FaithfulnessCorrelationConfig`` (runs, subset_size, baseline, score, seed), or keywords.
        progress: ``progress(done, total)`` perturbed images.
    Returns:
        ``FaithfulnessCorrelation`` (``value`` (N,), ``attribution_sums`` and ``drops`` (N, runs)).
    Example:
        >>> convlens.faithfulness.faithfulness_correlation(m, cat, convlens.saliency(m, cat), runs=50).value
    """
    return one_map(FaithfulnessCorrelationConfig, _many, model, images, attribution, target, config, progress,
                   overrides)


def _many(model, x, t, maps, c, progress=None):
    drops, sums = drops_and_sums(model, x, t, maps, c, progress)
    return _results(drops, sums, t, class_labels(model, t), c)


register(Metric("faithfulness_correlation", "model", faithfulness_correlation, "higher",
                "Faithfulness correlation (Pearson r)", "Bhatt et al. 2020", FaithfulnessCorrelationConfig,
                value=lambda r: r.value, many=_many))
