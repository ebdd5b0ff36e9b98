"""Class, channel and neuron visualization by gradient ascent, with three presets.

    simonyan   Simonyan, Vedaldi & Zisserman 2014: start from the mean image (a zero network input),
               plain gradient ascent on ``S_c(I) - lambda ||I - mean||^2``.
    yosinski   Yosinski et al. 2015: the same ascent plus the four periodic regularizers (L2 decay,
               Gaussian blur, clipping of small-norm and of small-contribution pixels), settings from
               the paper's Table 1 (``yosinski_set``), and a small jitter.
    robust     Olah et al. 2017 (Lucid): Fourier parameterization with 1/f scaling, colour
               decorrelation, sigmoid range, random pad/jitter/scale/rotate, Adam. The clearest images.
    maco       Fel et al. 2023 (MACO): the Fourier magnitude fixed to natural images' (estimated from
               ``spectrum`` and cached), only the phase optimized (NAdam, lr 1), random crops of a
               ``canvas`` px canvas with noise; ``Visualization.transparency`` says where the feature lives.

    imgs = convlens.visualize_class(model, ["flamingo", "pelican"]).images      # (2, 3, 224, 224)
    convlens.visualize_channel(model, "features.10", 7, preset="robust")
    convlens.visualize_neuron(model, "features.10", 7, unit=(7, 7))
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Literal, Sequence

import torch

from ..errors import ConvlensError
from ..models.model import Model
from ..optim import objectives as O
from ..optim import regularizers as R
from ..optim import transforms as T
from ..optim.loop import OptimResult, StepInfo, objective_value, optimize
from ..optim.maco import MacoCrops, MacoParam, crop_mean, natural_magnitude, transparency_map
from ..optim.params import GeneratorParam, Param, make_param
from .evidence import Evidence, natural_evidence

PRESETS = ("robust", "simonyan", "yosinski", "maco")


@dataclass
class VizConfig:
    """Parameters of class / channel / neuron visualization. ``None`` means "the preset's default"."""

    preset: Literal["robust", "simonyan", "yosinski", "maco"] = field(default="robust", metadata={
        "help": "robust (Fourier+decorrelation+transforms, clearest), simonyan (zeros, L2, plain ascent), "
                "yosinski (four periodic regularizers), maco (natural magnitude fixed, phase optimized, crops)"})
    steps: int = field(default=256, metadata={"help": "optimization steps (per octave)"})
    size: int = field(default=224, metadata={"help": "image size in pixels"})
    lr: float | None = field(default=None, metadata={
        "help": "learning rate (default: robust 0.05 Adam; simonyan/yosinski 0.01 px per normalized step; "
                "maco 1.0 NAdam)"})
    optimizer: Literal["adam", "sgd", "momentum", "lbfgs", "nadam"] | None = field(default=None, metadata={
        "help": "optimizer (default: adam for robust, sgd for simonyan/yosinski, nadam for maco)"})
    param: Literal["fourier", "decorrelated", "pixel", "generator", "maco"] | None = field(default=None, metadata={
        "help": "image parameterization (default: fourier for robust, maco for maco, pixel otherwise); "
                "generator needs a generator module (Python API)"})
    decay_power: float = field(default=1.0, metadata={
        "help": "Fourier 1/f^decay scaling exponent (1.5: larger, more vivid structures; saturates after ~150 steps)"})
    l2: float | None = field(default=None, metadata={
        "help": "L2 penalty weight lambda on ||I - mean||^2 (default: 0.3 simonyan, 0 otherwise)"})
    tv: float = field(default=0.0, metadata={"help": "total-variation penalty weight"})
    transforms: Literal["standard", "light", "none", "crops"] | None = field(default=None, metadata={
        "help": "robustness transforms (default: standard for robust, light for yosinski, none for simonyan, "
                "crops for maco: random crops of the canvas with noise)"})
    yosinski_set: int = field(default=1, metadata={"help": "row of Yosinski 2015 Table 1 (1-4) for the yosinski preset"})
    blur_sigma: float | None = field(default=None, metadata={"help": "override the Yosinski blur width (px)"})
    blur_every: int | None = field(default=None, metadata={"help": "override the Yosinski blur period (steps)"})
    decay: float | None = field(default=None, metadata={"help": "override the Yosinski L2 decay"})
    norm_pct: float | None = field(default=None, metadata={"help": "override the Yosinski small-norm clip percentile"})
    contribution_pct: float | None = field(default=None, metadata={
        "help": "override the Yosinski small-contribution clip percentile"})
    octaves: int = field(default=1, metadata={"help": "octaves (multi-resolution; pixel parameterizations)"})
    octave_scale: float = field(default=1.4, metadata={"help": "size ratio between octaves"})
    patience: int | None = field(default=None, metadata={"help": "stop after this many steps without improvement"})
    seed: int = field(default=0, metadata={"help": "random seed (same seed, same image)"})
    canvas: int = field(default=512, metadata={
        "help": "maco: side of the optimized canvas in px (crops of it are resized to --size)", "range": (16, 2048)})
    crops: int = field(default=32, metadata={"help": "maco: random crops of the canvas per step", "range": (1, 256)})
    box_start: float = field(default=0.5, metadata={
        "help": "maco: crop side at the first step, as a fraction of the canvas", "range": (0.05, 1.0)})
    box_end: float = field(default=0.05, metadata={
        "help": "maco: crop side at the last step (linear schedule)", "range": (0.05, 1.0)})
    crop_noise: float = field(default=0.04, metadata={
        "help": "maco: std of the noise added to each crop, pixel units (Xplique's 0.08 on a -1..1 range)",
        "range": (0.0, 1.0)})
    spectrum: str = field(default="samples:200", metadata={
        "help": "maco: images the fixed magnitude spectrum is estimated from (samples:N, imagenet20, a folder, "
                "files, or a tensor); cached under convlens's cache folder. Python API only: a form field naming "
                "server folders would let the web lab read any folder", "cli": False})
    code_clip: float | None = field(default=3.0, metadata={
        "help": "generator param: clip the code to [-clip, clip] (activation-range clipping)", "cli": False})


@dataclass
class Visualization:
    """Result of a visualization: ``images`` (N, 3, H, W) in [0, 1] (the best step of each), ``labels``,
    ``scores`` (N,) the objective value of each image, ``optim`` the loop's full result."""

    images: torch.Tensor
    labels: list[str]
    scores: torch.Tensor
    optim: OptimResult
    config: VizConfig
    transparency: torch.Tensor | None = None  # maco: (N, 1, H, W) in [0, 1], accumulated |input gradients|
    unit: dict | None = None  # what is shown: {"kind": "class", "index": [...]} or {"kind": "channel"|"neuron",
    #                           "layer": ..., "channels": [...]} (read by ``evidence``)

    def evidence(self, model: Model, images="samples:300", k: int = 6, **kwargs) -> Evidence:
        """Natural exemplars, plausibility and transferability of these images
        (``convlens.natural_evidence(model, self, images, k, **kwargs)``)."""
        return natural_evidence(model, self, images, k, **kwargs)

    def transparent(self, background: float = 1.0) -> torch.Tensor:
        """maco: the images over a ``background`` grey level with the transparency map as opacity,
        ``alpha * image + (1 - alpha) * background`` (N, 3, H, W); other presets: the images."""
        if self.transparency is None:
            return self.images
        a = self.transparency.to(self.images)
        return a * self.images + (1 - a) * background


