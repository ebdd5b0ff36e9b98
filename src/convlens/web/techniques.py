"""Every technique the image lab offers: name -> family, parameters, and a ``run`` over the library.

Parameters come from the same config dataclasses as the CLI (``convlens.fields.config_fields``), plus a
few fixed ones per technique (target, layer, channel...) described the same way, so the web form and
the CLI never drift. ``run(ctx)`` calls the library function (nothing is reimplemented here) and
returns a JSON-able dict: ``images`` (saved under the app's ``results/`` folder, served by URL) and
``figures`` (the raw numbers: probabilities, norms, steps, losses).

Iterative techniques stream progress and preview images through the job (``ctx.progress``,
``ctx.callback``) and stop when the job is cancelled: ``ctx.progress`` raises ``Cancelled`` (a
``KeyboardInterrupt``), which every library loop already treats like Ctrl-C, returning the best
result so far.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from ..fields import ConfigField, config_fields, parse_config
from ..errors import ConvlensError, closest

# Upper bounds on the integer parameters a request may set (a browser tab must not freeze the server).
LIMITS = {"steps": 2000, "max_steps": 2000, "samples": 200, "size": 768, "octaves": 6, "groups": 20,
          "n_facets": 6, "top": 64, "images": 300, "sample_size": 256, "style_size": 768, "max_size": 1024,
          "examples": 8}


class Cancelled(KeyboardInterrupt):
    """Raised inside a job's progress callback once the job is cancelled (library loops treat it as Ctrl-C)."""


def F(name: str, kind: str, default=None, help: str = "", choices=None, optional: bool = False) -> ConfigField:
    """A fixed (non-config) parameter, described like a config field."""
    return ConfigField(name, kind, default, help, list(choices) if choices else None, optional)


TARGET = F("target", "str", None, "class index or name ('Egyptian cat'); empty: the predicted class", optional=True)
LAYER_NEURON = F("layer", "str", None, "explain a channel of this layer instead of a class (empty: the class)",
                 optional=True)
CHANNEL = F("channel", "int", None, "channel of the layer (empty: the most active one)", optional=True)
MODE = F("mode", "str", None, "render mode (empty: the method's)",
         choices=["abs", "positive", "negative", "signed", "minmax", "rgb"], optional=True)


@dataclass
class Ctx:
    """What a technique's ``run`` gets: the server state, the model, the input, the parameters, the job."""

    state: Any
    model: Any
    image: torch.Tensor | None           # (1, 3, H, W) in [0, 1] at its own size (None if not needed)
    params: dict                         # the fixed parameters, parsed
    config: Any                          # the config dataclass instance (or None)
    job: Any
    key: str
    images: list = field(default_factory=list)
    _last_preview: float = 0.0

    def fit(self) -> torch.Tensor:
        """The input fitted to the model (shorter side + centre crop), as the CLI does."""
        from ..images import fit
        return fit(self.image, self.model.input_size)

    def progress(self, done: int, total: int | None = None) -> None:
        self.job.progress(done, total)
        if self.job.cancelled():
            raise Cancelled()

    def callback(self, info) -> None:
        """Per-step hook of the optimization loop: a preview image at most every 0.25 s."""
        now = time.monotonic()
        if now - self._last_preview >= 0.25 or info.step in (1, info.total):
            self._last_preview = now
            from .encode import png_bytes
            img = info.image
            if img.shape[0] > 1:
                from ..render import grid
                img = grid(list(img.clamp(0, 1)), [""] * img.shape[0], ncol=min(img.shape[0], 4),
                           tile=min(224, img.shape[-1]))
                img = np.asarray(img.convert("RGB"))
            else:
                img = img.clamp(0, 1)
            self.job.set_preview(png_bytes(img))

    def save(self, image, label: str = "") -> dict:
        """Write a result image (tensor, array or PIL image) under results/; returns its URL entry."""
        from PIL import Image

        from ..images.io import save_png, to_uint8
        from .state import safe_child
        if isinstance(image, Image.Image):
            image = np.asarray(image.convert("RGB"))
        arr = to_uint8(image)
        name = f"{self.key}-{len(self.images)}.png"
        path = save_png(arr, safe_child(self.state.folder("results"), name, what="result name"))
        self.job.files.append(path)
        entry = {"url": f"/api/results/{name}", "label": label, "width": int(arr.shape[1]), "height": int(arr.shape[0])}
        self.images.append(entry)
        return entry


