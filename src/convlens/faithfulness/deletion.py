"""Deletion and insertion curves (Petsiuk, Das & Saenko 2018, "RISE", section 4.1): is a map faithful?

Deletion removes the pixels the map ranks highest first (MoRF: most relevant first) and records the
target's probability after each step: a faithful map makes it fall fast (small area under the curve).
Insertion starts from a baseline (the paper: a blurred copy) and puts the top pixels back: a faithful
map makes the probability rise fast (large area). ``order="lerf"`` (least relevant first) gives the
mirrored curves. Step k of ``steps`` changes the first ``round(k * H * W / steps)`` pixels of the order
(every channel of a pixel); the area is the trapezoid rule over the changed fraction in [0, 1], and
``normalized_auc`` divides it by the probability of the unchanged image.

All steps of all images (and of several maps at once: ``curve_scores``) go through the perturbation
driver (``drivers/perturb.py``: chunks sized to memory, ONNX Runtime once the pass is long enough);
each perturbed image is built from a rank map by one comparison, so memory is bounded by the chunk.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from ..attribution.base import class_labels
from ..drivers.perturb import perturbed_logits, target_scores
from ..errors import ConvlensError
from ..images.blur import gaussian_blur
from ..progress import ProgressFn
from ..render.figures import fig_to_pil, new_figure
from .imputation import noisy_linear_imputation
from .maps import as_maps
from .registry import Metric, prepare, register

BASELINES = ("blur", "zero", "grey", "mean", "uniform", "noisy_linear")


@dataclass
class PerturbationCurveConfig:
    """Deletion / insertion parameters (Petsiuk et al. 2018: deletion to black, insertion from a blur)."""

    steps: int = field(default=50, metadata={"help": "perturbation steps (fractions k/steps of the pixels)",
                                             "range": (1, None)})
    baseline: Literal["blur", "zero", "grey", "mean", "uniform", "noisy_linear"] | None = field(default=None, metadata={
        "help": "what a removed pixel becomes (default: the paper's, zero for deletion, blur for insertion; "
                "uniform: seeded noise in [0, 1]; noisy_linear: ROAD's imputation from the kept pixels)"})
    blur_sigma: float = field(default=5.0, metadata={"help": "sigma of the blur baseline, pixels", "range": (0, None)})
    noise: float = field(default=0.01, metadata={"help": "noise std added by the noisy_linear baseline",
                                                  "range": (0, None)})
    seed: int = field(default=0, metadata={"help": "seed of the uniform and noisy_linear baselines"})
    order: Literal["morf", "lerf"] = field(default="morf", metadata={
        "help": "morf: most relevant pixels first (the paper); lerf: least relevant first"})
    score: Literal["prob", "logit"] = field(default="prob", metadata={"help": "the target's softmax probability or logit"})
    batch_size: int | None = field(default=None, metadata={
        "help": "perturbed images per forward (default: what the activations allow in 1.5 GB)", "range": (1, None)})
    backend: Literal["auto", "torch", "onnxruntime"] = field(default="auto", metadata={
        "help": "forward backend of the perturbation passes (docs/forward.md)"})


@dataclass
class PerturbationCurve:
    """``scores`` (N, steps + 1): the target's score after each step; ``fractions`` (steps + 1,) of the
    pixels changed; ``auc`` (N,) by the trapezoid rule; ``normalized_auc`` = auc / score of the image."""

    kind: str
    fractions: torch.Tensor
    scores: torch.Tensor
    auc: torch.Tensor
    normalized_auc: torch.Tensor
    target: torch.Tensor
    labels: list
    config: PerturbationCurveConfig

    def plot(self, others: list["PerturbationCurve"] = (), names: list[str] = (), index: int = 0,
             width: float = 5.0, height: float = 3.4):
        """The curve of image ``index`` (and of other maps' curves on the same axes), as a PIL image."""
        fig, ax = new_figure(width, height)
        curves = [self, *others]
        names = list(names) or [f"map {i + 1}" for i in range(len(curves))]
        for c, name in zip(curves, names):
            ax.plot(c.fractions.numpy(), c.scores[index].numpy(), label=f"{name} (AUC {float(c.auc[index]):.3f})")
        ax.set_xlabel(f"fraction of pixels {'removed' if self.kind == 'deletion' else 'inserted'} "
                      f"({self.config.order.upper()})")
        ax.set_ylabel(self.config.score)
        ax.set_title(f"{self.kind}: {self.labels[index]}", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        return fig_to_pil(fig)


def _maps(attribution, x: torch.Tensor) -> torch.Tensor:
    """(N, H, W) at the images' resolution (``maps.as_maps``, then bilinear to the images' size)."""
    m = as_maps(attribution)
    if m.shape[-2:] != x.shape[-2:]:
        m = torch.nn.functional.interpolate(m[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    if m.shape[0] != x.shape[0]:
        raise ConvlensError(f"{m.shape[0]} maps for {x.shape[0]} images; pass one map per image "
                            "(an Attribution of these images)")
    return m


def _baseline(x: torch.Tensor, name: str, sigma: float, seed: int = 0) -> torch.Tensor:
    if name == "zero":
        return torch.zeros_like(x)
    if name == "grey":
        return torch.full_like(x, 0.5)
    if name == "mean":
        return x.mean((2, 3), keepdim=True).expand_as(x).contiguous()
    if name == "uniform":
        return torch.rand(x.shape, generator=torch.Generator().manual_seed(int(seed)), dtype=x.dtype).to(x.device)
    return gaussian_blur(x, sigma) if sigma > 0 else x.clone()


def pixel_ranks(maps: torch.Tensor, order: str = "morf") -> torch.Tensor:
    """(N, H, W) long: each pixel's position in the perturbation order (0 = changed first); ties keep
    row-major order (a stable sort), so a constant map changes pixels left to right, top to bottom."""
    N, H, W = maps.shape
    flat = maps.reshape(N, -1)
    idx = torch.argsort(-flat if order == "morf" else flat, dim=1, stable=True)
    ranks = torch.empty_like(idx)
    ranks.scatter_(1, idx, torch.arange(H * W).expand(N, -1).contiguous())
    return ranks.view(N, H, W)


def curve_scores(kind: str, model, x: torch.Tensor, t: torch.Tensor, maps: torch.Tensor,
                 c: PerturbationCurveConfig, progress: ProgressFn | None = None, *, ranks: torch.Tensor | None = None,
                 counts=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores (M, N, steps + 1) of M maps per image at once (``maps`` (M, N, H, W)): one pass of the
    perturbation driver over every (map, image, step), so several methods share the batches.
    Returns ``(fractions, scores)``. Pixel flipping and region perturbation pass their own ``ranks``
    (M * N, H, W) (a pixel changes at step k when its rank < ``counts[k]``) and ``counts``."""
    M, N = maps.shape[:2]
    H, W = x.shape[-2:]
    ranks = (pixel_ranks(maps.reshape(M * N, H, W), c.order) if ranks is None else ranks).to(x.device)
    name = c.baseline or ("zero" if kind == "deletion" else "blur")   # c may be another metric's config
    base = None if name == "noisy_linear" else _baseline(x, name, c.blur_sigma, c.seed)
    if counts is None:
        counts = np.rint(np.arange(c.steps + 1) * (H * W) / c.steps)
    counts = torch.as_tensor(np.asarray(counts, dtype=np.int64), device=x.device)
    S = counts.numel()
    scores = torch.empty(M * N * S, dtype=torch.float64)
    first, then = (x, base) if kind == "deletion" else (base, x)    # deletion: x -> base; insertion: base -> x

    def job(start: int, stop: int):
        j = torch.arange(start, stop, device=x.device)
        mi, k = j // S, j % S                                         # (map, image) row, step
        i = mi % N
        return j, i, (ranks[mi] < counts[k].view(-1, 1, 1))[:, None]  # (B, 1, H, W): changed pixels

    def make(start, stop):
        j, i, changed = job(start, stop)
        if base is None:                        # ROAD's imputation of the removed (deletion: changed) pixels
            removed = changed[:, 0] if kind == "deletion" else ~changed[:, 0]
            seeds = [(c.seed, int(a), int(b)) for a, b in zip(i, j % S)]   # per (image, step): maps share noise
            return noisy_linear_imputation(x[i], removed, c.noise, seeds)
        return torch.where(changed, then[i], first[i])

    def consume(start, stop, logits):
        _, i, _ = job(start, stop)
        if c.score == "accuracy":                                     # ROAD: is the target still the top class?
            scores[start:stop] = (logits.argmax(1) == t[i].cpu()).double()
        else:
            scores[start:stop] = target_scores(logits, t[i].cpu(), c.score)

    perturbed_logits(model, M * N * S, make, consume, like=x[:1], batch_size=c.batch_size, backend=c.backend,
                     progress=progress)
    return counts.double().cpu() / (H * W), scores.view(M, N, S)


def one_map(config_cls, many, model, images, attribution, target, config, progress, overrides):
    """The public call of a perturbation metric on one map per image: check the inputs, resolve the config
    and the targets, and run the metric's all-maps function (``many``, the report card's) on this one map."""
    c, model, x, t = prepare(config_cls, config, overrides, model, images, target)
    return many(model, x, t, _maps(attribution, x)[None], c, progress)[0]


def _curve(kind: str, model, images, attribution, target, config, progress, overrides) -> PerturbationCurve:
    return one_map(PerturbationCurveConfig, _many(kind), model, images, attribution, target, config, progress, overrides)


def make_curve(kind, fractions, scores, t, labels, c) -> PerturbationCurve:
    """The result object of one map's scores (N, steps + 1): the AUC and its normalization."""
    auc = torch.trapezoid(scores, fractions, dim=1)
    full = scores[:, 0] if kind == "deletion" else scores[:, -1]
    return PerturbationCurve(kind, fractions, scores, auc, auc / full, t.cpu(), labels, resolved(c, kind))


def resolved(c: PerturbationCurveConfig, kind: str) -> PerturbationCurveConfig:
    """The config with the paper's baseline filled in (zero for deletion, blur for insertion)."""
    return dataclasses.replace(c, baseline=c.baseline or ("zero" if kind == "deletion" else "blur"))


def deletion(model, images, attribution, target=None, config: PerturbationCurveConfig | None = None, *,
             progress: ProgressFn | None = None, **overrides) -> PerturbationCurve:
    """The deletion curve of ``attribution`` (Petsiuk et al. 2018): lower AUC = more faithful.

    Args:
        model: a ``convlens.Model``.
        images: (N, 3, H, W) in [0, 1].
        attribution: an ``Attribution`` (upsampled to the images) or maps (N, H, W) / (N, C, H, W).
        target: the class whose score is tracked (default: each image's predicted class).
        config: a ``PerturbationCurveConfig``, or its fields as keywords.
        progress: ``progress(done, total)`` perturbed images.
    Returns:
        ``PerturbationCurve`` (``scores``, ``auc``, ``normalized_auc``, ``plot()``).
    Example:
        >>> convlens.faithfulness.deletion(m, cat, convlens.saliency(m, cat), steps=20).auc
    """
    return _curve("deletion", model, images, attribution, target, config, progress, overrides)


def insertion(model, images, attribution, target=None, config: PerturbationCurveConfig | None = None, *,
              progress: ProgressFn | None = None, **overrides) -> PerturbationCurve:
    """The insertion curve of ``attribution`` (Petsiuk et al. 2018): higher AUC = more faithful. The
    arguments and the result are those of ``deletion``; the baseline defaults to the paper's blur.

    Example:
        >>> convlens.faithfulness.insertion(m, cat, convlens.grad_cam(m, cat), steps=20).normalized_auc
    """
    return _curve("insertion", model, images, attribution, target, config, progress, overrides)


def _many(kind):
    def run(model, x, t, maps, c, progress=None):
        fractions, scores = curve_scores(kind, model, x, t, maps, c, progress)
        labels = class_labels(model, t)
        return [make_curve(kind, fractions, s, t, labels, c) for s in scores]
    return run


for _kind, _fn, _better in (("deletion", deletion, "lower"), ("insertion", insertion, "higher")):
    register(Metric(_kind, "model", _fn, _better, f"{_kind.capitalize()} AUC / p(image)", "Petsiuk et al. 2018",
                    PerturbationCurveConfig, value=lambda r: r.normalized_auc, many=_many(_kind),
                    curve=lambda r: (r.fractions, r.scores, f"fraction of pixels {'removed' if r.kind == 'deletion' else 'inserted'}")))
