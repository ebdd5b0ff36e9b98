"""Unrecognizable images by evolution (Nguyen, Yosinski & Clune 2015, "Deep neural networks are easily
fooled", sections 2.2-2.3): no gradients of the network, only its output probability as the fitness
of images produced by a genome, either

* ``"cppn"``: a compositional pattern-producing network, a small MLP that maps each pixel's
  coordinates (x, y, r) to its colour through sine / Gaussian / tanh units (regular, repeating,
  symmetric patterns, the paper's striking images), or
* ``"direct"``: the pixels themselves (here a coarse grid of colours, bilinearly upsampled; the
  paper's direct encoding evolves every pixel and got nowhere on ImageNet).

The paper evolves CPPNs with NEAT (growing topologies) inside MAP-Elites over all 1,000 classes for
thousands of generations. Here the topology is fixed (``layers`` x ``hidden`` units) and its weights
evolve with a simple evolution strategy (Salimans et al. 2017): each generation samples ``population``
mirrored Gaussian perturbations of the mean genome, ranks them by log p(target), and moves the mean
along the rank-weighted perturbations (Adam); the best image ever evaluated is kept. A few hundred
network evaluations per class, so the confidences reached in seconds are far from the paper's
(which took days on GPUs); the figures are in docs/adversarial.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

import torch
import torch.nn.functional as F

from ..attribution.base import check_model
from ..errors import ConvlensError
from ..progress import ProgressFn, call
from ..render import grid
from .base import gradient_twin


@dataclass
class EvolveConfig:
    """Parameters of ``evolve_unrecognizable`` (an evolution strategy on a CPPN's weights or on pixels)."""

    encoding: Literal["cppn", "direct"] = field(default="cppn", metadata={
        "help": "cppn: a small coordinate network paints the image; direct: a coarse grid of pixel colours"})
    generations: int = field(default=60, metadata={"help": "maximum generations"})
    population: int = field(default=16, metadata={"help": "images evaluated per generation (mirrored pairs)"})
    sigma: float = field(default=0.5, metadata={"help": "mutation size (standard deviation of the perturbations)"})
    lr: float = field(default=0.2, metadata={"help": "Adam step on the mean genome"})
    size: int = field(default=128, metadata={"help": "image size in pixels"})
    hidden: int = field(default=8, metadata={"help": "cppn: units per hidden layer"})
    layers: int = field(default=3, metadata={"help": "cppn: hidden layers"})
    grid: int = field(default=16, metadata={"help": "direct: the grid of colours is grid x grid"})
    confidence: float = field(default=0.996, metadata={"help": "stop once the best image reaches this"})
    seed: int = field(default=0, metadata={"help": "seed of the first genome and the mutations"})


_ACTS = (torch.sin, lambda z: torch.exp(-z * z), torch.tanh)  # periodic, symmetric, sigmoidal (per unit, cycled)


class CPPN:
    """A fixed-topology CPPN: (x, y, r) -> ``layers`` x ``hidden`` units -> RGB (sigmoid).

    Unit j of every hidden layer uses ``_ACTS[j % 3]`` (sine, Gaussian, tanh). A genome is the flat
    vector of all weights and biases; ``render(genomes)`` paints a batch of them at once.
    """

    def __init__(self, hidden: int = 8, layers: int = 3, size: int = 128, scale: float = 3.0):
        self.shapes = [(3, hidden)] + [(hidden, hidden)] * (layers - 1) + [(hidden, 3)]
        self.size = int(size)
        lin = torch.linspace(-1, 1, self.size)
        yy, xx = torch.meshgrid(lin, lin, indexing="ij")
        r = torch.sqrt(xx * xx + yy * yy) / math.sqrt(2)
        self.coords = scale * torch.stack([xx, yy, r], -1).view(-1, 3)  # (S*S, 3)
        self.dim = sum(i * o + o for i, o in self.shapes)

    def render(self, genomes: torch.Tensor) -> torch.Tensor:
        """(P, dim) genomes -> (P, 3, size, size) images in [0, 1]."""
        P = genomes.shape[0]
        h = self.coords.expand(P, -1, -1)
        at = 0
        for k, (i, o) in enumerate(self.shapes):
            W = genomes[:, at:at + i * o].view(P, i, o)
            b = genomes[:, at + i * o:at + i * o + o].view(P, 1, o)
            at += i * o + o
            z = torch.baddbmm(b, h, W)
            if k == len(self.shapes) - 1:
                h = torch.sigmoid(z)
            else:
                h = torch.cat([_ACTS[j % 3](z[..., j:j + 1]) for j in range(o)], -1)
        return h.view(P, self.size, self.size, 3).permute(0, 3, 1, 2).contiguous()


class DirectEncoding:
    """A ``grid`` x ``grid`` x 3 genome of colour logits, sigmoid, upsampled bilinearly to ``size``."""

    def __init__(self, grid: int = 16, size: int = 128):
        self.grid, self.size, self.dim = int(grid), int(size), 3 * int(grid) ** 2

    def render(self, genomes: torch.Tensor) -> torch.Tensor:
        g = torch.sigmoid(genomes.view(-1, 3, self.grid, self.grid))
        return F.interpolate(g, size=(self.size, self.size), mode="bilinear", align_corners=False)


@dataclass
class Evolved:
    """``images`` (N, 3, S, S) the best image found per target, ``targets`` (N,), ``confidence`` (N,)
    its target probability, ``start_confidence`` (N,) the first mean genome's, ``generations`` (N,)
    run, ``evaluations`` (N,) images scored, ``history`` per target (best probability per generation),
    ``labels`` ("starfish 93.1%")."""

    images: torch.Tensor
    targets: torch.Tensor
    confidence: torch.Tensor
    start_confidence: torch.Tensor
    generations: list[int]
    evaluations: list[int]
    history: list[list[float]]
    labels: list[str]
    config: EvolveConfig
    interrupted: bool = False   # stopped by Ctrl-C / a cancel: the targets begun so far, each its best image

    def render(self, tile: int = 160):
        return grid(list(self.images), self.labels, ncol=len(self.labels), tile=tile, upscale="bilinear")


def evolve_unrecognizable(model, targets, config: EvolveConfig | None = None, *, progress: ProgressFn | None = None,
                          **overrides) -> Evolved:
    """Evolve images the model calls ``targets``, using only its output probabilities (Nguyen et al. 2015).

    Fitness: log p(target | image) through the model's folded twin. Evolution strategy on the genome
    (``EvolveConfig.encoding``: a CPPN's weights or a coarse pixel grid): ``population`` mirrored
    samples ``mean +- sigma * e`` per generation, centred ranks as weights, an Adam step on the mean
    along ``sum_i rank_i e_i``; the best image ever evaluated is returned, and a target stops as soon
    as it reaches ``confidence``.

    Args:
        model: a ``convlens.Model``. targets: a class (index / name) or a list, one image each.
        config: an ``EvolveConfig``; ``overrides``: its fields as keywords.
    Returns:
        ``Evolved`` (images, confidences before / after, generations, ``render()``: the row).
    Example:
        >>> e = convlens.evolve_unrecognizable(m, ["starfish", "king penguin"], generations=40); e.labels
    """
    cfg = replace(config or EvolveConfig(), **overrides)
    model = check_model(model)
    if cfg.encoding not in ("cppn", "direct"):
        raise ConvlensError(f"encoding must be 'cppn' or 'direct', got {cfg.encoding!r}")
    if cfg.generations < 1 or cfg.population < 2 or cfg.sigma <= 0 or cfg.lr <= 0:
        raise ConvlensError(f"need generations >= 1, population >= 2, sigma > 0, lr > 0; got {cfg.generations}, "
                            f"{cfg.population}, {cfg.sigma}, {cfg.lr}")
    if not 0 < cfg.confidence < 1:
        raise ConvlensError(f"confidence must be in (0, 1), got {cfg.confidence}")
    tlist = targets if isinstance(targets, (list, tuple)) else [targets]
    idx = [model.class_index(t) for t in tlist]
    enc = CPPN(cfg.hidden, cfg.layers, cfg.size) if cfg.encoding == "cppn" else DirectEncoding(cfg.grid, cfg.size)
    net = gradient_twin(model)
    dtype, dev = model.mean.dtype, model.device
    half = max(1, cfg.population // 2)

    def fitness(genomes: torch.Tensor, t: int):
        imgs = enc.render(genomes)
        with torch.inference_mode():
            lp = net(imgs.to(device=dev, dtype=dtype).contiguous(memory_format=torch.channels_last)).log_softmax(-1)
        return lp[:, t].float().cpu(), imgs

    images, conf, start_conf, gens, evals, hist = [], [], [], [], [], []
    total, done, interrupted = cfg.generations * len(idx), 0, False
    for n, t in enumerate(idx):
        gen = torch.Generator().manual_seed(cfg.seed + 1000 * n)
        mean = torch.randn(enc.dim, generator=gen)
        m1, m2 = torch.zeros(enc.dim), torch.zeros(enc.dim)
        try:
            f0, img0 = fitness(mean[None], t)
        except KeyboardInterrupt:   # before this target's first image: keep the targets already finished
            interrupted = True
            break
        best_f, best_img, curve, evaluated, g = float(f0[0]), img0[0], [], 1, 0
        start_conf.append(math.exp(best_f))
        state = {"best_f": best_f, "best_img": best_img, "curve": curve, "evaluated": evaluated, "done": done}
        try:
            g = _evolve_target(cfg, fitness, t, mean, m1, m2, gen, half, state, progress, total)
        except KeyboardInterrupt:   # keep this target's best image so far
            interrupted = True
            g = len(state["curve"])
        best_f, best_img, evaluated, done = state["best_f"], state["best_img"], state["evaluated"], state["done"]
        images.append(best_img)
        conf.append(math.exp(best_f))
        gens.append(g)
        evals.append(evaluated)
        hist.append(curve)
        if interrupted:
            break
    if not images:
        raise KeyboardInterrupt   # nothing finished to keep
    idx = idx[:len(images)]
    names = model.classes or []
    labels = [f"{names[i] if i < len(names) else i} {c:.1%}" for i, c in zip(idx, conf)]
    return Evolved(torch.stack(images).float(), torch.tensor(idx), torch.tensor(conf), torch.tensor(start_conf),
                   gens, evals, hist, labels, cfg, interrupted)


def _evolve_target(cfg, fitness, t, mean, m1, m2, gen, half, state, progress, total) -> int:
    """One target's evolution; ``state`` holds its best image, curve, counts, updated as it goes (so an
    interrupt keeps them). Returns the generations run."""
    g = 0
    for g in range(1, cfg.generations + 1):
        e = torch.randn(half, mean.numel(), generator=gen)
        e = torch.cat([e, -e])  # mirrored pairs
        f, imgs = fitness(torch.cat([mean[None], mean + cfg.sigma * e]), t)
        state["evaluated"] += f.numel()
        k = int(f.argmax())
        if float(f[k]) > state["best_f"]:
            state["best_f"], state["best_img"] = float(f[k]), imgs[k]
        state["curve"].append(math.exp(state["best_f"]))
        ranks = f[1:].argsort().argsort().float()
        u = ranks / (len(ranks) - 1) - 0.5  # centred ranks in [-0.5, 0.5]
        grad = (u[:, None] * e).sum(0) / (len(u) * cfg.sigma)
        m1 = 0.9 * m1 + 0.1 * grad  # Adam ascent on the mean genome
        m2 = 0.999 * m2 + 0.001 * grad * grad
        mean = mean + cfg.lr * (m1 / (1 - 0.9 ** g)) / (torch.sqrt(m2 / (1 - 0.999 ** g)) + 1e-8)
        state["done"] += 1
        call(progress, state["done"], total)
        if math.exp(state["best_f"]) >= cfg.confidence:
            break
    return g
