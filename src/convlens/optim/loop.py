"""The one optimization loop shared by every synthesis recipe (driver 2 of the design).

    result = optimize(model, objective, param, steps=256, optimizer="adam", lr=0.05,
                      transforms=transforms.standard(), seed=0)
    result.images        # (N, 3, H, W) in [0, 1]: the last images
    result.best          # the best image of each batch item (by objective value), e.g. after Ctrl-C

Each step: ``img = param()``; ``x = transforms(img)``; run the network only up to the deepest layer
the objective reads (``Probe(stop=True)``; the full network only if it reads the logits);
``loss = -objective(features).sum()``; gradients by ``torch.autograd.grad`` on the parameterization's
own parameters only (no ``.grad`` ever lands on the model); optional gradient normalization;
optimizer step; ``param.project()`` (clamp / eps-ball / code range); Yosinski's periodic operations.
Octaves run the same loop at growing sizes (``param.resized``). A callback per step sees the images
(for previews) and can stop the run; ``progress(done, total)`` drives a bar; ``patience`` stops
early; Ctrl-C ends the loop and still returns the best images so far (``stopped == "interrupted"``).

Recipes plug in by choosing the parameterization (pixels, Fourier, a generator's code, a generator's
weights), the objective (logits, channels, Gram matrices, cross-entropy) and a projection - never by
changing this loop.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from ..drivers.forward import thread_budget
from ..errors import ConvlensError
from ..models.model import Model, optimizer_images
from ..probe.probe import Probe
from ..progress import ProgressFn
from .objectives import Features, Objective, as_objective
from .params import Param


@dataclass
class StepInfo:
    """Passed to ``callback`` after every step: ``value`` (N,) and ``image`` (N, 3, H, W) are detached
    and belong to the images evaluated at this step (before the update)."""

    step: int
    total: int
    octave: int
    value: torch.Tensor
    image: torch.Tensor
    param: Param


@dataclass
class OptimResult:
    """What ``optimize`` returns.

    Attributes:
        images: (N, 3, H, W) final images in [0, 1]; best: the best-scoring image seen per item.
        best_values: (N,) objective value of ``best``; history: (steps, N) objective per step.
        steps: steps run; stopped: "done", "early" (patience), "callback" or "interrupted" (Ctrl-C).
        seconds: wall time; param: the final parameterization (to continue or inspect).
    """

    images: torch.Tensor
    best: torch.Tensor
    best_values: torch.Tensor
    history: torch.Tensor
    steps: int
    stopped: str
    seconds: float
    param: Param = field(repr=False)

    @property
    def values(self) -> torch.Tensor:
        """(N,) objective of the last step."""
        return self.history[-1] if len(self.history) else torch.full_like(self.best_values, float("nan"))


def make_optimizer(name, params: list[torch.Tensor], lr: float):
    """"adam", "nadam", "sgd" (momentum 0.9 if name is "momentum"), "lbfgs", or a callable ``params -> Optimizer``."""
    if callable(name):
        return name(params)
    name = str(name).lower()
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "nadam":
        return torch.optim.NAdam(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    if name == "lbfgs":
        return torch.optim.LBFGS(params, lr=lr, max_iter=1, history_size=20, line_search_fn="strong_wolfe")
    raise ConvlensError(f"unknown optimizer '{name}'; choose adam, nadam, sgd, momentum or lbfgs")


def octave_sizes(size: tuple[int, int], octaves: int, scale: float) -> list[tuple[int, int]]:
    """Sizes from the smallest octave to ``size``: ``size / scale**k`` for k = octaves-1 .. 0."""
    h, w = size
    return [(max(8, round(h / scale ** k)), max(8, round(w / scale ** k))) for k in range(octaves - 1, -1, -1)]


class _Runner:
    """Evaluates an objective on images through the truncated network."""

    def __init__(self, model: Model, objective: Objective):
        self.model, self.objective = model, objective
        self.layers = [n for n in objective.layers]
        self.needs_net = bool(self.layers) or objective.logits

    def __call__(self, image: torch.Tensor, x: torch.Tensor, probe: Probe | None) -> torch.Tensor:
        acts, logits = {}, None
        if probe is not None:
            logits = probe.run(x)
            acts = probe.activations
        elif self.objective.logits:
            logits = self.model(x)
        return self.objective(Features(image=image, input=x, acts=acts, logits=logits))


def objective_value(model: Model, objective: Objective, images: torch.Tensor) -> torch.Tensor:
    """The objective on ``images`` (N, 3, H, W) as they are: no transforms, no gradient (one forward,
    truncated after the deepest layer the objective reads unless it needs the logits)."""
    runner = _Runner(model, objective)
    with torch.no_grad():
        if not runner.layers:
            return runner(images, images, None)
        with Probe(model, runner.layers, stop=not objective.logits) as p:
            return runner(images, images, p)


def _tiles(n: int, tile: int) -> list[tuple[int, int]]:
    """Non-overlapping [start, end) ranges covering 0..n (a per-position sum is counted once)."""
    return [(s, min(s + tile, n)) for s in range(0, n, tile)]


def optimize(model: Model, objective: Objective | Callable, param: Param, *, steps: int = 256,
             optimizer="adam", lr: float = 0.05, transforms: Callable | None = None,
             regularizers: Sequence = (), normalize_grad: bool = False, octaves: int = 1,
             octave_scale: float = 1.4, callback: Callable[[StepInfo], bool | None] | None = None,
             progress: ProgressFn | None = None, seed: int | None = 0, patience: int | None = None,
             tol: float = 1e-4, tile: int | None = None, threads: int | None = None) -> OptimResult:
    """Maximize ``objective`` over the images produced by ``param``.

    Args:
        model: a ``convlens.Model`` (frozen; never modified).
        objective: an ``Objective`` (value per image to maximize; see ``objectives``).
        param: a ``Param`` (``PixelParam``, ``FourierParam``, ``GeneratorParam``...); it is updated in place.
        steps: steps per octave (256).
        optimizer: "adam" (default), "sgd", "momentum", "lbfgs" or ``params -> torch.optim.Optimizer``.
        lr: learning rate (pixel units per step for SGD with ``normalize_grad``).
        transforms: ``t(images, generator) -> images`` applied before the network (see ``transforms``).
        regularizers: Yosinski periodic operations (see ``regularizers``); need a pixel parameterization.
        normalize_grad: divide each image's gradient by its mean absolute value (DeepDream's step).
        octaves: run at ``size / octave_scale**k`` for k = octaves-1..0, upsampling between.
        octave_scale: see ``octaves``.
        callback: called with a ``StepInfo`` after each step; returning True stops the run.
        progress: ``progress(done, total)``.
        seed: seeds the ``torch.Generator`` of the transforms (same seed, same images).
        patience: stop when the mean objective has not improved by ``tol * |best|`` for ``patience`` steps.
        tol: see ``patience``.
        tile: evaluate the network on tiles of at most ``tile`` pixels and sum (bounded memory on large
            images; the objective must be a sum over positions, e.g. DeepDream).
        threads: torch threads for the run (None: unchanged).
    Returns:
        ``OptimResult`` (final and best images, history, why it stopped).
    Example:
        >>> import convlens, torch
        >>> from convlens.optim import objectives as obj, params
        >>> m = convlens.Model.wrap(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()), classes=["a"])
        >>> r = convlens.optimize(m, obj.channel("0", 1), params.make_param("pixel", size=16), steps=5)
    """
    if not isinstance(model, Model):
        raise ConvlensError("optimize needs a convlens.Model; wrap your module with convlens.Model.wrap(module)")
    if not isinstance(param, Param):
        raise ConvlensError(f"param must be a convlens Param (see convlens.optim.params), got {type(param).__name__}")
    objective = as_objective(objective)
    if steps < 1 or octaves < 1:
        raise ConvlensError(f"steps and octaves must be >= 1, got steps={steps}, octaves={octaves}")
    if regularizers and param.pixels is None:
        raise ConvlensError("Yosinski's regularizers edit pixels; use param='pixel' with them")
    device = model.device
    param = param.to(device)
    gen = torch.Generator(device="cpu")
    gen.manual_seed(0 if seed is None else int(seed))
    runner = _Runner(model, objective)
    transforms = transforms or (lambda x, g: x)

    full = tuple(param().shape[-2:])
    sizes = octave_sizes(full, octaves, octave_scale) if octaves > 1 else [full]
    if octaves > 1 and sizes[0] != full:
        param = param.resized(sizes[0]).to(device)

    total = steps * len(sizes)
    history: list[torch.Tensor] = []
    best = best_values = None
    stopped, done = "done", 0
    t0 = time.perf_counter()
    probe = Probe(model, runner.layers, stop=not objective.logits) if runner.layers else None
    try:
        with thread_budget(threads), optimizer_images(), (probe if probe is not None else _null()):
            for o, size in enumerate(sizes):
                if o > 0:
                    param = param.resized(size).to(device)
                    best = None  # best images of a smaller octave are not comparable
                params = [p for p in param.parameters()]
                opt = make_optimizer(optimizer, params, lr)
                since_best, best_mean = 0, -float("inf")
                for _ in range(steps):
                    rec = {}

                    def closure():
                        img = param()
                        x = transforms(img, gen)
                        if tile and max(x.shape[-2:]) > tile:
                            value = _tiled_value(runner, img, x, probe, params, tile)
                        else:
                            value = runner(img, x, probe)
                            loss = -value.sum()
                            grads = torch.autograd.grad(loss, params, allow_unused=True)
                            for p, g in zip(params, grads):
                                p.grad = torch.zeros_like(p) if g is None else g
                        if normalize_grad:
                            for p in params:
                                dims = tuple(range(1, p.grad.ndim))
                                p.grad = p.grad / (p.grad.abs().mean(dim=dims, keepdim=True) + 1e-8)
                        if "value" not in rec:
                            rec["value"], rec["image"] = value.detach(), img.detach()
                            rec["grad"] = [-p.grad.clone() for p in params] if regularizers else None
                        return -value.detach().sum()

                    if isinstance(opt, torch.optim.LBFGS):
                        opt.step(closure)
                    else:
                        closure()
                        opt.step()
                    with torch.no_grad():
                        param.project()
                        if regularizers:
                            _apply_regularizers(param, regularizers, done, rec["grad"][0])
                    value, img = rec["value"], rec["image"]
                    history.append(value.cpu())
                    if best is None or best.shape != img.shape:
                        best, best_values = img.clone(), value.clone()
                    else:
                        better = value > best_values
                        if bool(better.any()):
                            best[better] = img[better]
                            best_values = torch.where(better, value, best_values)
                    done += 1
                    if progress is not None:
                        progress(done, total)
                    if callback is not None and callback(StepInfo(done, total, o, value, img, param)):
                        stopped = "callback"
                        break
                    mean = float(value.mean())
                    if not torch.isfinite(value).all():
                        raise ConvlensError("the objective became NaN/inf; lower the learning rate (--lr)")
                    if patience:
                        if mean > best_mean + tol * abs(best_mean if best_mean > -float("inf") else 0.0):
                            best_mean, since_best = mean, 0
                        else:
                            since_best += 1
                            if since_best >= patience:
                                stopped = "early"
                                break
                if stopped in ("callback",):
                    break
    except KeyboardInterrupt:
        stopped = "interrupted"
    final = param.image()
    if best is None:
        best, best_values = final.clone(), torch.full((final.shape[0],), float("nan"))
    elif best.shape != final.shape:  # interrupted between octaves
        best = final.clone()
    hist = torch.stack(history) if history else torch.empty(0, final.shape[0])
    return OptimResult(final, best.clamp(0, 1), best_values.cpu(), hist, done, stopped, time.perf_counter() - t0, param)


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return False


def _tiled_value(runner: _Runner, img, x, probe, params, tile: int) -> torch.Tensor:
    """Objective summed over tiles of ``x``; gradients accumulated tile by tile, then sent through
    the transforms and the parameterization in one backward (memory: one tile's activations)."""
    xd = x.detach().requires_grad_(True)
    gx = torch.zeros_like(xd)
    total = torch.zeros(x.shape[0], device=x.device)
    for y0, y1 in _tiles(x.shape[-2], tile):
        for x0, x1 in _tiles(x.shape[-1], tile):
            v = runner(img.detach(), xd[..., y0:y1, x0:x1], probe)
            g, = torch.autograd.grad(-v.sum(), xd)
            gx += g
            total += v.detach()
    grads = torch.autograd.grad(x, params, grad_outputs=gx, allow_unused=True)
    for p, g in zip(params, grads):
        p.grad = torch.zeros_like(p) if g is None else g
    return total


def _apply_regularizers(param: Param, regularizers, step: int, ascent_grad) -> None:
    x = param.pixels
    bg = getattr(param, "background", None)
    bg = torch.zeros(1, x.shape[1], 1, 1, device=x.device) if bg is None else bg
    xc = x - bg
    changed = False
    for r in regularizers:
        every = max(1, int(getattr(r, "every", 1)))
        if (step + 1) % every == 0:
            xc = r(xc, ascent_grad)
            changed = True
    if changed:
        x.copy_(xc + bg)
        param.project()


__all__ = ["optimize", "OptimResult", "StepInfo", "make_optimizer", "octave_sizes"]
