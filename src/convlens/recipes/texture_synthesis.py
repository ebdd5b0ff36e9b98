"""Texture synthesis from a sample by any of the lecture's four methods, behind one config.

The front doors' "texture" technique: a sample (name, path or image), optionally centre-cropped and
shrunk, then Efros-Leung (1999), Wei-Levoy (2000), image quilting (Efros & Freeman 2001) or Gram
matching on a network (Gatys, Ecker & Bethge 2015). Each method keeps its own defaults (e.g. the
window: 11 for Efros-Leung, 9 for Wei-Levoy) unless the config sets them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from ..fields import resolve_config
from ..models import load_model
from ..texture import efros_leung, quilting, wei_levoy
from ..texture.samples import prepare_sample
from .style import default_style_model, synthesize_texture, texture_layer_sets

METHODS = ("efros-leung", "wei-levoy", "quilting", "gram")


@dataclass
class TextureSynthesisConfig:
    """Which method, how big, and each method's knobs (None: the method's own default)."""

    method: Literal["efros-leung", "wei-levoy", "quilting", "gram"] = field(default="efros-leung", metadata={
        "help": "algorithm: efros-leung (pixel by pixel), wei-levoy (multi-resolution), quilting (blocks), "
                "gram (Gatys: matching a network's Gram matrices)"})
    size: int = field(default=128, metadata={"help": "output size in pixels (square)", "range": (1, None)})
    crop: int = field(default=0, metadata={"help": "centre crop of the sample, in raw pixels (0: whole)",
                                           "range": (0, None)})
    sample_size: int = field(default=96, metadata={
        "help": "then resize the sample's longer side to this (0: keep; 64-128 px samples keep the non-neural "
                "methods fast)", "range": (0, None)})
    window: int | None = field(default=None, metadata={
        "help": "neighbourhood size (default: efros-leung 11, wei-levoy 9)", "range": (1, None)})
    epsilon: float = field(default=0.1, metadata={"help": "Efros-Leung: candidates within (1+eps) of the best",
                                                  "range": (0, None)})
    block: int = field(default=32, metadata={"help": "quilting block size", "range": (1, None)})
    levels: int = field(default=3, metadata={"help": "Wei-Levoy pyramid levels", "range": (1, None)})
    search: Literal["exact", "tsvq"] = field(default="exact", metadata={"help": "Wei-Levoy search: exact or tsvq"})
    steps: int = field(default=100, metadata={"help": "optimizer steps for --method gram", "range": (1, None)})
    layers: str | None = field(default=None, metadata={
        "help": "--method gram: style layers, comma-separated (default: the network's, e.g. relu1_1..relu5_1)"})
    layer_sets: bool = field(default=False, metadata={
        "help": "--method gram: the lecture's figure, one texture per growing layer set (first 1, 2, ... layers)"})
    seed: int = field(default=0, metadata={"help": "random seed (same seed, same output)"})


@dataclass
class TextureSynthesis:
    """The sample as used, the method's result (``image``, ``seconds``, ``stopped``) and, for Gram layer sets,
    the figure of every set."""

    sample: torch.Tensor
    result: Any
    method: str
    figure: Any = None

    @property
    def image(self):
        return self.figure if self.figure is not None else self.result.image

    def summary(self) -> dict:
        return {"method": self.method, "size": list(self.result.image.shape[-2:]),
                "seconds": round(float(getattr(self.result, "seconds", 0.0)), 3), "stopped": self.result.stopped}


def _layers(v):
    if isinstance(v, str):
        return tuple(s.strip() for s in v.split(",") if s.strip()) or None
    return v


def texture_synthesis(sample, config: TextureSynthesisConfig | None = None, *, model=None, progress=None,
                      callback=None, **overrides) -> TextureSynthesis:
    """Synthesize a texture from ``sample`` (a sample name, path, array or (1, 3, H, W) tensor in [0, 1]).

    ``model``: the network for ``method="gram"`` (a name or ``Model``; default ``default_style_model()``).
    ``progress(done, total)`` and, for gram, ``callback(step_info)`` as everywhere; Ctrl-C returns what was
    synthesized so far (``result.stopped == "interrupted"``).

    Example:
        >>> t = convlens.texture_synthesis("brick", crop=256, sample_size=80, method="quilting")
    """
    c = resolve_config(TextureSynthesisConfig, config, overrides)
    img = prepare_sample(sample, c.crop, c.sample_size)
    if c.method == "efros-leung":
        r = efros_leung(img, c.size, window=c.window or 11, epsilon=c.epsilon, seed=c.seed, progress=progress)
    elif c.method == "wei-levoy":
        r = wei_levoy(img, c.size, window=c.window or 9, levels=c.levels, search=c.search, seed=c.seed,
                      progress=progress)
    elif c.method == "quilting":
        r = quilting(img, c.size, block=c.block, seed=c.seed, progress=progress)
    else:
        net = model if model is not None and not isinstance(model, str) else load_model(model or default_style_model())
        kw = dict(size=c.size, sample_size=max(img.shape[-2:]), steps=c.steps, seed=c.seed, layers=_layers(c.layers),
                  progress=progress)
        if c.layer_sets:
            rs, fig = texture_layer_sets(net, img, **kw)
            return TextureSynthesis(img, rs[-1], c.method, fig)
        r = synthesize_texture(net, img, callback=callback, **kw)
    return TextureSynthesis(img, r, c.method)
