"""ROAD: RemOve And Debias (Rong, Leemann, Borisov, Kasneci & Kasneci 2022, ICML).

Removing pixels by setting them to black or blur leaks the removed shape to the network (the mask
itself is information), so deletion curves partly measure the mask. ROAD replaces the removed pixels
by their *noisy linear imputation* (``imputation.py``: each removed pixel the weighted mean of its 8
neighbours, 1/6 direct and 1/12 diagonal, one sparse system per image, plus N(0, 0.01²) noise), then
records whether the network still predicts the target (accuracy) at each removal percentage: MoRF (most
relevant first; a faithful map makes the accuracy fall fast, lower is better) or LeRF (least relevant
first; it should stay high). ``value`` is the mean over the percentages (the area under the curve).

Percentage p removes the first ``int(H * W * p / 100)`` pixels of the order (every channel of a pixel),
as the reference code and Quantus count. Every (map, image, percentage) goes through the perturbation
driver (deletion's ``curve_scores`` with the ``noisy_linear`` baseline): the imputations are built a
chunk at a time, so memory is bounded by the chunk.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from ..attribution.base import class_labels
from ..errors import ConvlensError
from ..progress import ProgressFn
from .deletion import curve_scores, one_map
from .registry import Metric, register


@dataclass
class ROADConfig:
    """ROAD's parameters (Rong et al. 2022: noisy linear imputation, noise 0.01, 10 % .. 90 % removed)."""

    percentages: tuple[float, ...] = field(default=(10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0), metadata={
        "help": "removal percentages of the pixels, each in [0, 100] (comma-separated)"})
    order: Literal["morf", "lerf"] = field(default="morf", metadata={
        "help": "morf: most relevant pixels removed first; lerf: least relevant first"})
    noise: float = field(default=0.01, metadata={"help": "std of the noise added to the imputed pixels",
                                                 "range": (0, None)})
    score: Literal["accuracy", "prob", "logit"] = field(default="accuracy", metadata={
        "help": "accuracy (the paper: is the target still the top class?), its probability or its logit"})
    seed: int = field(default=0, metadata={"help": "seed of the imputation noise"})
    batch_size: int | None = field(default=None, metadata={
        "help": "perturbed images per forward (default: what the activations allow in 1.5 GB)", "range": (1, None)})
    backend: Literal["auto", "torch", "onnxruntime"] = field(default="auto", metadata={
        "help": "forward backend of the perturbation passes (docs/forward.md)"})

    baseline = "noisy_linear"          # what curve_scores reads (not parameters)
    blur_sigma = 0.0

    def __post_init__(self):
        self.percentages = tuple(float(p) for p in self.percentages)
        if not self.percentages or any(not 0 <= p <= 100 for p in self.percentages):
            raise ConvlensError("percentages must be between 0 and 100, e.g. 10,20,30")


@dataclass
class ROADCurve:
    """``scores`` (N, P): accuracy (or probability / logit) of the target after removing each
    ``percentages`` (P,) of the pixels; ``value`` (N,): their mean (MoRF: lower is better)."""

    percentages: torch.Tensor
    scores: torch.Tensor
    target: torch.Tensor
    labels: list
    config: ROADConfig

    @property
    def value(self) -> torch.Tensor:
        return self.scores.mean(1)

    @property
    def accuracy(self) -> torch.Tensor:
        """(P,) the mean over the images at each percentage (the paper's curve; Quantus's output)."""
        return self.scores.mean(0)


def road_scores(model, x, t, maps: torch.Tensor, c: ROADConfig, progress=None) -> torch.Tensor:
    """(M, N, P) scores of M maps per image (``maps`` (M, N, H, W)) in one pass of the driver."""
    H, W = x.shape[-2:]
    counts = [int(H * W * p / 100) for p in c.percentages]
    return curve_scores("deletion", model, x, t, maps, c, progress, counts=counts)[1]


def road(model, images, attribution, target=None, config: ROADConfig | None = None, *,
         progress: ProgressFn | None = None, **overrides) -> ROADCurve:
    """ROAD (Rong et al. 2022): the target's accuracy as the map's top pixels are imputed away.

    Args:
        model: a ``convlens.Model``.
        images: (N, 3, H, W) in [0, 1].
        attribution: an ``Attribution`` or maps (N, H, W) / (N, C, H, W).
        target: the class tracked (default: each image's predicted class).
        config: a ``ROADConfig`` (percentages, order, noise, score, seed), or its fields as keywords.
        progress: ``progress(done, total)`` perturbed images.
    Returns:
        ``ROADCurve`` (``scores`` (N, P), ``value`` (N,), ``accuracy`` (P,)).
    Example:
        >>> convlens.faithfulness.road(m, cat, convlens.grad_cam(m, cat), percentages=(20, 50, 80)).scores
    """
    return one_map(ROADConfig, _many, model, images, attribution, target, config, progress, overrides)


def _many(model, x, t, maps, c, progress=None):
    scores = road_scores(model, x, t, maps, c, progress)
    labels = class_labels(model, t)
    p = torch.tensor(c.percentages, dtype=torch.float64)
    return [ROADCurve(p, s, t.cpu(), labels, c) for s in scores]


register(Metric("road", "model", road, "lower", "ROAD accuracy (mean over removal %)", "Rong et al. 2022",
                ROADConfig, value=lambda r: r.value, many=_many,
                curve=lambda r: (r.percentages, r.scores, f"% of pixels imputed ({r.config.order.upper()})")))