def resolve(cfg: VizConfig) -> VizConfig:
    """Fill the preset's defaults into the ``None`` fields."""
    if cfg.preset not in PRESETS:
        raise ConvlensError(f"unknown preset '{cfg.preset}'; choose {', '.join(PRESETS)}")
    robust = cfg.preset == "robust"
    d = dict(lr=0.05 if robust else 0.01, optimizer="adam" if robust else "sgd",
             param="fourier" if robust else "pixel", l2=0.3 if cfg.preset == "simonyan" else 0.0,
             transforms={"robust": "standard", "yosinski": "light", "simonyan": "none", "maco": "crops"}[cfg.preset])
    if cfg.preset == "maco":
        d.update(lr=1.0, optimizer="nadam", param="maco")
    if cfg.param == "generator" and cfg.lr is None:
        d["lr"] = 0.05
        d["optimizer"] = "adam"
    return replace(cfg, **{k: v for k, v in d.items() if getattr(cfg, k) is None})


def _transforms(name: str, size: int, cfg: VizConfig | None = None):
    if name == "crops":
        return MacoCrops(cfg.size, cfg.crops, cfg.steps, cfg.box_start, cfg.box_end, cfg.crop_noise)
    if name == "standard":
        return T.standard(scale=size / 224)
    if name == "light":
        return T.light()
    if name in ("none", None):
        return None
    raise ConvlensError(f"unknown transforms '{name}'; choose standard, light, none or crops")


