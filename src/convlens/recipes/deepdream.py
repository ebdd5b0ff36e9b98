"""DeepDream (Mordvintsev, Olah & Tyka 2015) on the shared loop.

Maximize ``1/2 sum_i A_l(I)_i^2`` (so the gradient at the layer equals its activation), with:
octaves (start at ``size / octave_scale**(octaves-1)``, dream, upsample, continue), jitter by a random
circular roll, a normalized step (``g / mean|g|`` times ``lr``, in pixel units), clipping to [0, 1].
``guide=`` dreams toward another image's features instead (each position's features are pulled toward
the guide's most similar feature).

Memory: backprop through the truncated network keeps the activations of every layer up to ``layer``
for the whole image; large images are processed in tiles of ``tile`` pixels (default 512), so peak
memory is that of one ``tile x tile`` forward+backward regardless of the image size (see
docs/synthesis.md for measured figures).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from ..errors import ConvlensError
from ..models.model import Model
from ..optim import objectives as O
from ..optim import transforms as T
from ..optim.loop import octave_sizes, optimize
from ..optim.params import PixelParam
from ..probe.probe import activations


@dataclass
class DreamConfig:
    """DeepDream parameters (defaults after Google's deepdream notebook, in [0, 1] pixel units)."""

    octaves: int = field(default=4, metadata={"help": "number of octaves"})
    octave_scale: float = field(default=1.4, metadata={"help": "size ratio between octaves"})
    steps: int = field(default=10, metadata={"help": "steps per octave"})
    lr: float = field(default=0.006, metadata={"help": "step size in pixel units of the normalized gradient (1.5/255)"})
    jitter: int = field(default=32, metadata={"help": "random roll of up to this many pixels per step"})
    tile: int = field(default=512, metadata={"help": "evaluate the network on tiles of at most this many pixels"})
    max_size: int | None = field(default=None, metadata={"help": "shrink the image so its longer side is at most this"})
    seed: int = field(default=0, metadata={"help": "random seed"})


@dataclass
class Dream:
    """Result: ``image`` (1, 3, H, W) in [0, 1]; ``octave_norms`` [(before, after)] of ``sum A^2`` per
    octave, measured without jitter; ``sizes`` of the octaves."""

    image: torch.Tensor
    octave_norms: list[tuple[float, float]]
    sizes: list[tuple[int, int]]
    stopped: str


def _sq_norm(model, img, layer) -> float:
    return float(activations(model, img, layer).pow(2).sum())


def deepdream(model: Model, image: torch.Tensor, layer: str, config: DreamConfig | None = None, *,
              guide: torch.Tensor | None = None, progress=None, callback=None, **overrides) -> Dream:
    """Dream ``image`` at ``layer``: amplify whatever the layer already sees.

    Args:
        model: a ``convlens.Model``; image: (1, 3, H, W) in [0, 1] (any size); layer: dotted name.
        config: ``DreamConfig`` (or keyword overrides: ``octaves=4, steps=10, lr=0.006, jitter=32``).
        guide: (1, 3, h, w) image whose features the dream moves toward (guided DeepDream).
        progress: as in ``optimize``.
        callback: as in ``optimize``.
    Returns:
        ``Dream`` with the image and each octave's (before, after) squared norm of the layer.
    Example:
        >>> d = convlens.deepdream(model, convlens.sample_image("chelsea"), "features.10", octaves=3)
    """
    cfg = replace(config or DreamConfig(), **overrides)
    if image.ndim != 4 or image.shape[0] != 1:
        raise ConvlensError(f"deepdream takes one image (1, 3, H, W), got {tuple(image.shape)}")
    model.module(layer)
    img = image.detach().float().clamp(0, 1).to(model.device)
    if cfg.max_size and max(img.shape[-2:]) > cfg.max_size:
        s = cfg.max_size / max(img.shape[-2:])
        img = torch.nn.functional.interpolate(img, scale_factor=s, mode="bilinear", antialias=True,
                                              align_corners=False).clamp(0, 1)
    if guide is not None:
        g = guide.detach().float().to(model.device)
        if max(g.shape[-2:]) > 512:
            g = torch.nn.functional.interpolate(g, scale_factor=512 / max(g.shape[-2:]), mode="bilinear",
                                                antialias=True, align_corners=False)
        obj = O.guided_dream(layer, activations(model, g, layer))
    else:
        obj = O.layer_l2(layer)
    sizes = octave_sizes(tuple(img.shape[-2:]), cfg.octaves, cfg.octave_scale)
    total = cfg.steps * len(sizes)
    norms, stopped = [], "done"
    x = torch.nn.functional.interpolate(img, size=sizes[0], mode="bilinear", antialias=True, align_corners=False)
    for o, size in enumerate(sizes):
        if o > 0:  # upsample the dream; add back the detail the base image has at this size
            base_lo = torch.nn.functional.interpolate(img, size=sizes[o - 1], mode="bilinear", antialias=True,
                                                      align_corners=False)
            detail = x - base_lo
            base = torch.nn.functional.interpolate(img, size=size, mode="bilinear", antialias=True,
                                                   align_corners=False)
            x = (base + torch.nn.functional.interpolate(detail, size=size, mode="bilinear",
                                                        align_corners=False)).clamp(0, 1)
        before = _sq_norm(model, x, layer)
        param = PixelParam(x, background=model.mean.flatten())
        done0 = o * cfg.steps
        prog = (lambda d, t, done0=done0: progress(done0 + d, total)) if progress else None
        jit = min(cfg.jitter, max(1, min(size) // 4))
        res = optimize(model, obj, param, steps=cfg.steps, optimizer="sgd", lr=cfg.lr, normalize_grad=True,
                       transforms=T.roll(jit), seed=cfg.seed + o, tile=cfg.tile, progress=prog, callback=callback)
        x = res.images
        norms.append((before, _sq_norm(model, x, layer)))
        if res.stopped in ("interrupted", "callback"):
            stopped = res.stopped
            break
    return Dream(x, norms, sizes, stopped)


__all__ = ["DreamConfig", "Dream", "deepdream"]