@dataclass
class Technique:
    name: str
    family: str
    title: str
    run: Callable[[Ctx], dict]
    config: type | None = None
    fixed: list = field(default_factory=list)
    iterative: bool = False
    needs_image: bool = True
    hidden: tuple = ()                  # config fields the web sets itself (not in the form)

    def fields(self) -> list[ConfigField]:
        cfg = [f for f in config_fields(self.config) if f.name not in self.hidden] if self.config else []
        return list(self.fixed) + cfg

    def schema(self) -> dict:
        return {"name": self.name, "family": self.family, "title": self.title, "iterative": self.iterative,
                "needs_image": self.needs_image, "fields": [f.as_json() for f in self.fields()]}

    def check(self, model, fixed: dict, state=None) -> None:
        """Refuse unknown classes, layers and images before a job is queued (400 at once, not a failed job)."""
        if self.name == "style" and state is not None:
            _style_image(state, fixed.get("style"))
        tgt = fixed.get("target")
        if tgt not in (None, ""):
            for part in (str(tgt).split(",") if self.name == "classviz" else [tgt]):
                if part.strip():
                    _target(model, part.strip())
        layer = fixed.get("layer")
        if layer not in (None, "", "class", "logits"):
            _layer(model, layer)
        if self.name == "facets" and layer in ("class", "logits") and fixed.get("channel") not in (None, ""):
            _target(model, fixed["channel"])

    def parse(self, params: dict | None) -> tuple[dict, Any]:
        """Validate request parameters: (fixed values, config instance). Unknown names or bad values raise."""
        params = dict(params or {})
        by_name = {f.name: f for f in self.fields()}
        unknown = sorted(set(params) - set(by_name))
        if unknown:
            raise ConvlensError(f"unknown parameter '{str(unknown[0])[:40]}' for {self.name}; "
                                f"its parameters: {', '.join(by_name) or 'none'}")
        values = {name: coerce(f, params[name]) if name in params else f.default for name, f in by_name.items()}
        fixed = {f.name: values[f.name] for f in self.fixed}
        cfg = None
        if self.config is not None:
            cfg_vals = {k: v for k, v in values.items() if k not in fixed}
            try:
                cfg = parse_config(self.config, cfg_vals)
            except TypeError as e:
                raise ConvlensError(f"invalid parameters for {self.name}: {e}") from None
        return fixed, cfg


def coerce(f: ConfigField, value):
    """A request value (JSON or form string) as the field's type; ConvlensError naming the fix."""
    def bad(why: str):
        return ConvlensError(f"parameter {f.name}: {why}")
    if value is None or (isinstance(value, str) and value.strip() == "" and f.kind != "str"):
        if f.optional or f.default is None:
            return None
        return f.default
    if isinstance(value, str) and value.strip() == "" and f.kind == "str" and f.optional:
        return None
    if f.kind == "bool":
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "1", "yes", "on"):
            return True
        if str(value).lower() in ("false", "0", "no", "off"):
            return False
        raise bad(f"expected true or false, got {str(value)[:40]!r}")
    if f.kind in ("int", "float"):
        if isinstance(value, bool):
            raise bad(f"expected a number, got {value}")
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise bad(f"expected a number, got {str(value)[:40]!r}") from None
        if not math.isfinite(v):
            raise bad("expected a finite number")
        if f.kind == "int":
            if v != int(v):
                raise bad(f"expected a whole number, got {value}")
            v = int(v)
            cap = LIMITS.get(f.name)
            if cap is not None and v > cap:
                raise bad(f"{v} is above the explorer's limit {cap}; use the CLI or Python API for larger runs")
        return v
    if f.kind == "list":
        items = value if isinstance(value, (list, tuple)) else [s for s in str(value).split(",")]
        items = [str(s).strip() for s in items if str(s).strip()]
        conv = {"int": int, "float": float}.get(f.item or "str", str)
        try:
            return tuple(conv(s) for s in items)
        except ValueError:
            raise bad(f"expected comma-separated {f.item} values") from None
    v = str(value) if not isinstance(value, (dict, list)) else None
    if v is None:
        raise bad("expected a string")
    if len(v) > 200:
        raise bad("value too long (200 characters at most)")
    if f.choices and v not in [str(c) for c in f.choices]:
        raise bad(f"'{v[:40]}' is not one of {', '.join(map(str, f.choices))}")
    return v