def _regularizers(cfg: VizConfig) -> list:
    if cfg.preset != "yosinski":
        return []
    if cfg.yosinski_set not in R.YOSINSKI_SETS:
        raise ConvlensError(f"yosinski_set must be one of {sorted(R.YOSINSKI_SETS)}, got {cfg.yosinski_set}")
    decay, width, every, npct, cpct = R.YOSINSKI_SETS[cfg.yosinski_set]
    pick = lambda v, d: d if v is None else v  # noqa: E731
    return R.yosinski(pick(cfg.decay, decay), pick(cfg.blur_sigma, width), pick(cfg.blur_every, every),
                      pick(cfg.norm_pct, npct), pick(cfg.contribution_pct, cpct))


def build_param(model: Model, cfg: VizConfig, batch: int, init: torch.Tensor | None = None,
                generator: torch.nn.Module | None = None, code_shape=None) -> Param:
    """The parameterization a config asks for (``init``: starting images for pixel parameterizations)."""
    g = torch.Generator().manual_seed(cfg.seed)
    if cfg.param == "generator":
        if generator is None:
            raise ConvlensError("param='generator' needs generator=<nn.Module mapping codes to images>")
        rng = None if cfg.code_clip is None else (-cfg.code_clip, cfg.code_clip)
        return GeneratorParam(generator, code_shape=code_shape, batch=batch, code_range=rng,
                              output=getattr(generator, "output_range", "unit"), generator_rng=g)
    if cfg.param == "maco":
        return MacoParam(natural_magnitude(cfg.spectrum, cfg.canvas), batch, cfg.canvas, generator=g)
    mean = model.mean.flatten().cpu()
    if cfg.param == "pixel":
        return make_param("pixel", batch=batch, size=cfg.size, init=init if init is not None else "mean",
                          background=mean, generator=g)
    return make_param(cfg.param, batch=batch, size=cfg.size, init=init, generator=g, decay_power=cfg.decay_power)


def run_viz(model: Model, objective: O.Objective, cfg: VizConfig, batch: int, labels: Sequence[str], *,
            init: torch.Tensor | None = None, generator=None, code_shape=None, extra: O.Objective | None = None,
            progress=None, callback: Callable[[StepInfo], bool | None] | None = None,
            unit: dict | None = None) -> Visualization:
    """Shared driver of the visualization recipes: preset -> param, penalties, transforms, the loop."""
    cfg = resolve(cfg)
    param = build_param(model, cfg, batch, init, generator, code_shape)
    if cfg.transforms == "crops" and cfg.octaves > 1:
        raise ConvlensError("crops (maco) run at one scale; use octaves=1 (the shrinking crops replace octaves)")
    tf = _transforms(cfg.transforms, int(param.image().shape[-1]), cfg)
    obj = crop_mean(objective, cfg.crops) if isinstance(tf, MacoCrops) else objective
    if cfg.l2:
        obj = obj - cfg.l2 * O.l2(model.mean.flatten())
    if cfg.tv:
        obj = obj - cfg.tv * O.tv()
    if extra is not None:
        obj = obj + extra
    res = optimize(model, obj, param, steps=cfg.steps, optimizer=cfg.optimizer, lr=cfg.lr,
                   transforms=tf, regularizers=_regularizers(cfg),
                   normalize_grad=cfg.optimizer in ("sgd", "momentum"), octaves=cfg.octaves,
                   octave_scale=cfg.octave_scale, callback=callback, progress=progress, seed=cfg.seed,
                   patience=cfg.patience)
    # report the *untransformed* score of the returned images (the loop's values saw transforms)
    images = res.images if cfg.transforms != "none" else res.best
    scores = objective_value(model, objective, images)
    alpha = None
    if isinstance(tf, MacoCrops) and tf.transparency is not None:
        alpha = transparency_map(tf.transparency.cpu(), blur=cfg.canvas / 128)
    return Visualization(images, list(labels), scores.cpu(), res, cfg, alpha, unit)


