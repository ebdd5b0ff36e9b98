"""Gram matrices, neural texture synthesis (Gatys, Ecker & Bethge 2015) and neural style transfer
(Gatys, Ecker & Bethge 2016) as recipes on the optimization engine (``convlens.optimize``).

    G_l = F_l F_l^T / M_l                     (F_l: the layer's N_l x M_l features, M_l = H W positions)
    E_l = 1/(4 N_l^2 M_l^2) sum_ij (F F^T - F^ F^^T)_ij^2 = 1/(4 N_l^2) sum_ij (G_l - G^_l)_ij^2
    L_style = sum_l w_l E_l,   L_content = 1/2 sum (F_c - P_c)^2,   L = a L_content + b L_style + t R_TV

With ``relative=True`` (default) each term is divided by its value for a blank (zero-feature) image,
``sum G^^2 / (4 N^2)`` and ``1/2 sum P^2``, so the weights mean the same for every network and layer
(a VGG's relu1_1 and a MobileNet's block 1 differ by orders of magnitude in raw scale).

Non-VGG networks give poor style transfer: a few channels with large, peaky activations dominate the
Gram matrices. Wang et al., CVPR 2021 ("Rethinking and improving the robustness of image style
transfer", SWAG) smooth every activation with a softmax over the whole layer before the losses,
``sigma(F)_k = exp(F_k) / sum_j exp(F_j)``; ``smooth="softmax"`` does that (times the layer's
number of elements, so the smoothed features average 1 and the weights keep their scale).

    m = convlens.load_model("vgg16-imagenet")
    r = convlens.style_transfer(m, "chelsea", "starry_night", size=384)
    r.image                                           # (1, 3, H, W) in [0, 1]
    t = convlens.synthesize_texture(m, "brick", size=256)
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from typing import Sequence

import torch
import torch.nn.functional as F
from torchvision.models import VGG19_Weights

from ..errors import ConvlensError
from ..images.io import load_image
from ..images.io import resize_long  # an image helper (images/io.py); importable from here as before
from ..models.model import Model
from ..models.offline import cache_dir
from ..optim import objectives as O
from ..optim.loop import OptimResult, optimize
from ..optim.params import PixelParam
from ..probe.probe import activations
from ..render import grid
from ..texture.samples import texture_image

# Layers per network: (content layers, style layers). VGG: Gatys's conv4_2 and relu1_1..relu5_1.
STYLE_LAYERS = {
    "vgg19": (("features.22",), ("features.1", "features.6", "features.11", "features.20", "features.29")),
    "vgg16": (("features.20",), ("features.1", "features.6", "features.11", "features.18", "features.25")),
    "vgg16-imagenet": (("features.20",), ("features.1", "features.6", "features.11", "features.18", "features.25")),
    "vgg16-hed": (("features.20",), ("features.1", "features.6", "features.11", "features.18", "features.25")),
    "mobilenet_v2": (("features.10",), ("features.1", "features.3", "features.6", "features.10", "features.14")),
}
# The softmax smoothing (Wang et al. 2021) is on by default only where it is needed: non-VGG networks.
SMOOTH_DEFAULT = {"mobilenet_v2": "softmax"}
# Default style weight per network (relative losses): the smoothed MobileNet features are matched
# more easily and need a larger weight for a visible style (measured: docs/texture-style.md).
STYLE_WEIGHT_DEFAULT = {"mobilenet_v2": 100.0}
DEFAULT_STYLE_WEIGHT = 10.0
DEFAULT_STYLE_MODEL = "vgg16-imagenet"


def default_style_model() -> str:
    """"vgg19" (Gatys's network) when torchvision's ImageNet VGG-19 weights are already in the torch
    cache (a connected machine that fetched them once: ``load_model("vgg19")``), else the offline
    ImageNet "vgg16-imagenet" (Keras's VGG-16 conv layers; "vgg16-hed", HED's fine-tuned copy, stays an option)."""
    return "vgg19" if (cache_dir() / os.path.basename(VGG19_Weights.IMAGENET1K_V1.url)).exists() else DEFAULT_STYLE_MODEL


class _FFt(torch.autograd.Function):
    """``F F^T`` (N, C, M) -> (N, C, C) with a one-matmul backward: ``dF = (dG + dG^T) F``. Autograd's own
    backward of ``bmm(F, F^T)`` takes two (C x C x M) matmuls, one per operand; the Grams are most of a
    Gatys step's cost beyond the network (checked with float64 gradcheck, double backward included)."""

    @staticmethod
    def forward(ctx, f):
        ctx.save_for_backward(f)
        return torch.bmm(f, f.transpose(1, 2))

    @staticmethod
    def backward(ctx, g):
        (f,) = ctx.saved_tensors
        return torch.bmm(g + g.transpose(1, 2), f)


def gram(features: torch.Tensor, normalize: str = "positions") -> torch.Tensor:
    """Gram matrices of a layer's features: (N, C, H, W) -> (N, C, C), ``G = F F^T`` with F = C x HW.

    Args:
        features: activations (N, C, H, W) (or (N, C, M) already flattened).
        normalize: "positions" (default): ``F F^T / M`` (averaged over the M = H W positions, so the
            Gram does not grow with the image size); "gatys": ``F F^T / (2 N M)`` so that
            ``sum (G - G^)^2`` is exactly Gatys's ``E_l = 1/(4 N^2 M^2) sum (F F^T - F^ F^^T)^2``;
            "none": ``F F^T``.
    Example:
        >>> convlens.gram(torch.ones(1, 2, 3, 3))    # tensor([[[1., 1.], [1., 1.]]])
    """
    f = features.flatten(2) if features.ndim == 4 else features
    if f.ndim != 3:
        raise ConvlensError(f"gram needs (N, C, H, W) or (N, C, M) features, got {tuple(features.shape)}")
    g = _FFt.apply(f)
    n, m = f.shape[1], f.shape[2]
    if normalize == "positions":
        return g / m
    if normalize == "gatys":
        return g / (2 * n * m)
    if normalize == "none":
        return g
    raise ConvlensError(f"gram normalize must be 'positions', 'gatys' or 'none', got {normalize!r}")


def smooth_features(a: torch.Tensor, mode: str | None) -> torch.Tensor:
    """Activation smoothing before the losses: None (identity) or "softmax" (Wang et al. 2021):
    ``softmax over the whole layer (C H W) * (C H W)`` per image, so the values average 1."""
    if not mode or mode == "none":
        return a
    if mode == "softmax":
        flat = a.flatten(1)
        return (torch.softmax(flat, dim=1) * flat.shape[1]).view_as(a)
    raise ConvlensError(f"smooth must be 'none' or 'softmax', got {mode!r}")


def style_loss_layer(g: torch.Tensor, target: torch.Tensor, relative: bool = True) -> torch.Tensor:
    """Gatys's ``E_l = 1/(4 N^2) sum (G - G^)^2`` per image (G = F F^T / M); ``relative`` divides by
    the value of a blank image, ``1/(4 N^2) sum G^^2``. g: (N, C, C), target: (1 or N, C, C)."""
    c = g.shape[-1]
    e = (g - target).pow(2).flatten(1).sum(1) / (4 * c * c)
    if relative:
        e = e / (target.pow(2).flatten(1).sum(1) / (4 * c * c)).clamp(min=1e-12)
    return e


def content_loss_layer(a: torch.Tensor, target: torch.Tensor, relative: bool = True) -> torch.Tensor:
    """``1/2 sum (F - P)^2`` per image; ``relative`` divides by ``1/2 sum P^2``."""
    e = 0.5 * (a - target).pow(2).flatten(1).sum(1)
    if relative:
        e = e / (0.5 * target.pow(2).flatten(1).sum(1)).clamp(min=1e-12)
    return e


def style_layers_for(model: Model, content_layers, style_layers, smooth):
    """(content layers, style layers, smoothing) for ``model``: the given ones, else ``STYLE_LAYERS`` and
    ``SMOOTH_DEFAULT`` for its name ("auto"/None smoothing); every name is checked against the model."""
    known = STYLE_LAYERS.get(model.name)
    if (content_layers is None or style_layers is None) and known is None:
        raise ConvlensError(f"no default style layers for {model.name}; pass content_layers=... and style_layers=... "
                            f"(known: {', '.join(STYLE_LAYERS)})")
    cl = tuple(content_layers) if content_layers is not None else known[0]
    sl = tuple(style_layers) if style_layers is not None else known[1]
    sm = SMOOTH_DEFAULT.get(model.name, "none") if smooth in (None, "auto") else smooth
    for name in (*cl, *sl):
        model.module(name)  # unknown names raise with the closest ones
    return cl, sl, sm




def style_targets(model: Model, image: torch.Tensor, layers: Sequence[str], smooth: str | None) -> dict:
    """{layer: Gram (1, C, C)} of ``image`` (smoothed features, ``normalize="positions"``)."""
    acts = activations(model, image.to(model.device), list(layers))
    return {k: gram(smooth_features(acts[k], smooth)).clone() for k in layers}


def style_objective(targets: Sequence[dict], weights: Sequence[float], layer_weights: dict | None = None,
                    smooth: str | None = None, relative: bool = True) -> O.Objective:
    """``sum_s w_s sum_l w_l E_l(s)`` as an Objective (a loss: maximize its negative)."""
    layers = list(dict.fromkeys(k for t in targets for k in t))
    lw = layer_weights or {k: 1.0 / len(layers) for k in layers}

    def fn(f: O.Features):
        total = 0.0
        for k in layers:
            g = gram(smooth_features(f[k], smooth))
            for t, w in zip(targets, weights):
                if k in t:
                    total = total + w * lw[k] * style_loss_layer(g, t[k].to(g), relative)
        return total
    return O.Objective(fn, layers, name="style_loss")


def content_objective(targets: dict, smooth: str | None = None, relative: bool = True) -> O.Objective:
    """``sum_l L_content(l) / n_layers`` as an Objective (a loss)."""
    layers = list(targets)
    targets = {k: smooth_features(v, smooth).clone() for k, v in targets.items()}

    def fn(f: O.Features):
        return sum(content_loss_layer(smooth_features(f[k], smooth), targets[k].to(f[k]), relative)
                   for k in layers) / len(layers)
    return O.Objective(fn, layers, name="content_loss")


def _tv_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean squared neighbour difference (size-independent TV): ``R_TV / (H W)``."""
    return O.total_variation(x) / (x.shape[-1] * x.shape[-2])


# --- colour handling ---------------------------------------------------------------------------
_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def rgb_to_yiq(x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("kc,nchw->nkhw", _YIQ.to(x), x)


def yiq_to_rgb(x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("kc,nchw->nkhw", torch.linalg.inv(_YIQ).to(x), x)


def luminance(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> grey (N, 3, H, W) from the Y of YIQ."""
    return rgb_to_yiq(x)[:, :1].expand(-1, 3, -1, -1).contiguous()


def match_luminance(style_y: torch.Tensor, content_y: torch.Tensor) -> torch.Tensor:
    """Shift and scale the style's luminance to the content's mean and std (Gatys et al. 2017)."""
    s_mu, s_sd = style_y.mean(), style_y.std().clamp(min=1e-6)
    return ((style_y - s_mu) / s_sd * content_y.std() + content_y.mean()).clamp(0, 1)


def as_image(x) -> torch.Tensor:
    """A tensor (1, 3, H, W), a path, or a sample name (``convlens samples`` plus the style samples)."""
    if isinstance(x, torch.Tensor):
        return load_image(x)
    return texture_image(x)


# --- recipes -----------------------------------------------------------------------------------
@dataclass
class StyleConfig:
    """Gatys et al. 2016 style transfer. Layers default per network (``STYLE_LAYERS``); the weights
    are for relative losses (see the module doc), which keep them network-independent."""

    size: int = field(default=256, metadata={"help": "longer side of the output in pixels"})
    style_size: int = field(default=0, metadata={"help": "longer side of the style image (0: same as size)"})
    steps: int = field(default=150, metadata={"help": "optimizer steps per octave"})
    octaves: int = field(default=1, metadata={"help": "coarse-to-fine octaves (x1.6 each), for large outputs"})
    content_weight: float = field(default=1.0, metadata={"help": "weight of the content loss"})
    style_weight: float | None = field(default=None, metadata={"help": "weight of the style loss (default: 10; "
                                                                        "100 for mobilenet_v2)"})
    tv_weight: float = field(default=0.5, metadata={"help": "weight of the mean-squared total variation"})
    init: str = field(default="content", metadata={"help": "start image: content or noise"})
    optimizer: str = field(default="lbfgs", metadata={"help": "lbfgs or adam"})
    lr: float = field(default=1.0, metadata={"help": "learning rate (lbfgs: 1; adam: about 0.02)"})
    preserve_color: bool = field(default=False, metadata={"help": "luminance-only transfer: keep the content's colours"})
    smooth: str = field(default="auto", metadata={"help": "activation smoothing: auto (softmax for non-VGG), none, softmax"})
    content_layers: tuple[str, ...] | None = field(default=None, metadata={"help": "content layers (default per network)"})
    style_layers: tuple[str, ...] | None = field(default=None, metadata={"help": "style layers (default per network)"})
    seed: int = field(default=0, metadata={"help": "seed of the noise start"})


@dataclass
class StyleResult:
    """``image`` (1, 3, H, W) the stylized image; ``content`` and ``styles`` as used (resized);
    ``losses_start`` / ``losses`` {"content", "style", "tv"} before and after; ``optim``: one
    ``OptimResult`` per octave; ``stopped``: "done" or "interrupted" (Ctrl-C keeps the best image)."""

    image: torch.Tensor
    content: torch.Tensor | None
    styles: list
    losses_start: dict
    losses: dict
    optim: list
    seconds: float
    config: StyleConfig

    @property
    def stopped(self) -> str:
        return "interrupted" if any(r.stopped == "interrupted" for r in self.optim) else "done"


def _measure(model, img, c_obj, s_obj) -> dict:
    layers = list(dict.fromkeys([*(c_obj.layers if c_obj else ()), *s_obj.layers]))
    with torch.no_grad():
        acts = activations(model, img, layers)
        f = O.Features(img, img, acts)
        out = {"style": float(s_obj(f).mean()), "tv": float(_tv_mean(img).mean())}
        if c_obj is not None:
            out["content"] = float(c_obj(f).mean())
    return out


def _optimizer(cfg):
    """L-BFGS without line search (as the reference Gatys implementations: a strong-Wolfe search stalls
    on these losses once it fails once), one iteration per engine step; or the engine's Adam."""
    if cfg.optimizer == "lbfgs":
        return lambda ps: torch.optim.LBFGS(ps, lr=cfg.lr, max_iter=1, history_size=50)
    return cfg.optimizer


def _run(model, content, styles, weights, cfg: StyleConfig, texture_size=None, progress=None, callback=None):
    """Shared by style transfer (content given) and texture synthesis (content None)."""
    cl, sl, smooth = style_layers_for(model, cfg.content_layers, cfg.style_layers, cfg.smooth)
    device = model.device
    if cfg.optimizer not in ("lbfgs", "adam"):
        raise ConvlensError(f"optimizer must be lbfgs or adam, got {cfg.optimizer!r}")
    if cfg.init not in ("content", "noise"):
        raise ConvlensError(f"init must be 'content' or 'noise', got {cfg.init!r}")
    if content is not None:
        content = resize_long(content, cfg.size).to(device)
        full = tuple(content.shape[-2:])
    else:
        full = texture_size
    ssize = cfg.style_size or cfg.size
    styles = [resize_long(s, ssize).to(device) for s in styles]
    color, shown = None, content
    if cfg.preserve_color and content is not None:
        yiq = rgb_to_yiq(content)
        color = yiq[:, 1:]
        content = luminance(content)
        styles = [match_luminance(luminance(s), content) for s in styles]
    targets = [style_targets(model, s, sl, smooth) for s in styles]
    s_obj = style_objective(targets, weights, smooth=smooth)
    g = torch.Generator().manual_seed(cfg.seed)
    # octaves: sizes from coarse to fine
    sizes = [(max(16, round(full[0] / 1.6 ** k)), max(16, round(full[1] / 1.6 ** k)))
             for k in range(cfg.octaves - 1, -1, -1)]
    img = None
    results, t0 = [], time.perf_counter()
    start_losses = None
    total = cfg.steps * len(sizes)
    for o, hw in enumerate(sizes):
        c_obj = None
        if content is not None:
            c_small = F.interpolate(content, size=hw, mode="bilinear", align_corners=False, antialias=True) \
                if hw != full else content
            c_obj = content_objective(activations(model, c_small, list(cl)), smooth=smooth)
        if img is None:
            if cfg.init == "content" and content is not None:
                img = c_small.clone()
            else:  # Gatys: white noise (mid-grey +- noise keeps the first steps small)
                mean = styles[0].mean((2, 3), keepdim=True)
                img = (mean + 0.1 * torch.randn(1, 3, *hw, generator=g).to(device)).clamp(0, 1)
        else:
            img = F.interpolate(img, size=hw, mode="bilinear", align_corners=False).clamp(0, 1)
        sw = cfg.style_weight if cfg.style_weight is not None else STYLE_WEIGHT_DEFAULT.get(model.name, DEFAULT_STYLE_WEIGHT)
        loss = sw * s_obj + cfg.tv_weight * O.Objective(lambda f: _tv_mean(f.image), name="tv")
        if c_obj is not None:
            loss = loss + cfg.content_weight * c_obj
        if start_losses is None:
            start_losses = _measure(model, img, c_obj, s_obj)
        prog = (lambda d, t, o=o: progress(o * cfg.steps + d, total)) if progress else None
        res = optimize(model, -loss, PixelParam(img, clamp=False), steps=cfg.steps, optimizer=_optimizer(cfg), lr=cfg.lr,
                       seed=cfg.seed, progress=prog, callback=callback)
        results.append(res)
        img = res.best.detach()
        if res.stopped == "interrupted":
            break
    final = _measure(model, img, c_obj, s_obj)
    out = img
    if color is not None:  # put the content's colour back: Y from the result, IQ from the content
        c = F.interpolate(color, size=img.shape[-2:], mode="bilinear", align_corners=False) \
            if color.shape[-2:] != img.shape[-2:] else color
        out = yiq_to_rgb(torch.cat([rgb_to_yiq(img)[:, :1], c], 1)).clamp(0, 1)
    return StyleResult(out.cpu(), None if shown is None else shown.cpu(), [s.cpu() for s in styles],
                       start_losses, final, results, time.perf_counter() - t0, cfg)


def style_transfer(model: Model, content, style, config: StyleConfig | None = None, *,
                   styles_weights: Sequence[float] | None = None, progress=None, callback=None,
                   **overrides) -> StyleResult:
    """Neural style transfer (Gatys, Ecker & Bethge, CVPR 2016) on the optimization engine.

    Minimizes ``a L_content + b L_style + t R_TV`` over the pixels, from the content image (or
    noise), with L-BFGS (or Adam), optionally coarse-to-fine (``octaves``), with several styles
    (``style`` a list, ``styles_weights`` their weights) and colour preservation (luminance-only
    transfer, Gatys et al. 2017: the style's luminance is matched to the content's, the network
    sees luminance only, the content's chrominance (YIQ) is put back).

    Args:
        model: a ``convlens.Model``: "vgg16-imagenet" (offline default), "vgg16-hed" (HED's VGG-16),
            "mobilenet_v2" (softmax
            smoothing on), "vgg19" (Gatys's network, on a connected machine), or any model with
            ``content_layers``/``style_layers`` given.
        content: a (1, 3, H, W) tensor in [0, 1], a path or a sample name.
        style: the same; or a list of them.
        config: ``StyleConfig`` or keyword overrides (``size=384, style_weight=3, steps=200, ...``).
    Returns:
        ``StyleResult``.
    Example:
        >>> r = convlens.style_transfer(convlens.load_model("vgg16-imagenet"), "chelsea", "starry_night", size=256, steps=50)
        >>> r.losses["style"] < r.losses_start["style"]
        True
    """
    cfg = replace(config or StyleConfig(), **overrides)
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    styles = [as_image(s) for s in styles]
    weights = [1.0] * len(styles) if styles_weights is None else [float(w) for w in styles_weights]
    if len(weights) != len(styles):
        raise ConvlensError(f"got {len(weights)} styles_weights for {len(styles)} styles; give one per style")
    return _run(model, as_image(content), styles, weights, cfg, progress=progress, callback=callback)


@dataclass
class TextureConfig:
    """Gatys et al. 2015 texture synthesis: match Gram matrices from a noise start."""

    size: int = field(default=256, metadata={"help": "output size in pixels (square)"})
    sample_size: int = field(default=256, metadata={"help": "longer side of the texture sample as the network sees it"})
    steps: int = field(default=200, metadata={"help": "optimizer steps"})
    optimizer: str = field(default="lbfgs", metadata={"help": "lbfgs or adam"})
    lr: float = field(default=1.0, metadata={"help": "learning rate (lbfgs: 1; adam: about 0.02)"})
    tv_weight: float = field(default=0.0, metadata={"help": "weight of the mean-squared total variation"})
    smooth: str = field(default="auto", metadata={"help": "activation smoothing: auto, none, softmax"})
    layers: tuple[str, ...] | None = field(default=None, metadata={"help": "style layers (default per network)"})
    seed: int = field(default=0, metadata={"help": "seed of the noise start"})


def synthesize_texture(model: Model, texture, config: TextureConfig | None = None, *, progress=None,
                       callback=None, **overrides) -> StyleResult:
    """Neural texture synthesis (Gatys, Ecker & Bethge, NeurIPS 2015): from noise, match the Gram
    matrices of ``texture`` at ``layers`` (``L = sum_l E_l / n_layers``), L-BFGS by default.

    Example:
        >>> t = convlens.synthesize_texture(convlens.load_model("vgg16-imagenet"), "brick", size=128, steps=50)
        >>> t.image.shape
        torch.Size([1, 3, 128, 128])
    """
    cfg = replace(config or TextureConfig(), **overrides)
    # the loss is scaled by 10 (the minimizer is the same): with the unit weight, L-BFGS without line search
    # (see _optimizer) stalled for good after one overshoot on vgg16-imagenet's relu1_1..relu3_1 set (flower,
    # 96 px, seed 0: the result stayed noise); at 10 it recovers from the overshoot within a few steps
    scfg = StyleConfig(size=cfg.sample_size, steps=cfg.steps, style_weight=DEFAULT_STYLE_WEIGHT, tv_weight=cfg.tv_weight,
                       init="noise", optimizer=cfg.optimizer, lr=cfg.lr, smooth=cfg.smooth,
                       content_layers=(), style_layers=cfg.layers, seed=cfg.seed)
    if cfg.layers is not None and not cfg.layers:
        raise ConvlensError("layers must name at least one layer")
    return _run(model, None, [as_image(texture)], [1.0], scfg, texture_size=(cfg.size, cfg.size),
                progress=progress, callback=callback)


def texture_layer_sets(model: Model, texture, config: TextureConfig | None = None, *, progress=None,
                       **overrides):
    """The lecture's figure: textures from progressively higher layer sets (first 1, 2, ... of the
    network's style layers). Returns (list of StyleResult, figure PIL image)."""
    cfg = replace(config or TextureConfig(), **overrides)
    _, sl, _ = style_layers_for(model, (), cfg.layers, cfg.smooth)
    out = []
    for i in range(1, len(sl) + 1):
        prog = (lambda d, t, i=i: progress((i - 1) * cfg.steps + d, len(sl) * cfg.steps)) if progress else None
        out.append(synthesize_texture(model, texture, cfg, layers=tuple(sl[:i]), progress=prog))
        if out[-1].stopped == "interrupted":
            break
    sample = resize_long(as_image(texture), cfg.sample_size)
    labels = ["sample"] + [f"up to {sl[len(r.config.style_layers) - 1]}" for r in out]
    fig = grid([sample] + [r.image for r in out], labels, ncol=len(out) + 1, tile=min(cfg.size, 192),
               upscale="bilinear")
    return out, fig


__all__ = ["gram", "smooth_features", "default_style_model", "StyleConfig", "StyleResult", "style_transfer", "TextureConfig",
           "synthesize_texture", "texture_layer_sets", "STYLE_LAYERS"]