# --- JSON helpers ----------------------------------------------------------------------------

def jsonable(x):
    """Tensors, arrays and numbers as plain JSON (NaN/inf -> None)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(float(x)) else None
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (str, int, bool)) or x is None:
        return x
    return str(x)


def _curve(history: torch.Tensor, n: int = 200) -> list:
    """The mean objective per step, at most ``n`` points (for the page's plot)."""
    if history is None or len(history) == 0:
        return []
    h = history.float().mean(dim=1) if history.ndim == 2 else history.float()
    idx = np.unique(np.linspace(0, len(h) - 1, min(n, len(h))).round().astype(int))
    return [[int(i) + 1, jsonable(float(h[i]))] for i in idx]


def _target(model, value):
    if value in (None, ""):
        return None
    s = str(value).strip()
    t = int(s) if s.lstrip("-").isdigit() else s
    model.class_index(t)  # ConvlensError naming close classes
    return t


def _layer(model, name):
    if name in (None, ""):
        return None
    model.module(name)  # ConvlensError naming close layers
    return name


def _stopped(ctx: Ctx, stopped: str) -> str:
    return "cancelled" if ctx.job.cancelled() or stopped in ("interrupted", "callback") else stopped


# --- attribution -----------------------------------------------------------------------------

def _attribution_result(ctx: Ctx, r, mode) -> dict:
    ctx.save(r.images[0], "input")
    ctx.save(r.overlay(0, mode), f"{r.method}: {r.labels[0]}")
    ctx.save(r.heatmap(0, mode), "map")
    known = r.map[~r.map.isnan()]
    info = {k: v for k, v in r.info.items() if not isinstance(v, torch.Tensor) or v.numel() <= 16}
    return {"figures": {"method": r.method, "target": r.labels[0], "target_index": int(r.target[0]),
                        "raw_min": float(known.min()) if known.numel() else None,
                        "raw_max": float(known.max()) if known.numel() else None,
                        "map_shape": list(r.map.shape[-2:]), "info": jsonable(info)}}


def _gradient_method(fn_name: str):
    def run(ctx: Ctx) -> dict:
        from .. import attribution
        p = ctx.params
        layer = _layer(ctx.model, p.get("layer"))
        kw = dict(layer=layer, channel=p.get("channel"), unit="max" if layer else None)
        r = getattr(attribution, fn_name)(ctx.model, ctx.fit(), _target(ctx.model, p.get("target")), **kw)
        return _attribution_result(ctx, r, p.get("mode"))
    return run


def _grad_cam(ctx: Ctx) -> dict:
    from ..attribution import grad_cam
    p = ctx.params
    r = grad_cam(ctx.model, ctx.fit(), _target(ctx.model, p["target"]), layer=_layer(ctx.model, p["layer"]))
    return _attribution_result(ctx, r, p["mode"])


def _smoothgrad(ctx: Ctx) -> dict:
    from ..attribution import smoothgrad
    p = ctx.params
    r = smoothgrad(ctx.model, ctx.fit(), _target(ctx.model, p["target"]), noise=p["noise"], samples=p["samples"],
                   seed=p["seed"], progress=ctx.progress)
    return _attribution_result(ctx, r, p["mode"])


def _ig(ctx: Ctx) -> dict:
    from ..attribution import integrated_gradients
    p = ctx.params
    r = integrated_gradients(ctx.model, ctx.fit(), _target(ctx.model, p["target"]), baseline=p["baseline"],
                             steps=p["steps"], method=p["method"], progress=ctx.progress)
    return _attribution_result(ctx, r, p["mode"])


def _occlusion(ctx: Ctx) -> dict:
    from ..attribution import occlusion
    p = ctx.params
    try:
        base = float(p["baseline"])
    except ValueError:
        base = p["baseline"]
    try:
        r = occlusion(ctx.model, ctx.fit(), _target(ctx.model, p["target"]), window=p["window"], stride=p["stride"],
                      baseline=base, score=p["score"], progress=ctx.progress)
    except KeyboardInterrupt as e:  # cancelled: keep the windows finished so far
        r = getattr(e, "partial", None)
        if r is None or not r.info.get("finished"):
            raise
    out = _attribution_result(ctx, r, p["mode"])
    out["figures"]["windows"] = [r.info.get("finished"), r.info.get("total")]
    return out


def _grabcut(ctx: Ctx) -> dict:
    from ..attribution import grabcut, saliency, smoothgrad
    from ..images import resize_shorter
    p = ctx.params
    img = resize_shorter(ctx.image, min(ctx.model.input_size))
    tgt = _target(ctx.model, p["target"])
    sal = smoothgrad(ctx.model, img, tgt, samples=16) if p["method"] == "smoothgrad" else saliency(ctx.model, img, tgt)
    g = grabcut(img, sal, foreground=p["foreground"], probable=p["probable"], background=p["background"])
    ctx.save(g.render(), f"grabcut from {p['method']} ({sal.labels[0]})")
    ctx.save(g.cutout, "cut-out")
    return {"figures": {"target": sal.labels[0], "foreground_fraction": g.foreground_fraction}}


def _sanity(ctx: Ctx) -> dict:
    from ..attribution import sanity_check
    p = ctx.params
    r = sanity_check(p["method"], ctx.model, ctx.fit(), _target(ctx.model, p["target"]), groups=p["groups"],
                     cascade=not p["independent"])
    ctx.save(r.render(), f"{r.method}: rank correlation as weights are randomized")
    return {"figures": {"rows": [{"randomized": n, "rho_abs": jsonable(a), "rho_signed": jsonable(b)}
                                 for n, a, b in r.rows],
                        "median_rho": jsonable(r.median_rho), "depends_on_model": bool(r.depends_on_model),
                        "summary": r.summary()}}


# --- synthesis -------------------------------------------------------------------------------

def _viz_result(ctx: Ctx, v) -> dict:
    for img, lab in zip(v.images, v.labels):
        ctx.save(img, lab)
    return {"figures": {"labels": v.labels, "scores": jsonable(v.scores), "steps": v.optim.steps,
                        "stopped": _stopped(ctx, v.optim.stopped), "seconds": round(v.optim.seconds, 3),
                        "objective": _curve(v.optim.history)}}


def _classviz(ctx: Ctx) -> dict:
    from ..recipes import visualize_class
    targets = [t.strip() for t in str(ctx.params["target"]).split(",") if t.strip()][:4]
    if not targets:
        raise ConvlensError("classviz needs a target class (name or index), e.g. flamingo")
    targets = [_target(ctx.model, t) for t in targets]
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
    from ..recipes import visualize_channel
    p = ctx.params
    v = visualize_channel(ctx.model, _layer(ctx.model, p["layer"]), _channels(p["channel"]), ctx.config,
                          progress=ctx.progress, callback=ctx.callback)
    return _viz_result(ctx, v)


def _neuronviz(ctx: Ctx) -> dict:
    from ..recipes import visualize_neuron
    p = ctx.params
    unit = None
    if p["unit"]:
        try:
            unit = tuple(int(v) for v in str(p["unit"]).split(","))
            assert len(unit) == 2
        except (ValueError, AssertionError):
            raise ConvlensError(f"unit takes y,x like 7,7, got {str(p['unit'])[:40]!r}") from None
    v = visualize_neuron(ctx.model, _layer(ctx.model, p["layer"]), _channels(p["channel"]), unit, ctx.config,
                         progress=ctx.progress, callback=ctx.callback)
    return _viz_result(ctx, v)


def _facets(ctx: Ctx) -> dict:
    from ..inspect import sample_dataset
    from ..recipes import visualize_facets
    p = ctx.params
    layer = p["layer"]
    if layer in ("class", "logits"):
        ch = _target(ctx.model, p["channel"])
    else:
        _layer(ctx.model, layer)
        ch = None if p["channel"] in (None, "", "auto") else _channels(p["channel"])[0]
    data = sample_dataset(p["images"], size=ctx.model.input_size[0])
    f = visualize_facets(ctx.model, layer, ch, data, config=ctx.config, progress=ctx.progress, callback=ctx.callback)
    ctx.save(f.figure, f"facets of {f.layer}:{f.channel} (facet, start, examples)")
    for i, img in enumerate(f.images):
        ctx.save(img, f"facet {i + 1}")
    return {"figures": {"layer": f.layer, "channel": jsonable(f.channel), "cluster_sizes": [len(c) for c in f.clusters],
                        "start_scores": jsonable(f.start_scores), "scores": jsonable(f.scores),
                        "steps": f.optim.steps, "stopped": _stopped(ctx, f.optim.stopped)}}


def _dream(ctx: Ctx) -> dict:
    from ..recipes import deepdream
    cfg = ctx.config
    if cfg.max_size is None:
        cfg = dataclasses.replace(cfg, max_size=512)
    d = deepdream(ctx.model, ctx.image, _layer(ctx.model, ctx.params["layer"]), cfg, progress=ctx.progress,
                  callback=ctx.callback)
    ctx.save(d.image, f"DeepDream at {ctx.params['layer']}")
    return {"figures": {"octaves": [{"size": list(s), "norm_before": b, "norm_after": a}
                                    for (b, a), s in zip(d.octave_norms, d.sizes)],
                        "stopped": _stopped(ctx, d.stopped)}}


def _invert(ctx: Ctx) -> dict:
    from ..recipes.inversion import invert
    r = invert(ctx.model, ctx.image, _layer(ctx.model, ctx.params["layer"]), ctx.config, progress=ctx.progress,
               callback=ctx.callback)
    ctx.save(r.target, "input (as fitted)")
    ctx.save(r.image, f"reconstruction from {r.layer}")
    return {"figures": {"layer": r.layer, "start_distance": r.start_distance, "distance": r.distance,
                        "steps": r.optim.steps, "stopped": _stopped(ctx, r.optim.stopped),
                        "objective": _curve(r.optim.history)}}


# --- adversarial -----------------------------------------------------------------------------

def _adv_result(ctx: Ctx, r) -> dict:
    ctx.save(r.render(0), r.summary().splitlines()[0])
    ctx.save(r.images[0], "adversarial image")
    return {"figures": {"method": r.method, "before": {"class": r.name(int(r.pred_before[0])), "prob": float(r.prob_before[0])},
                        "after": {"class": r.name(int(r.pred_after[0])), "prob": float(r.prob_after[0])},
                        "target_prob_before": float(r.target_prob_before[0]),
                        "target_prob_after": float(r.target_prob_after[0]),
                        "linf_255": 255 * float(r.linf[0]), "l2": float(r.l2[0]), "steps": int(r.steps[0]),
                        "fooled": bool(r.fooled[0]), "interrupted": bool(r.info.get("interrupted", False)),
                        "summary": r.summary()}}


def _fgsm(ctx: Ctx) -> dict:
    from ..adversarial import fgsm
    r = fgsm(ctx.model, ctx.fit(), target=_target(ctx.model, ctx.params["target"]), **dataclasses.asdict(ctx.config))
    return _adv_result(ctx, r)


def _pgd(ctx: Ctx) -> dict:
    from ..adversarial import pgd
    r = pgd(ctx.model, ctx.fit(), target=_target(ctx.model, ctx.params["target"]), progress=ctx.progress,
            **dataclasses.asdict(ctx.config))
    return _adv_result(ctx, r)


def _fool(ctx: Ctx) -> dict:
    from ..adversarial import fool
    tgt = _target(ctx.model, ctx.params["target"])
    if tgt is None:
        raise ConvlensError("fool needs a target class (name or index), e.g. goldfish")
    r = fool(ctx.model, ctx.fit(), tgt, progress=ctx.progress, **dataclasses.asdict(ctx.config))
    return _adv_result(ctx, r)


def _unrecognizable(ctx: Ctx) -> dict:
    from ..adversarial import unrecognizable
    tgt = _target(ctx.model, ctx.params["target"])
    if tgt is None:
        raise ConvlensError("unrecognizable needs a target class (name or index), e.g. robin")
    u = unrecognizable(ctx.model, [tgt], ctx.config, progress=ctx.progress)
    ctx.save(u.images[0], u.labels[0])
    return {"figures": {"labels": u.labels, "confidence": jsonable(u.confidence), "steps": u.steps,
                        "stopped": _stopped(ctx, u.optim.stopped)}}


# --- texture and style -----------------------------------------------------------------------

def _style_model(ctx: Ctx, name):
    from ..recipes.style import default_style_model
    return ctx.state.model(name or default_style_model(), "default")


def _texture(ctx: Ctx) -> dict:
    from ..recipes.style import synthesize_texture
    from ..texture import efros_leung, quilting, wei_levoy
    p = ctx.params
    img = ctx.image
    side = p["sample_size"]
    if side and max(img.shape[-2:]) > side:
        from ..recipes.style import resize_long
        img = resize_long(img, side)
    size, method = p["size"], p["method"]
    if method == "efros-leung":
        r = efros_leung(img, size, window=p["window"] or 11, seed=p["seed"], progress=ctx.progress)
    elif method == "wei-levoy":
        r = wei_levoy(img, size, window=p["window"] or 9, seed=p["seed"], progress=ctx.progress)
    elif method == "quilting":
        r = quilting(img, size, block=p["block"], seed=p["seed"], progress=ctx.progress)
    else:
        r = synthesize_texture(_style_model(ctx, None), img, size=size, sample_size=max(img.shape[-2:]),
                               steps=p["steps"], seed=p["seed"], progress=ctx.progress, callback=ctx.callback)
    ctx.save(img, "sample")
    ctx.save(r.image, f"{method} texture")
    return {"figures": {"method": method, "size": size, "seconds": round(getattr(r, "seconds", 0.0), 3),
                        "stopped": _stopped(ctx, r.stopped)}}


def _style_image(state, ref) -> torch.Tensor:
    """A style sample (hubble, ihc, colorwheel), a bundled sample (paintings too) or an upload id; never a path."""
    from ..texture.samples import STYLE_SAMPLES, texture_image
    return texture_image(ref) if ref in STYLE_SAMPLES else state.image(ref)


def _style(ctx: Ctx) -> dict:
    from ..recipes.style import style_transfer
    p = ctx.params
    style_img = _style_image(ctx.state, p["style"])
    m = _style_model(ctx, p["model"])
    r = style_transfer(m, ctx.image, [style_img], ctx.config, progress=ctx.progress, callback=ctx.callback)
    ctx.save(r.image, f"{p['style']} style on the input ({m.name})")
    return {"figures": {"network": m.name, "losses_start": jsonable(r.losses_start), "losses": jsonable(r.losses),
                        "seconds": round(r.seconds, 3), "stopped": _stopped(ctx, r.stopped)}}


def _fast_style(ctx: Ctx) -> dict:
    from ..recipes.fast_style import fast_style, load_fast_style
    from ..recipes.style import resize_long
    p = ctx.params
    net = load_fast_style(p["style"])
    img = resize_long(ctx.image, p["size"]) if p["size"] else ctx.image
    t = time.perf_counter()
    y = fast_style(net, img)
    ctx.save(y, f"fast style {p['style']}")
    return {"figures": {"style": p["style"], "shape": list(y.shape[-2:]), "ms": round(1000 * (time.perf_counter() - t), 1)}}


def _shipped_styles() -> list[str]:
    """The trained 26-style network's named styles (starry first), then convlens's own trained nets."""
    from ..models.style_nets import STYLE_NAMES
    from ..recipes.fast_style import shipped_styles
    names = [n for n, _ in STYLE_NAMES.values()]
    return ["starry", *(n for n in names if n != "starry"), *shipped_styles()]


def _registry() -> dict[str, Technique]:
    from ..adversarial import FGSMConfig, FoolConfig, PGDConfig, UnrecognizableConfig
    from ..recipes import DreamConfig, FacetsConfig, InvertConfig, VizConfig
    from ..recipes.style import StyleConfig
    from ..attribution.sanity import methods as sanity_methods
    neuron = [LAYER_NEURON, CHANNEL]
    T = Technique
    items = [
        T("saliency", "attribution", "Saliency (Simonyan 2014)", _gradient_method("saliency"),
          fixed=[TARGET, *neuron, MODE]),
        T("guided_backprop", "attribution", "Guided backprop (Springenberg 2015)", _gradient_method("guided_backprop"),
          fixed=[TARGET, *neuron, MODE]),
        T("deconvnet", "attribution", "Deconvnet (Zeiler & Fergus 2014)", _gradient_method("deconvnet"),
          fixed=[TARGET, *neuron, MODE]),
        T("grad_cam", "attribution", "Grad-CAM (Selvaraju 2017)", _grad_cam,
          fixed=[TARGET, F("layer", "str", None, "layer (empty: the last block with a spatial map)", optional=True), MODE]),
        T("smoothgrad", "attribution", "SmoothGrad (Smilkov 2017)", _smoothgrad, iterative=True,
          fixed=[TARGET, F("noise", "float", 0.15, "noise sigma as a fraction of the value range"),
                 F("samples", "int", 25, "noisy copies averaged"), F("seed", "int", 0, "noise seed"), MODE]),
        T("integrated_gradients", "attribution", "Integrated gradients (Sundararajan 2017)", _ig, iterative=True,
          fixed=[TARGET, F("steps", "int", 50, "quadrature points along the path"),
                 F("baseline", "float", 0.0, "baseline pixel value in [0, 1] (0 = black)"),
                 F("method", "str", "gausslegendre", "quadrature",
                   choices=["gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle"]),
                 MODE]),
        T("occlusion", "attribution", "Occlusion (Zeiler & Fergus 2014)", _occlusion, iterative=True,
          fixed=[TARGET, F("window", "int", 16, "occluding square's side, pixels"),
                 F("stride", "int", 8, "step between window positions, pixels"),
                 F("baseline", "str", "zero", "zero, grey, blur, mean, or a number in [0, 1]"),
                 F("score", "str", "prob", "prob (softmax) or logit", choices=["prob", "logit"]), MODE]),
        T("grabcut", "attribution", "GrabCut from saliency (Rother 2004)", _grabcut,
          fixed=[TARGET, F("method", "str", "smoothgrad", "seed map", choices=["smoothgrad", "saliency"]),
                 F("foreground", "float", 0.95, "quantile above which pixels are foreground seeds"),
                 F("probable", "float", 0.7, "quantile above which pixels are probable foreground"),
                 F("background", "float", 0.3, "quantile below which pixels are background seeds")]),
        T("sanity_check", "attribution", "Sanity check: model randomization (Adebayo 2018)", _sanity, iterative=True,
          fixed=[F("method", "str", "saliency", "attribution method to test", choices=list(sanity_methods())),
                 TARGET, F("groups", "int", 6, "randomization steps (groups of layers)"),
                 F("independent", "bool", False, "randomize one group at a time, not cascading")]),
        T("classviz", "synthesis", "Class visualization", _classviz, VizConfig, iterative=True, needs_image=False,
          fixed=[F("target", "str", "flamingo", "class name or index; up to 4 comma-separated")]),
        T("channelviz", "synthesis", "Channel visualization", _channelviz, VizConfig, iterative=True, needs_image=False,
          fixed=[F("layer", "str", "features.10", "layer name"),
                 F("channel", "str", "7", "channel index; up to 4 comma-separated")]),
        T("neuronviz", "synthesis", "Neuron visualization", _neuronviz, VizConfig, iterative=True, needs_image=False,
          fixed=[F("layer", "str", "features.10", "layer name"), F("channel", "str", "7", "channel index"),
                 F("unit", "str", None, "y,x of the neuron (empty: the centre)", optional=True)]),
        T("facets", "synthesis", "Multifaceted visualization (Nguyen 2016)", _facets, FacetsConfig, iterative=True,
          needs_image=False,
          fixed=[F("layer", "str", "class", "layer name, or 'class'"),
                 F("channel", "str", "Egyptian cat", "channel index or 'auto'; with layer=class a class name or index"),
                 F("images", "int", 60, "bundled sample images to cluster")]),
        T("deepdream", "synthesis", "DeepDream (Mordvintsev 2015)", _dream, DreamConfig, iterative=True,
          fixed=[F("layer", "str", "features.10", "layer to amplify")]),
        T("inversion", "synthesis", "Feature inversion (Mahendran & Vedaldi 2015)", _invert, InvertConfig,
          iterative=True, fixed=[F("layer", "str", "features.6", "layer whose features are inverted")]),
        T("fgsm", "adversarial", "FGSM (Goodfellow 2015)", _fgsm, FGSMConfig,
          fixed=[F("target", "str", None, "class to reach (targeted); empty: untargeted", optional=True)]),
        T("pgd", "adversarial", "PGD (Madry 2018)", _pgd, PGDConfig, iterative=True,
          fixed=[F("target", "str", None, "class to reach (targeted); empty: untargeted", optional=True)]),
        T("fool", "adversarial", "Fooling image (Szegedy 2014)", _fool, FoolConfig, iterative=True,
          fixed=[F("target", "str", "goldfish", "class to reach")]),
        T("unrecognizable", "adversarial", "Unrecognizable image (Nguyen 2015)", _unrecognizable, UnrecognizableConfig,
          iterative=True, needs_image=False, fixed=[F("target", "str", "robin", "class to reach")]),
        T("texture", "texture", "Texture synthesis from the image", _texture, iterative=True,
          fixed=[F("method", "str", "quilting", "algorithm", choices=["efros-leung", "wei-levoy", "quilting", "gram"]),
                 F("size", "int", 128, "output size in pixels (square)"),
                 F("sample_size", "int", 96, "resize the sample's longer side to this first (0: keep)"),
                 F("window", "int", None, "neighbourhood size (default: efros-leung 11, wei-levoy 9)", optional=True),
                 F("block", "int", 32, "quilting block size"), F("steps", "int", 100, "optimizer steps (gram)"),
                 F("seed", "int", 0, "random seed")]),
        T("style", "texture", "Neural style transfer (Gatys 2016)", _style, StyleConfig, iterative=True,
          hidden=("content_layers", "style_layers"),
          fixed=[F("style", "str", "starry_night", "style image: a painting (starry_night, great_wave, kandinsky...), "
                   "hubble, ihc, colorwheel, a sample name or an upload id"),
                 F("model", "str", None, "network (empty: vgg19 if cached, else vgg16-imagenet)",
                   choices=["vgg16-imagenet", "vgg16-hed", "vgg19", "mobilenet_v2"], optional=True)]),
        T("fast_style", "texture", "Fast style transfer (Johnson 2016)", _fast_style,
          fixed=[F("style", "str", _shipped_styles()[0], "a style of the trained 26-style network (Dumoulin 2017) "
                   "or a convlens-trained net", choices=_shipped_styles()),
                 F("size", "int", 256, "resize the longer side first (0: keep)")]),
    ]
    return {t.name: t for t in items}


_TECHNIQUES: dict[str, Technique] | None = None


def techniques() -> dict[str, Technique]:
    """The registry (built once)."""
    global _TECHNIQUES
    if _TECHNIQUES is None:
        _TECHNIQUES = _registry()
    return _TECHNIQUES


def get(name: str) -> Technique:
    t = techniques().get(name)
    if t is None:
        raise ConvlensError(f"unknown technique '{str(name)[:40]}'; closest: {closest(str(name), techniques())} "
                            "(GET /api/techniques lists them)")
    return t
