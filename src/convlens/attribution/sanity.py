"""Sanity checks for saliency maps (Adebayo et al. 2018): does the map depend on the model at all?

Model-parameter randomization test: re-initialize the network's weights (cascading from the
logits down to the first layer, or one layer at a time) and compare each new map with the
original by Spearman rank correlation. A map that stays highly correlated while the weights are
destroyed explains the image (an edge detector), not the model. Guided backprop and deconvnet are
known to fail this test; plain gradients and Grad-CAM pass.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from typing import Callable

import numpy as np
import torch

from ..errors import ConvlensError
from ..fields import resolve_config
from .base import check_images, check_model, resolve_targets
from .gradcam import grad_cam
from .guided import deconvnet, guided_backprop
from .integrated import integrated_gradients
from .occlusion import occlusion
from .rise import rise
from .scorecam import score_cam
from .saliency import saliency, smoothgrad
from ..render import grid, overlay


@dataclass
class SanityResult:
    """rows: (randomized-up-to layer, Spearman rho of |map|, Spearman rho of the signed map);
    maps: the original map then one per row, (H, W) each; method: its name."""

    method: str
    rows: list[tuple[str, float, float]]
    maps: list[torch.Tensor]
    cascade: bool
    image: torch.Tensor
    info: dict = field(default_factory=dict)

    @property
    def final_rho(self) -> float:
        return self.rows[-1][1] if self.rows else float("nan")

    @property
    def median_rho(self) -> float:
        return float(np.median([r for _, r, _ in self.rows])) if self.rows else float("nan")

    @property
    def depends_on_model(self) -> bool:
        """True when, over the randomization steps, the median rank correlation of |map| with the
        original is below 0.5 (the map changes as the weights are destroyed)."""
        return self.median_rho < 0.5

    def summary(self) -> str:
        head = f"{self.method}: {'cascading' if self.cascade else 'independent'} randomization (Adebayo et al. 2018)"
        lines = [head, f"{'randomized':<28}{'rho |map|':>10}{'rho map':>10}"]
        lines += [f"{name:<28}{r:>10.3f}{rs:>10.3f}" for name, r, rs in self.rows]
        verdict = (f"median rho {self.median_rho:.2f}: " + ("the map depends on the weights" if self.depends_on_model
                   else "WARNING: the map barely changes as the weights are randomized"))
        return "\n".join(lines + [verdict])

    def render(self, tile: int = 128):
        """The original map then each randomized one, with their rank correlations (PIL image)."""
        imgs = [overlay(self.image[0], m, mode="abs") for m in self.maps]
        labels = ["original"] + [f"{n}: {r:.2f}" for n, r, _ in self.rows]
        return grid(imgs, labels, ncol=len(imgs), tile=tile, upscale="bilinear",
                    title=f"{self.method}: Spearman rho with the original as layers are randomized")


def methods() -> dict[str, Callable]:
    """Every attribution method by name (with the CLI's short aliases)."""
    return {"saliency": saliency, "smoothgrad": smoothgrad, "occlusion": occlusion,
            "guided_backprop": guided_backprop, "guided": guided_backprop, "deconvnet": deconvnet,
            "grad_cam": grad_cam, "gradcam": grad_cam, "integrated_gradients": integrated_gradients,
            "ig": integrated_gradients, "rise": rise, "score_cam": score_cam, "scorecam": score_cam}


def _method(method) -> tuple[str, Callable]:
    table = methods()
    if isinstance(method, str):
        if method not in table:
            raise ConvlensError(f"unknown method '{method}'; choose one of {', '.join(table)}")
        return method, table[method]
    if callable(method):
        return getattr(method, "__name__", "method"), method
    raise ConvlensError("method must be a name ('saliency') or a function like convlens.saliency")


def _rank(a: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata
    return rankdata(a)


def spearman(a, b) -> float:
    """Spearman rank correlation of two maps (ties get average ranks)."""
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    ra, rb = _rank(a), _rank(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = np.sqrt((ra ** 2).sum() * (rb ** 2).sum())
    return float((ra * rb).sum() / den) if den > 0 else 0.0


def _signed(res) -> torch.Tensor:
    a = res.attributions[0].sum(0) if res.attributions is not None else res.upsampled(0)[0]
    return a.detach().double().cpu()


@dataclass
class SanityConfig:
    """The model-parameter randomization test's parameters (Adebayo et al. 2018: cascading, top layer down)."""

    groups: int = field(default=6, metadata={"help": "randomization steps (groups of layers)", "range": (1, None)})
    independent: bool = field(default=False, metadata={"help": "randomize one group at a time, not cascading"})
    seed: int = field(default=0, metadata={"help": "seed of the re-initialized weights"})


def _layers(model) -> list[tuple[str, torch.nn.Module]]:
    leaves = [(n, m) for n, m in model.net.named_modules()
              if hasattr(m, "reset_parameters") and getattr(m, "weight", None) is not None
              and m.weight.ndim >= 2]
    if not leaves:
        raise ConvlensError(f"{model.name} has no conv / linear layer to randomize")
    return leaves


def randomized_models(model, groups: int = 6, cascade: bool = True, seed: int = 0):
    """Yield ``(label, randomized copy of model)`` for each step of the model-parameter randomization
    (Adebayo et al. 2018), the caller's model untouched.

    The layers with weights (conv, linear; biases too) are re-initialized with each layer's own
    ``reset_parameters`` under a fixed seed, from the logits down, in ``groups`` steps (geometric group
    sizes); ``cascade=True`` keeps the earlier steps randomized, ``cascade=False`` randomizes one
    group at a time. The label is the last layer randomized (cascade) or the group's span."""
    top_down = _layers(model)[::-1]
    groups = max(1, min(int(groups), len(top_down)))
    cuts = np.unique(np.round(np.geomspace(1, len(top_down), groups)).astype(int))
    rand = copy.deepcopy(model)
    rand.__dict__.pop("_channels_last_twin", None)
    mods = dict(rand.net.named_modules())
    done = 0
    for k, cut in enumerate(cuts):
        if not cascade:
            rand = copy.deepcopy(model)
            rand.__dict__.pop("_channels_last_twin", None)
            mods = dict(rand.net.named_modules())
            done = int(cuts[k - 1]) if k else 0
        group = top_down[done:int(cut)]
        with torch.random.fork_rng(devices=[]):
            for i, (n, _) in enumerate(group):
                torch.manual_seed(seed * 100003 + done + i)
                with torch.no_grad():
                    mods[n].reset_parameters()
        done = int(cut)
        yield (group[-1][0] if cascade else f"{group[0][0]}..{group[-1][0]}" if len(group) > 1 else group[0][0]), rand


def sanity_check(method, model, image, target=None, config: SanityConfig | None = None, *, cascade: bool | None = None,
                 **kwargs) -> SanityResult:
    """Model-parameter randomization test of ``method`` on one image (Adebayo et al. 2018).

    The weights of the layers with parameters (conv, linear; biases too) are re-initialized with
    each layer's own ``reset_parameters`` under a fixed seed, on a deep copy of the model, from the
    logits downwards in ``groups`` steps (``cascade=True``: each step keeps the previous ones
    randomized) or one group at a time (``cascade=False``). After each step the map is recomputed
    for the *same* target and compared with the original by Spearman rank correlation, of |map| and
    of the signed map.

    Args:
        config: a ``SanityConfig`` (groups, independent, seed), or its fields as keywords;
            ``cascade=False`` is ``independent=True``.
        method: a name ("saliency", "guided_backprop", "grad_cam", ...) or a convlens method function.
        image: (1, 3, H, W) in [0, 1].
        kwargs: passed to the method (e.g. ``layer=`` for grad_cam, ``steps=`` for IG).
    Keyword Args:
        groups: how many randomization steps (groups of layers), default 6 (named so that a
            method's own ``steps=`` can be passed through, e.g. for IG).
    Returns:
        ``SanityResult`` (``summary()`` table, ``render()`` figure, ``depends_on_model``).
    Example:
        >>> print(convlens.sanity_check("saliency", m, cat).summary())
    """
    names = {f.name for f in fields(SanityConfig)}
    c = resolve_config(SanityConfig, config, {k: kwargs.pop(k) for k in list(kwargs) if k in names})
    groups, seed = c.groups, c.seed
    cascade = (not c.independent) if cascade is None else cascade
    name, fn = _method(method)
    model = check_model(model)
    x = check_images(model, image)[:1]
    t = resolve_targets(model, target, x)
    original = fn(model, x, t, **kwargs)
    base = original.upsampled(0)[0].detach().double()
    base_signed = _signed(original)
    rows, maps = [], [base]
    for label, rand in randomized_models(model, groups, cascade, seed):
        res = fn(rand, x, t, **kwargs)
        r = res.upsampled(0)[0].detach().double()
        signed = _signed(res)
        rows.append((label, spearman(base.abs().cpu(), r.abs().cpu()), spearman(base_signed, signed)))
        maps.append(r)
    top_down = _layers(model)[::-1]
    return SanityResult(name, rows, maps, cascade, x, {"target": t.tolist(), "layers": [n for n, _ in top_down]})
