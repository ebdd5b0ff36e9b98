"""Lab runners of the synthesis family: class / channel / neuron visualization, facets, DeepDream, inversion."""
from __future__ import annotations

import dataclasses

from ...errors import ConvlensError
from ...inspect import sample_dataset
from ...recipes import deepdream, invert, visualize_channel, visualize_class, visualize_facets, visualize_neuron
from ..context import Ctx, curve, jsonable, layer_value, target_value
from ..forms import F
from . import Runner

def _viz_result(ctx: Ctx, v) -> dict:
    for img, lab in zip(v.images, v.labels):
        ctx.save(img, lab)
    return {"figures": {"labels": v.labels, "scores": jsonable(v.scores), "steps": v.optim.steps,
                        "stopped": ctx.stopped(v.optim.stopped), "seconds": round(v.optim.seconds, 3),
                        "objective": curve(v.optim.history)}}


def _classviz(ctx: Ctx) -> dict:
    targets = [t.strip() for t in str(ctx.params["target"]).split(",") if t.strip()][:4]
    if not targets:
        raise ConvlensError("classviz needs a target class (name or index), e.g. flamingo")
    targets = [target_value(ctx.model, t) for t in targets]
    return _viz_result(ctx, visualize_class(ctx.model, targets, ctx.config, progress=ctx.progress,
                                            callback=ctx.callback))


def _channels(text) -> list[int]:
    try:
        chans = [int(c) for c in str(text).split(",") if c.strip()]
    except ValueError:
        raise ConvlensError(f"channel takes integers like 7 or 3,7,12, got {str(text)[:40]!r}") from None
    if not chans:
        raise ConvlensError("channel needs at least one channel index, e.g. 7")
    return chans[:4]


def _channelviz(ctx: Ctx) -> dict:
    p = ctx.params
    v = visualize_channel(ctx.model, layer_value(ctx.model, p["layer"]), _channels(p["channel"]), ctx.config,
                          progress=ctx.progress, callback=ctx.callback)
    return _viz_result(ctx, v)


def _neuronviz(ctx: Ctx) -> dict:
    p = ctx.params
    unit = None
    if p["unit"]:
        try:
            unit = tuple(int(v) for v in str(p["unit"]).split(","))
            assert len(unit) == 2
        except (ValueError, AssertionError):
            raise ConvlensError(f"unit takes y,x like 7,7, got {str(p['unit'])[:40]!r}") from None
    v = visualize_neuron(ctx.model, layer_value(ctx.model, p["layer"]), _channels(p["channel"]), unit, ctx.config,
                         progress=ctx.progress, callback=ctx.callback)
    return _viz_result(ctx, v)


def _facets(ctx: Ctx) -> dict:
    p = ctx.params
    layer = p["layer"]
    if layer in ("class", "logits"):
        ch = target_value(ctx.model, p["channel"])
    else:
        layer_value(ctx.model, layer)
        ch = None if p["channel"] in (None, "", "auto") else _channels(p["channel"])[0]
    data = sample_dataset(p["images"], size=ctx.model.input_size[0])
    f = visualize_facets(ctx.model, layer, ch, data, config=ctx.config, progress=ctx.progress, callback=ctx.callback)
    ctx.save(f.figure, f"facets of {f.layer}:{f.channel} (facet, start, examples)")
    for i, img in enumerate(f.images):
        ctx.save(img, f"facet {i + 1}")
    return {"figures": {"layer": f.layer, "channel": jsonable(f.channel), "cluster_sizes": [len(c) for c in f.clusters],
                        "start_scores": jsonable(f.start_scores), "scores": jsonable(f.scores),
                        "steps": f.optim.steps, "stopped": ctx.stopped(f.optim.stopped)}}


def _dream(ctx: Ctx) -> dict:
    cfg = ctx.config
    if cfg.max_size is None:
        cfg = dataclasses.replace(cfg, max_size=512)
    d = deepdream(ctx.model, ctx.image, layer_value(ctx.model, ctx.params["layer"]), cfg, progress=ctx.progress,
                  callback=ctx.callback)
    ctx.save(d.image, f"DeepDream at {ctx.params['layer']}")
    return {"figures": {"octaves": [{"size": list(s), "norm_before": b, "norm_after": a}
                                    for (b, a), s in zip(d.octave_norms, d.sizes)],
                        "stopped": ctx.stopped(d.stopped)}}


def _invert(ctx: Ctx) -> dict:
    r = invert(ctx.model, ctx.image, layer_value(ctx.model, ctx.params["layer"]), ctx.config, progress=ctx.progress,
               callback=ctx.callback)
    ctx.save(r.target, "input (as fitted)")
    ctx.save(r.image, f"reconstruction from {r.layer}")
    return {"figures": {"layer": r.layer, "start_distance": r.start_distance, "distance": r.distance,
                        "steps": r.optim.steps, "stopped": ctx.stopped(r.optim.stopped),
                        "objective": curve(r.optim.history)}}


RUNNERS = {
    "classviz": Runner(_classviz, [F("target", "str", "flamingo", "class name or index; up to 4 comma-separated")]),
    "channelviz": Runner(_channelviz, [F("layer", "str", "features.10", "layer name"),
                                       F("channel", "str", "7", "channel index; up to 4 comma-separated")]),
    "neuronviz": Runner(_neuronviz, [F("layer", "str", "features.10", "layer name"),
                                     F("channel", "str", "7", "channel index"),
                                     F("unit", "str", None, "y,x of the neuron (empty: the centre)", optional=True)]),
    "facets": Runner(_facets, [F("layer", "str", "class", "layer name, or 'class'"),
                               F("channel", "str", "Egyptian cat",
                                 "channel index or 'auto'; with layer=class a class name or index"),
                               F("images", "int", 60, "bundled sample images to cluster")]),
    "deepdream": Runner(_dream, [F("layer", "str", "features.10", "layer to amplify")]),
    "inversion": Runner(_invert, [F("layer", "str", "features.6", "layer whose features are inverted")]),
}
