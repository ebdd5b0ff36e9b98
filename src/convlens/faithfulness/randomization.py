"""Randomization metrics: does the map depend on the model's weights and on the class asked for?

- ``mprt``: the model-parameter randomization test of Adebayo et al. 2018 ("Sanity checks for saliency
  maps") as a number. The weights are re-initialized from the logits down in ``groups`` cascading steps
  (``attribution.sanity.randomized_models``: the same randomization as ``convlens.sanity_check``), the
  method re-run on each randomized copy, and each new map compared with the original by ``similarity``:
  Spearman rank correlation, SSIM (``skimage.metrics.structural_similarity`` on the 2-D maps, data range
  of the pair) or the Pearson correlation of their HOG features (``skimage.feature.hog``), the paper's
  three. ``value`` is the mean over the steps: lower is better (a map that survives the destruction of
  the weights explains the image, not the model, as an edge detector does).
- ``random_logit``: Sixt, Granz & Landgraf 2020 ("When explanations lie"): the map for the target
  against the map for a random other class, drawn as Quantus draws it (``RandomState(seed)``, an index
  into the classes without the target); SSIM by default, lower is better.

Both re-run the method (kind ``"explainer"``), batched over the images at each step.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from ..attribution.base import class_labels
from ..attribution.sanity import randomized_models, spearman
from ..progress import ProgressFn, call
from .evaluate import explainer
from .registry import Metric, prepare, register

Similarity = Literal["spearman", "ssim", "hog"]


def ssim(a, b) -> float:
    """SSIM of two 2-D maps, data range max - min over both (as Quantus's ``ssim``, but in 2-D)."""
    from skimage.metrics import structural_similarity
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
    if hi == lo:
        return 1.0
    win = min(7, *a.shape)
    win -= 1 - win % 2                                    # odd, at most the map's side
    return float(structural_similarity(a, b, data_range=float(hi - lo), win_size=win))


def hog_features(a) -> np.ndarray:
    """HOG of a map scaled to [0, 1]: 9 orientations, cells of max(2, side // 14) pixels, 2x2 blocks."""
    from skimage.feature import hog
    a = np.asarray(a, np.float64)
    lo, hi = a.min(), a.max()
    a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    cell = max(2, min(a.shape) // 14)
    return hog(a, orientations=9, pixels_per_cell=(cell, cell), cells_per_block=(2, 2), feature_vector=True)


def hog_similarity(a, b) -> float:
    """Pearson correlation of the two maps' HOG features (Adebayo et al. 2018's third similarity)."""
    fa, fb = hog_features(a), hog_features(b)
    fa, fb = fa - fa.mean(), fb - fb.mean()
    den = np.sqrt((fa ** 2).sum() * (fb ** 2).sum())
    return float((fa * fb).sum() / den) if den > 0 else 0.0


SIMILARITIES = {"spearman": spearman, "ssim": ssim, "hog": hog_similarity}


def similarities(a: torch.Tensor, b: torch.Tensor, kind: str, absolute: bool) -> torch.Tensor:
    """(N,) similarity of each pair of maps (N, H, W)."""
    fn = SIMILARITIES[kind]
    a, b = (a.abs(), b.abs()) if absolute else (a, b)
    return torch.tensor([fn(x.numpy(), y.numpy()) for x, y in zip(a.double().cpu(), b.double().cpu())],
                        dtype=torch.float64)


@dataclass
class MPRTConfig:
    """The MPRT's parameters (Adebayo et al. 2018: cascading from the logits, Spearman of |map|)."""

    groups: int = field(default=6, metadata={"help": "randomization steps (groups of layers)", "range": (1, None)})
    similarity: Similarity = field(default="spearman", metadata={"help": "spearman, ssim or hog (Adebayo et al.'s three)"})
    absolute: bool = field(default=True, metadata={"help": "compare |map| (the paper's main figures)"})
    independent: bool = field(default=False, metadata={"help": "randomize one group at a time, not cascading"})
    seed: int = field(default=0, metadata={"help": "seed of the re-initialized weights"})


@dataclass
class MPRT:
    """``steps`` (N, S): similarity of the original map with the map after each randomization step
    (``layers``: the last layer randomized); ``value`` (N,): their mean (lower is better)."""

    value: torch.Tensor
    steps: torch.Tensor
    layers: list
    maps: list
    target: torch.Tensor
    labels: list
    config: MPRTConfig


def mprt(model, images, method, target=None, config: MPRTConfig | None = None, *,
         progress: ProgressFn | None = None, **overrides) -> MPRT:
    """Model-parameter randomization test (Adebayo et al. 2018) as a metric: the similarity of the map with
    the maps of the model randomized from the logits down (lower is better).

    Args:
        model: a ``convlens.Model`` (never changed: the steps randomize deep copies).
        images: (N, 3, H, W) in [0, 1].
        method: an attribution method name or a callable ``f(model, images, target) -> Attribution | maps``.
        target: the class explained (default: each image's predicted class on the original model).
        config: an ``MPRTConfig`` (groups, similarity, absolute, independent, seed), or keywords.
        progress: ``progress(done, total)`` randomization steps.
    Returns:
        ``MPRT`` (``value`` (N,), ``steps`` (N, S), ``layers``, ``maps``: the original then each step's).
    Example:
        >>> convlens.faithfulness.mprt(m, cat, "saliency", similarity="ssim").steps
    """
    c, model, x, t = prepare(MPRTConfig, config, overrides, model, images, target)
    explain = explainer(method)[1]
    base = explain(model, x, t)
    layers, cols, maps = [], [], [base]
    for k, (label, rand) in enumerate(randomized_models(model, c.groups, not c.independent, c.seed)):
        r = explain(rand, x, t)              # now: the cascade's next step changes this same copy
        layers.append(label)
        maps.append(r)
        cols.append(similarities(base, r, c.similarity, c.absolute))
        call(progress, k + 1, None)
    s = torch.stack(cols, 1)
    return MPRT(s.mean(1), s, layers, maps, t.cpu(), class_labels(model, t), c)


@dataclass
class RandomLogitConfig:
    """Random logit's parameters (Sixt et al. 2020; Quantus: SSIM, seed 42)."""

    similarity: Similarity = field(default="ssim", metadata={"help": "ssim, spearman or hog"})
    absolute: bool = field(default=False, metadata={"help": "compare |map| instead of the signed maps"})
    seed: int = field(default=42, metadata={"help": "seed of the other classes (numpy RandomState, as Quantus)"})


@dataclass
class RandomLogit:
    """``value`` (N,): similarity of the target's map with ``other``'s (a random other class) map."""

    value: torch.Tensor
    other: torch.Tensor
    target: torch.Tensor
    labels: list
    config: RandomLogitConfig


def other_classes(targets: torch.Tensor, classes: int, seed: int) -> torch.Tensor:
    """A random class other than each target, drawn as Quantus's RandomLogit draws it."""
    idx = np.random.RandomState(int(seed)).randint(0, classes - 1, len(targets))
    t = targets.cpu().numpy()
    return torch.as_tensor(idx + (idx >= t), dtype=torch.long)


def random_logit(model, images, method, target=None, config: RandomLogitConfig | None = None, *,
                 progress: ProgressFn | None = None, **overrides) -> RandomLogit:
    """Random logit (Sixt et al. 2020): how similar the map for the target is to the map for a random other
    class (lower is better: a map that does not change with the class explains the image).

    Args:
        model: a ``convlens.Model``.
        images: (N, 3, H, W) in [0, 1].
        method: an attribution method name or a callable ``f(model, images, target) -> Attribution | maps``.
        target: the class explained (default: each image's predicted class).
        config: a ``RandomLogitConfig`` (similarity, absolute, seed), or keywords.
        progress: ``progress(done, total)`` maps computed (2).
    Returns:
        ``RandomLogit`` (``value`` (N,), ``other``: the classes drawn).
    Example:
        >>> convlens.faithfulness.random_logit(m, cat, "grad_cam").value
    """
    c, model, x, t = prepare(RandomLogitConfig, config, overrides, model, images, target)
    explain = explainer(method)[1]
    a = explain(model, x, t)
    call(progress, 1, 2)
    with torch.inference_mode():
        classes = int(model(x[:1]).shape[1])
    other = other_classes(t, classes, c.seed)
    b = explain(model, x, other.to(t.device))
    call(progress, 2, 2)
    return RandomLogit(similarities(a, b, c.similarity, c.absolute), other, t.cpu(), class_labels(model, t), c)


register(Metric("mprt", "explainer", mprt, "lower", "MPRT similarity (mean over the cascade)", "Adebayo et al. 2018",
                MPRTConfig, value=lambda r: r.value))
register(Metric("random_logit", "explainer", random_logit, "lower", "Random logit similarity", "Sixt et al. 2020",
                RandomLogitConfig, value=lambda r: r.value))
