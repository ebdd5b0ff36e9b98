"""Deletion and insertion curves (Petsiuk, Das & Saenko 2018, "RISE", section 4.1): is a map faithful?

Deletion removes the pixels the map ranks highest first (MoRF: most relevant first) and records the
target's probability after each step: a faithful map makes it fall fast (small area under the curve).
Insertion starts from a baseline (the paper: a blurred copy) and puts the top pixels back: a faithful
map makes the probability rise fast (large area). ``order="lerf"`` (least relevant first) gives the
mirrored curves. Step k of ``steps`` changes the first ``round(k * H * W / steps)`` pixels of the order
(every channel of a pixel); the area is the trapezoid rule over the changed fraction in [0, 1], and
``normalized_auc`` divides it by the probability of the unchanged image.

All steps of all images go through the network in batches of ``batch_size`` under ``inference_mode``;
each perturbed image is built from a rank map by one comparison, so memory is bounded by the batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from ..attribution.base import check_images, check_model, class_labels, resolve_targets
from ..errors import ConvlensError
from ..fields import resolve_config
from ..images.blur import gaussian_blur
from ..progress import ProgressFn, call
from ..render.figures import fig_to_pil, new_figure
from .maps import as_maps

BASELINES = ("blur", "zero", "grey", "mean")


@dataclass
class PerturbationCurveConfig:
    """Deletion / insertion parameters (Petsiuk et al. 2018: deletion to black, insertion from a blur)."""

    steps: int = field(default=50, metadata={"help": "perturbation steps (fractions k/steps of the pixels)",
                                             "range": (1, None)})
    baseline: Literal["blur", "zero", "grey", "mean"] | None = field(default=None, metadata={
        "help": "what a removed pixel becomes (default: the paper's, zero for deletion, blur for insertion)"})
    blur_sigma: float = field(default=5.0, metadata={"help": "sigma of the blur baseline, pixels", "range": (0, None)})
    order: Literal["morf", "lerf"] = field(default="morf", metadata={
        "help": "morf: most relevant pixels first (the paper); lerf: least relevant first"})
    score: Literal["prob", "logit"] = field(default="prob", metadata={"help": "the target's softmax probability or logit"})
    batch_size: int = field(default=32, metadata={"help": "perturbed images per forward", "range": (1, None)})


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


def _baseline(x: torch.Tensor, name: str, sigma: float) -> torch.Tensor:
    if name == "zero":
        return torch.zeros_like(x)
    if name == "grey":
        return torch.full_like(x, 0.5)
    if name == "mean":
        return x.mean((2, 3), keepdim=True).expand_as(x).contiguous()
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


def _curve(kind: str, model, images, attribution, target, config, progress, overrides) -> PerturbationCurve:
    c = resolve_config(PerturbationCurveConfig, config, overrides)
    model = check_model(model)
    x = check_images(model, images)
    t = resolve_targets(model, target, x)
    ranks = pixel_ranks(_maps(attribution, x), c.order).to(x.device)
    base = _baseline(x, c.baseline or ("zero" if kind == "deletion" else "blur"), c.blur_sigma)
    N, _, H, W = x.shape
    counts = torch.as_tensor(np.rint(np.arange(c.steps + 1) * (H * W) / c.steps).astype(np.int64), device=x.device)
    jobs = [(i, k) for i in range(N) for k in range(c.steps + 1)]
    scores = torch.empty(N, c.steps + 1, dtype=torch.float64)
    with torch.inference_mode():
        for start in range(0, len(jobs), c.batch_size):
            chunk = jobs[start:start + c.batch_size]
            ii = torch.tensor([i for i, _ in chunk], device=x.device)
            kk = torch.tensor([k for _, k in chunk], device=x.device)
            changed = (ranks[ii] < counts[kk].view(-1, 1, 1))[:, None]           # (B, 1, H, W)
            if kind == "deletion":
                batch = torch.where(changed, base[ii], x[ii])
            else:
                batch = torch.where(changed, x[ii], base[ii])
            logits = model(batch).double()
            out = logits.softmax(-1) if c.score == "prob" else logits
            scores[ii.cpu(), kk.cpu()] = out.gather(1, t[ii][:, None])[:, 0].cpu()
            call(progress, min(start + c.batch_size, len(jobs)), len(jobs))
    fractions = counts.double().cpu() / (H * W)
    auc = torch.trapezoid(scores, fractions, dim=1)
    full = scores[:, 0] if kind == "deletion" else scores[:, -1]
    return PerturbationCurve(kind, fractions, scores, auc, auc / full, t.cpu(), class_labels(model, t), c)


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
