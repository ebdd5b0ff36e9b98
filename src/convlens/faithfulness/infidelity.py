"""Infidelity (Yeh, Hsieh, Suggala, Inouye & Ravikumar 2019, "On the (in)fidelity and sensitivity of
explanations", NeurIPS): does the map predict how the score changes under a random perturbation?

    INFD(map, f, x) = E_I [ ( sum_p I_p map_p - ( f(x) - f(x - I) ) )^2 ],

with I the paper's "noisy baseline" perturbation: Gaussian noise of std ``noise`` per pixel, the same on
the three channels (a map has one value per pixel, so ``I . map`` is a sum over pixels; on a model
linear in the pixels the channel-summed gradient then has infidelity 0). ``normalize`` scales the map by
the best beta = E[I.map * df] / E[(I.map)^2] first (as Captum's ``normalize=True``). Lower is better.

The ``samples`` perturbations are seeded and shared by every map, so all methods are scored from one
pass of the perturbation driver (N + samples x N images). Quantus's ``Infidelity`` estimates something
else (square patches set to a baseline one after another); this follows the paper and equals Captum's
``captum.metrics.infidelity`` given the same perturbations.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from ..attribution.base import class_labels
from ..drivers.perturb import perturbed_logits, target_scores
from ..progress import ProgressFn
from .deletion import one_map
from .registry import Metric, register


@dataclass
class InfidelityConfig:
    """Infidelity's parameters (Yeh et al. 2019: Gaussian "noisy baseline" perturbations)."""

    samples: int = field(default=50, metadata={"help": "random perturbations per image", "range": (1, None)})
    noise: float = field(default=0.1, metadata={"help": "std of the Gaussian perturbation, pixel units",
                                                "range": (0, None)})
    score: Literal["logit", "prob"] = field(default="logit", metadata={"help": "the target's logit or probability"})
    normalize: bool = field(default=True, metadata={
        "help": "scale the map by its least-squares factor first (Yeh et al.'s code; Captum's normalize=True): maps of any scale compare"})
    seed: int = field(default=0, metadata={"help": "seed of the perturbations"})
    batch_size: int | None = field(default=None, metadata={
        "help": "perturbed images per forward (default: what the activations allow in 1.5 GB)", "range": (1, None)})
    backend: Literal["auto", "torch", "onnxruntime"] = field(default="auto", metadata={
        "help": "forward backend of the perturbation passes (docs/forward.md)"})


@dataclass
class Infidelity:
    """``value`` (N,): the mean of ``(predicted - drops)^2`` over the samples; ``predicted`` (N, samples)
    = I . map (times beta when normalized), ``drops`` (N, samples) = f(x) - f(x - I)."""

    value: torch.Tensor
    predicted: torch.Tensor
    drops: torch.Tensor
    target: torch.Tensor
    labels: list
    config: InfidelityConfig


def perturbation(shape, sample: int, noise: float, seed: int, dtype=torch.float32) -> torch.Tensor:
    """Sample ``sample``'s perturbation of every image: (N, 1, H, W) Gaussian, std ``noise``."""
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(sample))
    n, _, h, w = shape
    return (torch.randn((n, 1, h, w), generator=g, dtype=torch.float64) * noise).to(dtype)


def drops_and_products(model, x, t, maps: torch.Tensor, c: InfidelityConfig, progress=None):
    """``drops`` (N, S) and ``I . map`` (M, N, S) for M maps (``maps`` (M, N, H, W)), one driver pass."""
    M, N, H, W = maps.shape
    S = int(c.samples)
    scores = torch.empty(N + S * N, dtype=torch.float64)
    cache: dict[int, torch.Tensor] = {}

    def noise(k):
        nonlocal cache
        if k not in cache:
            cache = {k: perturbation(x.shape, k, c.noise, c.seed, x.dtype).to(x.device)}
        return cache[k]

    def make(start, stop):
        j = torch.arange(start, stop)
        out = x[j % N].clone()
        for r in (j[j >= N] - N).tolist():
            k, i = divmod(r, N)
            out[r + N - start] -= noise(k)[i]
        return out

    def consume(start, stop, logits):
        scores[start:stop] = target_scores(logits, t.cpu()[torch.arange(start, stop) % N], c.score)

    perturbed_logits(model, N + S * N, make, consume, like=x[:1], batch_size=c.batch_size, backend=c.backend,
                     progress=progress)
    drops = (scores[:N][None] - scores[N:].view(S, N)).T                             # (N, S)
    flat = maps.reshape(M, N, H * W).double().cpu()
    products = torch.stack([(flat * perturbation(x.shape, k, c.noise, c.seed, torch.float64).view(1, N, H * W)).sum(2)
                            for k in range(S)], 2)                                   # (M, N, S)
    return drops, products


def _results(drops, products, t, labels, c):
    out = []
    for a in products:
        if c.normalize:
            beta = (a * drops).mean(1, keepdim=True) / (a * a).mean(1, keepdim=True).clamp_min(1e-300)
            a = a * beta
        out.append(Infidelity(((a - drops) ** 2).mean(1), a, drops, t.cpu(), labels, c))
    return out


def infidelity(model, images, attribution, target=None, config: InfidelityConfig | None = None, *,
               progress: ProgressFn | None = None, **overrides) -> Infidelity:
    """Infidelity (Yeh et al. 2019): the mean squared error of the map's prediction ``I . map`` of the score's
    drop under random perturbations I (lower is better).

    Args:
        model: a ``convlens.Model``.
        images: (N, 3, H, W) in [0, 1].
        attribution: an ``Attribution`` or maps (N, H, W) / (N, C, H, W).
        target: the class tracked (default: each image's predicted class).
        config: an ``InfidelityConfig`` (samples, noise, score, normalize, seed), or its fields as keywords.
        progress: ``progress(done, total)`` perturbed images.
    Returns:
        ``Infidelity`` (``value`` (N,), ``predicted`` and ``drops`` (N, samples)).
    Example:
        >>> convlens.faithfulness.infidelity(m, cat, convlens.integrated_gradients(m, cat), samples=20).value
    """
    return one_map(InfidelityConfig, _many, model, images, attribution, target, config, progress, overrides)


def _many(model, x, t, maps, c, progress=None):
    drops, products = drops_and_products(model, x, t, maps, c, progress)
    return _results(drops, products, t, class_labels(model, t), c)


register(Metric("infidelity", "model", infidelity, "lower", "Infidelity", "Yeh et al. 2019", InfidelityConfig,
                value=lambda r: r.value, many=_many))
