"""Unrecognizable images classified with high confidence (Nguyen, Yosinski & Clune 2015, "Deep neural
networks are easily fooled"): from noise or a blank image, gradient ascent on the log-probability of
a class until the network is >= 99.6% sure, while a person sees noise or a pattern.

Runs on the optimization engine (``convlens.optimize``): a ``PixelParam`` (pixels, clamped to [0, 1]),
the objective ``log softmax(f(x))_c`` and a callback that stops once every image reached the
confidence. The paper's gradient-ascent images (their Fig. 13, after Simonyan et al.) are this recipe;
its evolutionary variant (CPPN / direct encoding, no gradients) is ``evolve.evolve_unrecognizable``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import torch

from ..attribution.base import check_model
from ..drivers.forward import inference_twin
from ..errors import ConvlensError
from ..optim.loop import OptimResult, optimize
from ..optim.objectives import Features, Objective, per_image_index
from ..optim.params import PixelParam
from ..progress import ProgressFn
from ..render import grid


@dataclass
class UnrecognizableConfig:
    """Parameters of ``unrecognizable`` (Nguyen et al. 2015: >= 99.6% confidence)."""

    confidence: float = field(default=0.996, metadata={"help": "stop once every image's target probability reaches this"})
    start: Literal["noise", "blank"] = field(default="noise", metadata={
        "help": "noise: uniform random pixels; blank: uniform grey (the model's mean colour)"})
    size: int = field(default=224, metadata={"help": "image size in pixels"})
    steps: int = field(default=200, metadata={"help": "maximum optimization steps"})
    lr: float = field(default=0.01, metadata={"help": "Adam learning rate (pixel units)"})
    seed: int = field(default=0, metadata={"help": "seed of the noise start"})


@dataclass
class Unrecognizable:
    """``images`` (N, 3, H, W) in [0, 1], ``targets`` (N,), ``confidence`` (N,) the target probability of
    each final image, ``labels`` ("robin 99.7%"), ``steps`` taken, and the engine's ``optim`` result."""

    images: torch.Tensor
    targets: torch.Tensor
    confidence: torch.Tensor
    labels: list[str]
    steps: int
    optim: OptimResult = field(repr=False)

    def render(self, tile: int = 160):
        return grid(list(self.images), self.labels, ncol=len(self.labels), tile=tile, upscale="bilinear")


def log_prob(target) -> Objective:
    """``log softmax(logits)[target]`` per image (maximize: the class's log-probability)."""
    def fn(f: Features):
        idx = per_image_index(target, f.logits.shape[0], f.logits.device)
        return f.logits.log_softmax(-1).gather(1, idx[:, None])[:, 0]
    return Objective(fn, logits=True, name=f"log_prob({target})")


def unrecognizable(model, targets, config: UnrecognizableConfig | None = None, *, progress: ProgressFn | None = None,
                   **overrides) -> Unrecognizable:
    """Images from noise (or a blank) that the model calls ``targets`` with >= 99.6% confidence.

    ``x* = argmax_x log p(c | x)``, x in [0, 1] pixels, Adam, stopped once ``p(c | x) >= confidence``
    for every image (Nguyen et al. 2015, gradient-ascent variant).

    Args:
        model: a ``convlens.Model``. targets: a class (index / name) or a list, one image each.
        config: an ``UnrecognizableConfig``; ``overrides``: its fields as keywords (confidence, start,
            size, steps, lr, seed).
    Returns:
        ``Unrecognizable`` (images, confidences, labels; ``render()`` draws the row).
    Example:
        >>> u = convlens.unrecognizable(m, ["robin", "king penguin"], size=128); u.labels
    """
    cfg = replace(config or UnrecognizableConfig(), **overrides)
    model = check_model(model)
    if not 0 < cfg.confidence < 1:
        raise ConvlensError(f"confidence must be in (0, 1), got {cfg.confidence}")
    if cfg.start not in ("noise", "blank"):
        raise ConvlensError(f"start must be 'noise' or 'blank', got {cfg.start!r}")
    tlist = targets if isinstance(targets, (list, tuple)) else [targets]
    idx = [model.class_index(t) for t in tlist]
    n = len(idx)
    gen = torch.Generator().manual_seed(cfg.seed)
    if cfg.start == "noise":
        init = torch.rand(n, 3, cfg.size, cfg.size, generator=gen)
    else:
        init = model.mean.detach().float().cpu().view(1, 3, 1, 1).expand(n, 3, cfg.size, cfg.size).clone()
    param = PixelParam(init.to(model.device))
    log_c = float(torch.log(torch.tensor(cfg.confidence)))
    net = inference_twin(model, channels_last=True, fuse_bn=True)  # same function, faster ops
    r = optimize(net, log_prob(idx), param, steps=cfg.steps, optimizer="adam", lr=cfg.lr, seed=cfg.seed,
                 progress=progress, callback=lambda info: bool((info.value >= log_c).all()))
    images = r.images
    with torch.inference_mode():
        p = net(images.to(model.mean.dtype)).softmax(-1)
    t = torch.tensor(idx)
    conf = p[torch.arange(n), t.to(p.device)].cpu()
    names = model.classes or [str(i) for i in range(p.shape[1])]
    labels = [f"{names[i]} {c:.1%}" for i, c in zip(idx, conf.tolist())]
    return Unrecognizable(images, t, conf, labels, r.steps, r)
