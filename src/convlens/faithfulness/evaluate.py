"""``convlens.evaluate``: the report card of attribution methods on a model's own images (issue 22).

Every method's map is computed once per image; every metric of the registry scores every map
(the perturbation metrics in one pass of the driver for all methods at once, where they can); two
baselines, a seeded random map and a Sobel edge map, are always among the methods, so a reader sees
whether a method beats them. The result holds a tidy table (one row per image x method x metric,
with the metric's exact parameters), the curves, the maps, a ranking and ``plot()``.
"""
from __future__ import annotations

import dataclasses
import math
import zlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ..attribution.base import Attribution, check_images, check_model, class_labels, resolve_targets
from ..attribution.sanity import methods as attribution_methods
from ..errors import ConvlensError
from ..fields import resolve_config
from ..progress import ProgressFn
from ..render.figures import fig_to_pil, new_figure
from .maps import as_maps, edge_map, random_map
from .registry import METRICS, Metric, get_metric, normalize_name

BASELINES = ("random", "edge")
DEFAULT_METHODS = ("saliency", "grad_cam", "integrated_gradients")
DEFAULT_METRICS = ("deletion", "insertion", "sparseness", "complexity")


def explainer(method) -> tuple[str, Callable]:
    """``(name, explain)`` with ``explain(model, images, target) -> maps (N, H, W)`` float64 at image size,
    for a method name (any attribution method, "random", "edge") or a callable returning an
    ``Attribution`` or maps."""
    if callable(method):
        name = getattr(method, "__name__", "custom")
        return name, lambda m, x, t: _at_size(as_maps(method(m, x, t)), x)
    key = normalize_name(method)
    if key == "random":
        return "random", lambda m, x, t: _random_maps(x)
    if key in ("edge", "sobel"):
        return "edge", lambda m, x, t: edge_map(x.cpu())
    table = attribution_methods()
    if key not in table:
        raise ConvlensError(f"unknown method '{method}'; choose from {', '.join(sorted(table))}, random, edge")
    fn = table[key]
    return fn.__name__, lambda m, x, t: _at_size(as_maps(fn(m, x, t)), x)


def _random_maps(x: torch.Tensor) -> torch.Tensor:
    """A uniform random map per image, seeded by the image's pixels: the same image always gets the same
    map, a perturbed one a new map (so the random baseline is as unstable as chance under sensitivity)."""
    return torch.cat([random_map(x[i:i + 1], seed=zlib.crc32(x[i].detach().cpu().numpy().tobytes()))
                      for i in range(x.shape[0])])


