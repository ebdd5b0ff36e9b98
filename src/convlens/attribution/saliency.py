"""Saliency maps (Simonyan, Vedaldi & Zisserman 2014) and SmoothGrad (Smilkov et al. 2017)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..fields import resolve_config
from ..progress import ProgressFn, call
from .base import Attribution, check_images, check_model, chunks, class_labels, resolve_targets
from .gradients import class_gradient, gradient_attribution


def saliency(model, images, target=None, *, layer: str | None = None, channel: int | None = None,
             unit=None) -> Attribution:
    """Image-specific class saliency: ``M_ij = max_c |dS_target / dI_cij|`` (Simonyan et al. 2014).

    S is the unnormalized class score (the logit, before softmax); the gradient is w.r.t. the
    [0, 1] pixels (normalization lives inside the model). One forward and one backward for the
    whole batch.

    Args:
        model: a ``convlens.Model``.
        images: (N, 3, H, W) in [0, 1].
        target: None (each image's predicted class), an index, a class name ("Egyptian cat"), or
            one per image.
        layer: instead of a class, the gradient of an inner neuron / channel of this layer (see
            ``guided_backprop``), with
        channel: its channel and
        unit: its position (as in ``guided_backprop``).
    Returns:
        ``Attribution`` with ``map`` (N, H, W) = max_c |grad| and ``attributions`` = the signed
        gradient (N, 3, H, W). Matches Captum's ``Saliency(abs=True)`` followed by a max over channels.
    Example:
        >>> m = convlens.load_model(); cat = convlens.sample_image("chelsea", 224)
        >>> s = convlens.saliency(m, cat); s.labels
        ['Egyptian cat (285)']
    """
    model = check_model(model)
    x = check_images(model, images)
    g, t, labels, info = gradient_attribution(model, x, target, None, layer, channel, unit)
    return Attribution("saliency", g.abs().amax(1), g, t, labels, x, info, default_mode="abs")


@dataclass
class SmoothGradConfig:
    """SmoothGrad's parameters (Smilkov et al. 2017: 10-20 % noise, 50 samples; 25 here, as fast and as smooth
    on 224 px images)."""

    noise: float = field(default=0.15, metadata={"help": "noise sigma as a fraction of the value range",
                                                  "range": (0, None)})
    samples: int = field(default=25, metadata={"help": "noisy copies averaged", "range": (1, None)})
    seed: int = field(default=0, metadata={"help": "noise seed"})


def smoothgrad(model, images, target=None, config: SmoothGradConfig | None = None, *, batch_size: int | None = None,
               progress: ProgressFn | None = None, **overrides) -> Attribution:
    """SmoothGrad: the saliency map averaged over noisy copies of the image (Smilkov et al. 2017).

    ``M(x) = 1/n sum_k max_c |dS/dx (x + e_k)|``, ``e_k ~ N(0, sigma^2)``,
    ``sigma = noise * (max(x) - min(x))`` (the paper finds 10-20 % best). ``attributions`` holds
    the averaged signed gradient (N, 3, H, W).

    Args:
        config: a ``SmoothGradConfig`` (default: its defaults); its fields can be given as keywords instead.
        batch_size: noisy images per forward/backward (default: all samples of one image, max 32).
    Keyword Args:
        noise: noise level as a fraction of the image's value range (default 0.15).
        samples: n, noisy copies per image (default 25; the paper uses 50).
        seed: the noise is drawn from ``torch.Generator().manual_seed(seed)``.
    Example:
        >>> convlens.smoothgrad(m, cat, samples=8).map.shape
        torch.Size([1, 224, 224])
    """
    c = resolve_config(SmoothGradConfig, config, overrides)
    noise, samples, seed = c.noise, c.samples, c.seed
    model = check_model(model)
    x = check_images(model, images)
    t = resolve_targets(model, target, x)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    N = x.shape[0]
    sigma = noise * (x.flatten(1).amax(1) - x.flatten(1).amin(1))
    eps = torch.randn((samples, *x.shape), generator=gen, dtype=x.dtype).to(x.device)
    noisy = (x[None] + eps * sigma.view(1, N, 1, 1, 1)).reshape(samples * N, *x.shape[1:])
    tt = t.repeat(samples)
    bs = batch_size or min(32, samples * N)
    grads = torch.empty_like(noisy)
    for k, sl in enumerate(chunks(noisy.shape[0], bs)):
        grads[sl] = class_gradient(model, noisy[sl], tt[sl])[0]
        call(progress, sl.stop, noisy.shape[0])
    grads = grads.view(samples, *x.shape)
    return Attribution("smoothgrad", grads.abs().amax(2).mean(0), grads.mean(0), t, class_labels(model, t), x,
                       {"noise": noise, "samples": samples, "seed": seed}, default_mode="abs")
