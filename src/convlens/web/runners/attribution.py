"""Lab runners of the attribution family."""
from __future__ import annotations

import torch

from ... import attribution
from ...images import resize_shorter
from ...catalog import attribution_summary, get, sanity_method_names
from ..context import Ctx, jsonable, layer_value, target_value
from ..forms import CHANNEL, F, LAYER_NEURON, MODE, TARGET
from . import Runner


def _result(ctx: Ctx, r, mode) -> dict:
    ctx.save(r.images[0], "input")
    ctx.save(r.overlay(0, mode), f"{r.method}: {r.labels[0]}")
    ctx.save(r.heatmap(0, mode), "map")
    info = {k: v for k, v in r.info.items() if not isinstance(v, torch.Tensor) or v.numel() <= 16}
    return {"figures": {**attribution_summary(r), "info": jsonable(info)}}


def _gradient_method(fn):
    def run(ctx: Ctx) -> dict:
        p = ctx.params
        layer = layer_value(ctx.model, p.get("layer"))
        r = fn(ctx.model, ctx.fit(), target_value(ctx.model, p.get("target")), layer=layer, channel=p.get("channel"),
               unit="max" if layer else None)
        return _result(ctx, r, p.get("mode"))
    return run


def _grad_cam(ctx: Ctx) -> dict:
    p = ctx.params
    r = attribution.grad_cam(ctx.model, ctx.fit(), target_value(ctx.model, p["target"]),
                             layer=layer_value(ctx.model, p["layer"]))
    return _result(ctx, r, p["mode"])


def configured(fn):
    """Methods of the catalog's standard shape ``fn(model, images, target, config, progress=)`` (SmoothGrad,
    IG, and any new one): the form's config, progress from the job."""
    def run(ctx: Ctx) -> dict:
        r = fn(ctx.model, ctx.fit(), target_value(ctx.model, ctx.params["target"]), ctx.config, progress=ctx.progress)
        return _result(ctx, r, ctx.params["mode"])
    return run


def _occlusion(ctx: Ctx) -> dict:
    try:
        r = attribution.occlusion(ctx.model, ctx.fit(), target_value(ctx.model, ctx.params["target"]), ctx.config,
                                  progress=ctx.progress)
    except KeyboardInterrupt as e:  # cancelled: keep the windows finished so far
        r = getattr(e, "partial", None)
        if r is None or not r.info.get("finished"):
            raise
    out = _result(ctx, r, ctx.params["mode"])
    out["figures"]["windows"] = [r.info.get("finished"), r.info.get("total")]
    return out


def _grabcut(ctx: Ctx) -> dict:
    img = resize_shorter(ctx.image, min(ctx.model.input_size))
    g, sal = attribution.grabcut_from_saliency(ctx.model, img, target_value(ctx.model, ctx.params["target"]),
                                               ctx.config)
    ctx.save(g.render(), f"grabcut from {ctx.config.method} ({sal.labels[0]})")
    ctx.save(g.cutout, "cut-out")
    return {"figures": get("grabcut").summarize((g, sal))}


def _sanity(ctx: Ctx) -> dict:
    p = ctx.params
    r = attribution.sanity_check(p["method"], ctx.model, ctx.fit(), target_value(ctx.model, p["target"]), ctx.config)
    ctx.save(r.render(), f"{r.method}: rank correlation as weights are randomized")
    return {"figures": {"rows": [{"randomized": n, "rho_abs": jsonable(a), "rho_signed": jsonable(b)}
                                 for n, a, b in r.rows],
                        "median_rho": jsonable(r.median_rho), "depends_on_model": bool(r.depends_on_model),
                        "summary": r.summary()}}


_NEURON = [TARGET, LAYER_NEURON, CHANNEL, MODE]
def default_runner(entry) -> Runner:
    """The runner of an attribution method with a config and the standard shape (no code needed here)."""
    return Runner(configured(entry.function), [TARGET, MODE])


RUNNERS = {
    "saliency": Runner(_gradient_method(attribution.saliency), _NEURON),
    "guided_backprop": Runner(_gradient_method(attribution.guided_backprop), _NEURON),
    "deconvnet": Runner(_gradient_method(attribution.deconvnet), _NEURON),
    "grad_cam": Runner(_grad_cam, [TARGET, F("layer", "str", None, "layer (empty: the last block with a spatial map)",
                                              optional=True), MODE]),
    "occlusion": Runner(_occlusion, [TARGET, MODE]),
    "grabcut": Runner(_grabcut, [TARGET]),
    "sanity_check": Runner(_sanity, [F("method", "str", "saliency", "attribution method to test",
                                       choices=sanity_method_names()),
                                     TARGET]),
}