def _at_size(maps: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    if maps.shape[-2:] != x.shape[-2:]:
        maps = torch.nn.functional.interpolate(maps[:, None], size=x.shape[-2:], mode="bilinear",
                                               align_corners=False)[:, 0]
    return maps


def object_mask(model, x: torch.Tensor, t: torch.Tensor, mask) -> torch.Tensor:
    """(N, H, W) bool from ``mask``: a tensor / array ((H, W) or (N, H, W)), a box ``(y0, x0, y1, x1)``
    in pixels of the images, or ``"grabcut"``: each image's GrabCut cut seeded by SmoothGrad (the
    lecture's recipe; it favours gradient maps, so read its scores as agreement with the cut)."""
    N, _, H, W = x.shape
    if isinstance(mask, str):
        if mask.lower() != "grabcut":
            raise ConvlensError(f"mask '{mask}' is not known; give 'grabcut', a box (y0, x0, y1, x1) or an (H, W) mask")
        from ..attribution import grabcut_from_saliency
        return torch.stack([grabcut_from_saliency(model, x[i:i + 1], int(t[i]))[0].mask.bool().cpu()
                            for i in range(N)])
    if isinstance(mask, (tuple, list)) and len(mask) == 4 and all(isinstance(v, (int, float)) for v in mask):
        y0, x0, y1, x1 = (int(round(v)) for v in mask)
        if not (0 <= y0 < y1 <= H and 0 <= x0 < x1 <= W):
            raise ConvlensError(f"box {tuple(mask)} is not inside the {H}x{W} images; give (y0, x0, y1, x1) with y0 < y1, x0 < x1")
        m = torch.zeros(N, H, W, dtype=torch.bool)
        m[:, y0:y1, x0:x1] = True
        return m
    m = torch.as_tensor(np.asarray(mask)).bool().cpu()
    return m[None].expand(N, -1, -1) if m.ndim == 2 else m


def params_text(config) -> str:
    """The config's fields as ``name=value`` (what the score was computed with)."""
    if config is None:
        return ""
    return ", ".join(f"{f.name}={getattr(config, f.name)}" for f in dataclasses.fields(config))


@dataclass
class Evaluation:
    """The report card. ``rows``: one dict per (image, method, metric) with ``value``, ``better``,
    ``params``; ``curves[(metric, method)]``: the metric's result where it has a curve; ``maps[method]``
    (N, H, W); ``table`` as a pyarrow Table (``.to_pandas()`` where pandas is installed)."""

    methods: list[str]
    metrics: list[str]
    labels: list[str]
    rows: list[dict]
    results: dict = field(default_factory=dict)
    maps: dict = field(default_factory=dict)
    images: torch.Tensor | None = None

    @property
    def table(self):
        import pyarrow as pa
        return pa.Table.from_pylist(self.rows)

    def to_pandas(self):
        return self.table.to_pandas()

    def value(self, metric: str, method: str) -> np.ndarray:
        """(N,) the metric's value of the method on each image."""
        return np.array([r["value"] for r in self.rows if r["metric"] == metric and r["method"] == method])

    def better(self, metric: str) -> str:
        """"higher" or "lower": the metric's direction as it was run (LeRF orders flip MoRF's)."""
        return next((r["better"] for r in self.rows if r["metric"] == metric), METRICS[metric].better)

    def mean(self, metric: str, method: str) -> float:
        v = self.value(metric, method)
        v = v[np.isfinite(v)]
        return float(v.mean()) if v.size else float("nan")

    def summary(self) -> list[dict]:
        """One row per method: the mean of each metric over the images, and its rank (1 = best) among
        the methods for that metric."""
        out = [{"method": m, **{k: self.mean(k, m) for k in self.metrics}} for m in self.methods]
        for k in self.metrics:
            better = self.better(k)
            vals = [(r[k] if not math.isnan(r[k]) else None) for r in out]
            order = sorted([i for i, v in enumerate(vals) if v is not None],
                           key=lambda i: -vals[i] if better == "higher" else vals[i])
            for rank, i in enumerate(order, 1):
                out[i][f"{k}_rank"] = rank
        return out

    def rank(self, metric: str) -> list[str]:
        """Methods from best to worst by their mean ``metric``."""
        better = self.better(metric)
        means = {m: self.mean(metric, m) for m in self.methods}
        return sorted((m for m in means if not math.isnan(means[m])),
                      key=lambda m: -means[m] if better == "higher" else means[m])

    def plot(self, index: int = 0, width: float = 4.2, height: float = 3.2):
        """The curves of image ``index``, one panel per curve metric, all methods on each: a PIL image."""
        curved = [k for k in self.metrics if METRICS[k].curve is not None]
        if not curved:
            raise ConvlensError("none of these metrics has a curve; add deletion, insertion or road")
        fig, axes = new_figure(width * len(curved), height, ncols=len(curved))
        axes = np.atleast_1d(axes)
        for ax, k in zip(axes, curved):
            for m in self.methods:
                xs, ys, xlabel = METRICS[k].curve(self.results[(k, m)])
                v = self.value(k, m)[index]
                ax.plot(np.asarray(xs), np.asarray(ys[index]), label=f"{m} ({v:.3f})",
                        linestyle=":" if m in BASELINES else "-")
            ax.set_xlabel(xlabel)
            ax.set_title(f"{METRICS[k].title} ({self.better(k)} is better)",
                         fontsize=9)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
        fig.suptitle(self.labels[index], fontsize=10)
        return fig_to_pil(fig)


def _configs(metrics: list[Metric], configs: dict | None) -> dict:
    configs = {normalize_name(k): v for k, v in (configs or {}).items()}
    unknown = set(configs) - {m.id for m in metrics}
    if unknown:
        raise ConvlensError(f"configs for metrics not asked for: {', '.join(sorted(unknown))}")
    out = {}
    for m in metrics:
        given = configs.get(m.id)
        if m.config is None:
            if given:
                raise ConvlensError(f"metric '{m.id}' takes no parameters")
            out[m.id] = None
        elif isinstance(given, dict) or given is None:
            out[m.id] = resolve_config(m.config, None, dict(given or {}))
        else:
            out[m.id] = resolve_config(m.config, given, {})
    return out


def evaluate(model, images, methods=DEFAULT_METHODS, metrics=DEFAULT_METRICS, *, target=None, mask=None,
             configs: dict | None = None, baselines: bool = True,
             progress: Callable[[str, int, int | None], None] | None = None) -> Evaluation:
    """Score attribution maps of ``model`` on ``images`` with faithfulness, robustness, randomization,
    complexity and localisation metrics: which map to believe.

    Args:
        model: a ``convlens.Model``.
        images: (N, 3, H, W) in [0, 1].
        methods: attribution method names (``saliency``, ``grad_cam``, ``ig``...) or callables
            ``f(model, images, target) -> Attribution | maps``.
        metrics: metric names (``convlens.faithfulness.METRICS``).
        target: the class explained (default: each image's predicted class).
        mask: the object, for the localisation metrics: an (H, W) or (N, H, W) mask, a box
            ``(y0, x0, y1, x1)``, or ``"grabcut"`` (``object_mask``).
        configs: ``{metric: config or dict of its fields}``.
        baselines: add the "random" and "edge" maps as methods (the floor every method must beat).
        progress: ``progress(stage, done, total)``, stage a method or a metric's name.
    Returns:
        ``Evaluation`` (``table``, ``summary()``, ``rank(metric)``, ``plot()``, ``results``, ``maps``).
        On Ctrl-C the ``KeyboardInterrupt`` carries ``.partial``: the card of the metrics finished.
    Example:
        >>> card = convlens.evaluate(m, cat, ["saliency", "grad_cam"], ["deletion", "insertion"])
        >>> card.rank("deletion")
    """
    model = check_model(model)
    x = check_images(model, images)
    ms = [get_metric(k) for k in dict.fromkeys(metrics)]
    if not ms:
        raise ConvlensError("no metrics; name at least one, e.g. deletion")
    if any(m.kind == "mask" for m in ms) and mask is None:
        need = ", ".join(m.id for m in ms if m.kind == "mask")
        raise ConvlensError(f"{need} need the object's mask; pass mask= (a GrabCut mask is one) or drop them")
    cfg = _configs(ms, configs)
    named = [explainer(m) for m in methods]
    if baselines:
        named += [explainer(b) for b in BASELINES if b not in {n for n, _ in named}]
    if len({n for n, _ in named}) != len(named):
        raise ConvlensError("a method is named twice; name each once")
    t = resolve_targets(model, target, x)
    labels = class_labels(model, t)
    if mask is not None:
        mask = object_mask(model, x, t, mask)

    def stage(name):
        return None if progress is None else (lambda done, total: progress(name, done, total))

    maps = {}
    for i, (name, fn) in enumerate(named):
        maps[name] = fn(model, x, t)
        if progress is not None:
            progress("maps", i + 1, len(named))
    names = [n for n, _ in named]
    stacked = torch.stack([maps[n] for n in names])                 # (M, N, H, W)
    results: dict = {}
    done: list[Metric] = []
    try:
        for m in ms:
            results.update(_score(m, cfg[m.id], model, x, t, named, maps, stacked, mask, stage))
            done.append(m)
    except KeyboardInterrupt as e:  # Ctrl-C / a cancelled job: the card of the metrics finished so far
        e.partial = _card(done, names, labels, results, cfg, maps, x) if done else None
        raise
    return _card(ms, names, labels, results, cfg, maps, x)


def _score(m: Metric, c, model, x, t, named, maps, stacked, mask, stage) -> dict:
    """``{(metric, method): result}`` of one metric over every method."""
    names = [n for n, _ in named]
    if m.kind == "map":
        return {(m.id, n): m.function(maps[n]) for n in names}
    if m.kind == "mask":
        return {(m.id, n): m.function(maps[n], mask) for n in names}
    if m.kind == "model" and m.many is not None:
        return {(m.id, n): r for n, r in zip(names, m.many(model, x, t, stacked, c, stage(m.id)))}
    if m.kind == "model":
        return {(m.id, n): m.function(model, x, maps[n], target=t, config=c, progress=stage(f"{m.id}:{n}"))
                for n in names}
    return {(m.id, n): m.function(model, x, fn, target=t, config=c, progress=stage(f"{m.id}:{n}")) for n, fn in named}


def _card(ms: list[Metric], names, labels, results, cfg, maps, x) -> "Evaluation":
    rows = []
    for m in ms:
        ran = getattr(results[(m.id, names[0])], "config", cfg[m.id])  # as run (defaults filled)
        params, better = params_text(ran), m.better_for(ran)
        for n in names:
            vals = torch.as_tensor(m.value(results[(m.id, n)])).double().cpu()
            rows += [{"image": i, "label": labels[i], "method": n, "metric": m.id, "value": float(v),
                      "better": better, "params": params} for i, v in enumerate(vals.tolist())]
    return Evaluation(names, [m.id for m in ms], labels, rows, results, maps, x.detach().cpu())
