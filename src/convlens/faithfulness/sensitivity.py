"""Max- and average-sensitivity (Yeh, Hsieh, Suggala, Inouye & Ravikumar 2019, "On the (in)fidelity and
sensitivity of explanations", NeurIPS): does the map change when the image barely does?

The method is re-run on ``samples`` copies of each image, each with uniform noise in [-radius, radius]
added to every pixel and channel (the L-infinity ball of the paper, as Captum's ``sensitivity_max`` and
Quantus draw it), for the same target; for each copy ``||map(x + u) - map(x)||_F``, divided by
``||map(x)||_F`` when ``normalize`` (Captum and Quantus do; the paper's definition does not; a zero map
divides by 1, as Captum). Max-sensitivity is the largest over the copies, average-sensitivity the mean:
lower is better.

The noisy copies are explained ``batch_size`` at a time (several samples of several images per call of
the method), with seeded noise: sample s of every image is drawn from its own generator, so the values
do not depend on the batching.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..attribution.base import class_labels
from ..progress import ProgressFn, call
from .evaluate import explainer
from .registry import Metric, prepare, register


@dataclass
class SensitivityConfig:
    """Sensitivity's parameters (Captum's defaults: 10 samples in the radius-0.02 L-infinity ball)."""

    samples: int = field(default=10, metadata={"help": "noisy copies of each image", "range": (1, None)})
    radius: float = field(default=0.02, metadata={"help": "noise bound, pixel units in [0, 1]", "range": (0, 0.5)})
    normalize: bool = field(default=True, metadata={"help": "divide by the map's own norm (Captum, Quantus)"})
    seed: int = field(default=0, metadata={"help": "seed of the noise"})
    batch_size: int | None = field(default=None, metadata={
        "help": "noisy images per call of the method (default: the number of images)", "range": (1, None)})


@dataclass
class Sensitivity:
    """``value`` (N,): max (or mean) of ``distances`` (N, samples), each ||map(x + u) - map(x)|| (/ ||map(x)||)."""

    kind: str
    value: torch.Tensor
    distances: torch.Tensor
    target: torch.Tensor
    labels: list
    config: SensitivityConfig


def sample_noise(shape, sample: int, radius: float, seed: int, dtype=torch.float32) -> torch.Tensor:
    """The noise of sample ``sample`` for every image, (N, C, H, W) uniform in [-radius, radius]."""
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(sample))
    return (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1).mul_(radius).to(dtype)


def distances(model, x, t, explain, c: SensitivityConfig, progress=None) -> torch.Tensor:
    """(N, samples) distances of the noisy copies' maps from the image's map."""
    N = x.shape[0]
    S = int(c.samples)
    base = explain(model, x, t).double().cpu()                          # (N, H, W)
    norm = base.flatten(1).norm(dim=1)
    norm = torch.where(norm == 0, torch.ones_like(norm), norm) if c.normalize else torch.ones_like(norm)
    out = torch.empty(S * N, dtype=torch.float64)
    bs = int(c.batch_size or N)
    cache: dict[int, torch.Tensor] = {}
    for start in range(0, S * N, bs):
        rows = torch.arange(start, min(S * N, start + bs))
        s, i = rows // N, rows % N                                       # sample-major rows
        parts = []
        for k in s.unique().tolist():
            if k not in cache:                                           # one sample's noise kept at a time
                cache = {k: sample_noise(x.shape, k, c.radius, c.seed, x.dtype).to(x.device)}
            sel = i[s == k].to(x.device)
            parts.append(x[sel] + cache[k][sel])
        maps = explain(model, torch.cat(parts), t[i.to(t.device)]).double().cpu()
        out[rows] = (maps - base[i]).flatten(1).norm(dim=1) / norm[i]
        call(progress, int(rows[-1]) + 1, S * N)
    return out.view(S, N).T


def _sensitivity(kind, model, images, method, target, config, progress, overrides) -> Sensitivity:
    c, model, x, t = prepare(SensitivityConfig, config, overrides, model, images, target)
    d = distances(model, x, t, explainer(method)[1], c, progress)
    value = d.max(1).values if kind == "max_sensitivity" else d.mean(1)
    return Sensitivity(kind, value, d, t.cpu(), class_labels(model, t), c)


def max_sensitivity(model, images, method, target=None, config: SensitivityConfig | None = None, *,
                    progress: ProgressFn | None = None, **overrides) -> Sensitivity:
    """Max-sensitivity (Yeh et al. 2019): the largest change of the map over noisy copies of the image
    (lower is better).

    Args:
        model: a ``convlens.Model``.
        images: (N, 3, H, W) in [0, 1].
        method: an attribution method name ("saliency", "grad_cam", "ig"...) or a callable
            ``f(model, images, target) -> Attribution | maps``.
        target: the class explained (default: each image's predicted class).
        config: a ``SensitivityConfig`` (samples, radius, normalize, seed, batch_size), or keywords.
        progress: ``progress(done, total)`` noisy copies explained.
    Returns:
        ``Sensitivity`` (``value`` (N,), ``distances`` (N, samples)).
    Example:
        >>> convlens.faithfulness.max_sensitivity(m, cat, "saliency", samples=5).value
    """
    return _sensitivity("max_sensitivity", model, images, method, target, config, progress, overrides)


def avg_sensitivity(model, images, method, target=None, config: SensitivityConfig | None = None, *,
                    progress: ProgressFn | None = None, **overrides) -> Sensitivity:
    """Average-sensitivity (Yeh et al. 2019): the mean change of the map over noisy copies (lower is better).
    The arguments and the result are those of ``max_sensitivity``.

    Example:
        >>> convlens.faithfulness.avg_sensitivity(m, cat, "grad_cam", samples=5).value
    """
    return _sensitivity("avg_sensitivity", model, images, method, target, config, progress, overrides)


register(Metric("max_sensitivity", "explainer", max_sensitivity, "lower", "Max-sensitivity", "Yeh et al. 2019",
                SensitivityConfig, value=lambda r: r.value))
register(Metric("avg_sensitivity", "explainer", avg_sensitivity, "lower", "Average sensitivity", "Yeh et al. 2019",
                SensitivityConfig, value=lambda r: r.value))
