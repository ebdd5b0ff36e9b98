"""Feature inversion (Mahendran & Vedaldi 2015, "Understanding deep image representations by
inverting them") on the shared loop.

    x* = argmin_x  ||phi(x) - phi0||^2 / ||phi0||^2  +  l_a R_a(x)  +  l_tv R_TV(x)
    R_a(x)  = mean(|x - m| / B)^alpha              (alpha-norm; B = 0.5: half the pixel range)
    R_TV(x) = mean(((dx^2 + dy^2) / V^2)^(beta/2))  (TV^beta; V = B / 6.5, the paper's ratio)

The penalties are normalized per pixel as in the paper, so their weights do not depend on the image
size. Reconstructions from deeper layers keep the content and lose the exact pixels.

    r = convlens.invert(model, cat, "features.6")
    fig = convlens.invert_layers(model, cat, ["features.1", "features.4", "features.10"]).figure
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import torch

from ..errors import ConvlensError
from ..images.io import fit
from ..models.model import Model
from ..optim import objectives as O
from ..optim import transforms as T
from ..optim.loop import OptimResult, optimize
from ..optim.params import make_param
from ..probe.probe import activations
from ..render import grid


@dataclass
class InvertConfig:
    """Feature inversion parameters (Mahendran & Vedaldi 2015 defaults: alpha 6, beta 2)."""

    steps: int = field(default=200, metadata={"help": "optimization steps"})
    size: int = field(default=224, metadata={"help": "image size (the input is resized + centre-cropped)"})
    lr: float = field(default=0.05, metadata={"help": "Adam learning rate"})
    optimizer: str = field(default="adam", metadata={"help": "adam, momentum, sgd or lbfgs"})
    param: str = field(default="decorrelated", metadata={"help": "pixel or decorrelated (sigmoid range)"})
    alpha: float = field(default=6.0, metadata={"help": "alpha of the alpha-norm regularizer"})
    alpha_weight: float = field(default=1e-3, metadata={"help": "weight of the alpha-norm regularizer"})
    beta: float = field(default=2.0, metadata={"help": "beta of the TV^beta regularizer"})
    tv_weight: float = field(default=0.02, metadata={"help": "weight of the TV^beta regularizer"})
    jitter: int = field(default=0, metadata={"help": "random jitter in pixels (0: none)"})
    seed: int = field(default=0, metadata={"help": "random seed of the start"})


@dataclass
class Inversion:
    """Result: ``image`` (1, 3, H, W) the reconstruction; ``target`` the input as fitted; ``distance``
    the final normalized feature distance and ``start_distance`` the one of the starting image."""

    layer: str
    image: torch.Tensor
    target: torch.Tensor
    distance: float
    start_distance: float
    optim: OptimResult


def invert(model: Model, image: torch.Tensor, layer: str, config: InvertConfig | None = None, *,
           progress=None, callback=None, **overrides) -> Inversion:
    """Reconstruct ``image`` from its features at ``layer``.

    Args:
        model: a ``convlens.Model``; image: (1, 3, H, W) in [0, 1]; layer: dotted name.
        config: ``InvertConfig`` (or overrides: ``steps=200, tv_weight=0.02, beta=2``).
    Returns:
        ``Inversion`` (reconstruction, target, distances).
    Example:
        >>> r = convlens.invert(model, convlens.sample_image("chelsea"), "features.4", steps=100)
        >>> r.distance < 0.2 * r.start_distance
    """
    cfg = replace(config or InvertConfig(), **overrides)
    if image.ndim != 4 or image.shape[0] != 1:
        raise ConvlensError(f"invert takes one image (1, 3, H, W), got {tuple(image.shape)}")
    model.module(layer)
    target_img = fit(image.detach().float(), cfg.size).to(model.device)
    phi0 = activations(model, target_img, layer)
    fm = O.feature_match(layer, phi0)
    b, v = 0.5, 0.5 / 6.5
    npx = cfg.size * cfg.size

    def reg(f):
        x = f.image
        ra = ((x - 0.5).abs() / b).pow(cfg.alpha).flatten(1).mean(1)
        dx = x[..., :-1, 1:] - x[..., :-1, :-1]
        dy = x[..., 1:, :-1] - x[..., :-1, :-1]
        rtv = ((dx * dx + dy * dy) / v ** 2 + 1e-8).pow(cfg.beta / 2).flatten(1).sum(1) / npx
        return cfg.alpha_weight * ra + cfg.tv_weight * rtv
    obj = -fm - O.Objective(reg, name="mahendran_reg")
    g = torch.Generator().manual_seed(cfg.seed)
    if cfg.param == "pixel":
        param = make_param("pixel", size=cfg.size, init="noise", background=torch.full((3,), 0.5), generator=g)
    elif cfg.param == "decorrelated":
        param = make_param("decorrelated", size=cfg.size, generator=g, sd=0.1)
    else:
        raise ConvlensError(f"invert param must be pixel or decorrelated, got {cfg.param!r}")
    with torch.no_grad():
        start = float(fm(O.Features(param(), param(), {layer: activations(model, param(), layer)})))
    res = optimize(model, obj, param, steps=cfg.steps, optimizer=cfg.optimizer, lr=cfg.lr,
                   transforms=T.jitter(cfg.jitter) if cfg.jitter else None, seed=cfg.seed,
                   progress=progress, callback=callback)
    out = res.images
    with torch.no_grad():
        dist = float(fm(O.Features(out, out, {layer: activations(model, out, layer)})))
    return Inversion(layer, out, target_img, dist, start, res)


@dataclass
class InversionRow:
    """``invert_layers`` result: one ``Inversion`` per layer and the lecture's figure (a PIL image)."""

    inversions: list[Inversion]
    figure: object


def invert_layers(model: Model, image: torch.Tensor, layers: Sequence[str], config: InvertConfig | None = None, *,
                  progress=None, **overrides) -> InversionRow:
    """One reconstruction per layer, drawn in a row after the input (Mahendran & Vedaldi's figure).

    Example:
        >>> row = convlens.invert_layers(model, cat, ["features.1", "features.6", "features.13"], steps=100)
        >>> row.figure.save("inversion.png")
    """
    cfg = replace(config or InvertConfig(), **overrides)
    layers = list(layers)
    out = []
    for i, layer in enumerate(layers):
        prog = (lambda d, t, i=i: progress(i * cfg.steps + d, len(layers) * cfg.steps)) if progress else None
        out.append(invert(model, image, layer, cfg, progress=prog))
        if out[-1].optim.stopped == "interrupted":  # Ctrl-C: keep what is done, start no new layer
            break
    imgs = [out[0].target] + [r.image for r in out] if out else []
    labels = ["input"] + [f"{r.layer} (d={r.distance:.2f})" for r in out]
    fig = grid(imgs, labels, ncol=len(imgs), tile=min(cfg.size, 192), upscale="bilinear")
    return InversionRow(out, fig)


__all__ = ["InvertConfig", "Inversion", "InversionRow", "invert", "invert_layers"]
