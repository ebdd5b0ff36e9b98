"""The metrics ``convlens.evaluate`` knows, each with how to call it (issue 22, item 5).

A ``Metric`` says what its function needs, by ``kind``:
- ``"map"``: ``function(maps) -> (N,)``: the map alone (sparseness, complexity).
- ``"mask"``: ``function(maps, mask) -> (N,)``: the map against the object's mask (pointing game...).
- ``"model"``: ``function(model, images, maps, target=t, config=c, progress=p)`` -> a result whose
  ``value(result)`` is (N,): the map against the model's outputs on perturbed images (deletion, ROAD...).
  ``many(model, images, t, maps (M, N, H, W), c, progress)`` -> one result per map, if the metric can
  run all methods in one pass of the perturbation driver (the evaluator prefers it).
- ``"explainer"``: ``function(model, images, explain, target=t, config=c, progress=p)`` -> a result
  whose ``value(result)`` is (N,); ``explain(model, images, target) -> maps (N, H, W)`` re-runs the
  method (sensitivity, MPRT, random logit need new maps, not the one on screen).

``better`` is "higher" or "lower" for the metric's default order; ``better_for(config)`` is the direction
as run (a config with ``order="lerf"`` flips it: removing the least relevant pixels first, a faithful map
keeps the score high). ``curve(result)`` gives ``(x, y (N, K), x_label)`` for metrics with
a curve to draw. ``register`` adds one; the module of each metric registers it on import.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

from ..errors import ConvlensError

Kind = Literal["map", "mask", "model", "explainer"]


@dataclass(frozen=True)
class Metric:
    id: str
    kind: Kind
    function: Callable
    better: Literal["higher", "lower"]
    title: str
    paper: str
    config: type | None = None
    value: Callable = lambda result: result          # (N,) float64 from the function's result
    many: Callable | None = None                     # all maps in one pass (kind "model")
    curve: Callable | None = None                    # result -> (x (K,), y (N, K), x label)

    def better_for(self, config) -> str:
        """"higher" or "lower" for this config: LeRF orders mirror MoRF's direction."""
        if getattr(config, "order", "morf") == "lerf":
            return "higher" if self.better == "lower" else "lower"
        return self.better


METRICS: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    METRICS[metric.id] = metric
    return metric


def prepare(config_cls, config, overrides: dict, model, images, target):
    """Every metric's public-call prelude: ``(config, model, images, targets)`` resolved and checked (the
    config from ``config`` plus keyword ``overrides``; the targets default to each image's prediction)."""
    from ..attribution.base import check_images, check_model, resolve_targets
    from ..fields import resolve_config
    c = resolve_config(config_cls, config, overrides)
    model = check_model(model)
    x = check_images(model, images)
    return c, model, x, resolve_targets(model, target, x)


def normalize_name(name: str) -> str:
    return str(name).strip().lower().replace("-", "_").replace(" ", "_")


def get_metric(name: str) -> Metric:
    key = normalize_name(name)
    if key not in METRICS:
        raise ConvlensError(f"unknown metric '{name}'; choose from {', '.join(sorted(METRICS))}")
    return METRICS[key]