def _config(config: VizConfig | None, overrides: dict) -> VizConfig:
    cfg = config or VizConfig()
    bad = set(overrides) - set(VizConfig.__dataclass_fields__)
    if bad:
        raise ConvlensError(f"unknown option(s) {', '.join(sorted(bad))}; see convlens.VizConfig")
    return replace(cfg, **overrides)


def visualize_class(model: Model, target, config: VizConfig | None = None, *, generator=None, code_shape=None,
                    progress=None, callback=None, **overrides) -> Visualization:
    """Images that maximize class scores (before softmax), one per target, optimized together in a batch.

    Maximizes ``S_c(I) - lambda ||I - mean||^2`` (Simonyan et al. 2014) under the chosen preset
    (see the module doc): ``simonyan``, ``yosinski`` or ``robust`` (default, the clearest).

    Args:
        model: a ``convlens.Model``.
        target: a class index or name, or a list of them (one image each).
        config: a ``VizConfig``; keyword ``overrides`` replace its fields (``preset="yosinski"``, ``steps=200``).
        generator: with ``param="generator"``, the generator to optimize the code of, and
        code_shape: the shape of that code.
        progress: ``progress(done, total)``; callback: ``callback(StepInfo)`` per step (True stops).
    Returns:
        ``Visualization`` with ``images`` (N, 3, size, size) in [0, 1], ``labels`` the class names.
    Example:
        >>> v = convlens.visualize_class(model, ["flamingo", "pelican"], steps=200)
    """
    targets = target if isinstance(target, (list, tuple)) else [target]
    idx = [model.class_index(t) for t in targets]
    labels = [model.classes[i] if model.classes else str(i) for i in idx]
    cfg = _config(config, overrides)
    return run_viz(model, O.class_logit(idx), cfg, len(idx), labels, generator=generator, code_shape=code_shape,
                   progress=progress, callback=callback, unit={"kind": "class", "index": idx})


def _channels(model: Model, layer: str, channel) -> list[int]:
    chans = list(channel) if isinstance(channel, (list, tuple, range)) else [int(channel)]
    shape = model.layer_info(layer).shape
    n = shape[0] if shape else None
    for c in chans:
        if n is not None and not 0 <= int(c) < n:
            raise ConvlensError(f"channel {c} out of range 0..{n - 1} for layer {layer}")
    return [int(c) for c in chans]


def visualize_channel(model: Model, layer: str, channel, config: VizConfig | None = None, *, generator=None,
                      code_shape=None, progress=None, callback=None, **overrides) -> Visualization:
    """Images maximizing the mean activation of a channel of an inner layer (one per channel, batched).

    Maximizes ``mean_{y,x} A_l[c, y, x](I)`` with the preset's regularization (Yosinski et al. 2015;
    Olah et al. 2017).

    Args:
        layer: dotted layer name (``model.layers()``); channel: an index or a list of indices.
    Example:
        >>> v = convlens.visualize_channel(model, "features.10", [3, 7], steps=128)
    """
    chans = _channels(model, layer, channel)
    cfg = _config(config, overrides)
    return run_viz(model, O.channel(layer, chans), cfg, len(chans), [f"{layer}:{c}" for c in chans],
                   generator=generator, code_shape=code_shape, progress=progress, callback=callback,
                   unit={"kind": "channel", "layer": layer, "channels": chans})


def visualize_neuron(model: Model, layer: str, channel, unit: tuple[int, int] | None = None,
                     config: VizConfig | None = None, *, generator=None, code_shape=None, progress=None,
                     callback=None, **overrides) -> Visualization:
    """Images maximizing one neuron ``A_l[c, y, x]`` (``unit=(y, x)``, default the centre of the map).

    The image only matters inside the neuron's receptive field; the rest stays near the start.
    Example:
        >>> v = convlens.visualize_neuron(model, "features.6", 5, unit=(14, 14))
    """
    chans = _channels(model, layer, channel)
    cfg = _config(config, overrides)
    return run_viz(model, O.neuron(layer, chans, unit), cfg, len(chans),
                   [f"{layer}:{c}@{unit or 'centre'}" for c in chans], generator=generator, code_shape=code_shape,
                   progress=progress, callback=callback,
                   unit={"kind": "neuron", "layer": layer, "channels": chans, "position": unit})


__all__ = ["VizConfig", "Visualization", "visualize_class", "visualize_channel", "visualize_neuron"]
