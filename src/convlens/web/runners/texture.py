"""Lab runners of the texture family: texture synthesis, Gatys style transfer, fast style transfer."""
from __future__ import annotations

import time

import torch

from ...images.io import resize_long
from ...models.style_nets import STYLE_NAMES
from ...recipes.fast_style import fast_style, load_fast_style, shipped_styles
from ...recipes.style import default_style_model, style_transfer
from ...recipes.texture_synthesis import texture_synthesis
from ...texture.samples import STYLE_SAMPLES, texture_image
from ..context import Ctx, jsonable
from ..forms import F
from . import Runner


def _style_model(ctx: Ctx, name):
    return ctx.state.model(name or default_style_model(), "default")


def _texture(ctx: Ctx) -> dict:
    cfg = ctx.config
    t = texture_synthesis(ctx.image, cfg, model=_style_model(ctx, None) if cfg.method == "gram" else None,
                          progress=ctx.progress, callback=ctx.callback)
    ctx.save(t.sample, "sample")
    ctx.save(t.image, f"{cfg.method} texture")
    return {"figures": {**t.summary(), "stopped": ctx.stopped(t.result.stopped)}}


def style_image(state, ref) -> torch.Tensor:
    """A style sample (hubble, ihc, colorwheel), a bundled sample (paintings too) or an upload id; never a path."""
    return texture_image(ref) if ref in STYLE_SAMPLES else state.image(ref)


def _style(ctx: Ctx) -> dict:
    p = ctx.params
    style_img = style_image(ctx.state, p["style"])
    m = _style_model(ctx, p["model"])
    r = style_transfer(m, ctx.image, [style_img], ctx.config, progress=ctx.progress, callback=ctx.callback)
    ctx.save(r.image, f"{p['style']} style on the input ({m.name})")
    return {"figures": {"network": m.name, "losses_start": jsonable(r.losses_start), "losses": jsonable(r.losses),
                        "seconds": round(r.seconds, 3), "stopped": ctx.stopped(r.stopped)}}


def _fast_style(ctx: Ctx) -> dict:
    p = ctx.params
    net = load_fast_style(p["style"])
    img = resize_long(ctx.image, p["size"]) if p["size"] else ctx.image
    t = time.perf_counter()
    y = fast_style(net, img)
    ctx.save(y, f"fast style {p['style']}")
    return {"figures": {"style": p["style"], "shape": list(y.shape[-2:]), "ms": round(1000 * (time.perf_counter() - t), 1)}}


def _shipped_styles() -> list[str]:
    """The trained 26-style network's named styles (starry first), then convlens's own trained nets."""
    names = [n for n, _ in STYLE_NAMES.values()]
    return ["starry", *(n for n in names if n != "starry"), *shipped_styles()]




RUNNERS = {
    "texture": Runner(_texture),
    "style": Runner(_style, [
        F("style", "str", "starry_night", "style image: a painting (starry_night, great_wave, kandinsky...), "
          "hubble, ihc, colorwheel, a sample name or an upload id"),
        F("model", "str", None, "network (empty: vgg19 if cached, else vgg16-imagenet)",
          choices=["vgg16-imagenet", "vgg16-hed", "vgg19", "mobilenet_v2"], optional=True)],
        hidden=("content_layers", "style_layers")),
    "fast_style": Runner(_fast_style, [
        F("style", "str", _shipped_styles()[0], "a style of the trained 26-style network (Dumoulin 2017) "
          "or a convlens-trained net", choices=_shipped_styles()),
        F("size", "int", 256, "resize the longer side first (0: keep)")]),
}
