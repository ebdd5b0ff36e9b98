"""Demo-report sections for synthesis by gradient ascent: class visualization (three presets),
channels, DeepDream, and the feature-inversion row. Quick mode: tiny sizes and a few steps."""
from __future__ import annotations

import torch

from ..images import fit, sample_image
from ..inspect import sample_dataset
from ..models import load_model
from ..recipes import (deepdream, invert_layers, load_face_generator, visualize_channel, visualize_class,
                       visualize_facets)
from ..render import grid
from .threads import small_batch

CLASSES = ["flamingo", "pelican", "ground beetle", "Indian cobra"]


def class_viz(report, ctx):
    m = ctx.model
    size, steps = (64, 6) if ctx.quick else (160, 128)
    sec = report.section("Class visualization", "Images synthesized to maximize a class score before softmax. "
                         "robust: Fourier parameterization + colour decorrelation + random jitter/scale/rotate "
                         "(Olah 2017); simonyan: zero start, L2 penalty, plain ascent (Simonyan 2014); yosinski: "
                         "blur + pixel clipping (Yosinski 2015). Labels: the class and its probability.")
    v = visualize_class(m, CLASSES, size=size, steps=steps, decay_power=1.5)
    with torch.no_grad():
        probs = m(v.images).softmax(1)
    labels = [f"{c} p={float(probs[i, m.class_index(c)]):.2f}" for i, c in enumerate(CLASSES)]
    sec.figure(grid(list(v.images), labels, ncol=4, tile=size), "classviz_robust.png",
               f"robust preset, decay_power 1.5, {steps} steps at {size} px.",
               command=f"convlens classviz --target '{','.join(CLASSES)}' --steps {steps} --size {size} "
                       "--decay-power 1.5 -o classes.png")
    small = (64, 4) if ctx.quick else (128, 96)
    for preset in ("simonyan", "yosinski"):
        v = visualize_class(m, CLASSES[:2], preset=preset, size=small[0], steps=small[1])
        sec.figure(grid(list(v.images), v.labels, ncol=2, tile=small[0]), f"classviz_{preset}.png",
                   f"{preset} preset, {small[1]} steps at {small[0]} px.",
                   command=f"convlens classviz --target flamingo,pelican --preset {preset} -o {preset}.png")


def channel_viz(report, ctx):
    m = ctx.model
    size, steps = (48, 4) if ctx.quick else (112, 80)
    sec = report.section("Channel visualization", "Images maximizing the mean activation of one channel, "
                         "from an early to a late layer (robust preset).")
    imgs, labels = [], []
    for layer, ch in (("features.4", 3), ("features.8", 10), ("features.14", 5), ("features.17", 12)):
        v = visualize_channel(m, layer, ch, size=size, steps=steps)
        imgs.append(v.images)
        labels += v.labels
    sec.figure(grid([i for t in imgs for i in t], labels, ncol=4, tile=size), "channels.png",
               f"{steps} steps at {size} px.", command=f"convlens neuronviz --layer features.14 --channel 5 -o ch.png")


def dreams(report, ctx):
    m = ctx.model
    size, octaves, steps = (64, 2, 2) if ctx.quick else (256, 3, 8)
    sec = report.section("DeepDream", "Amplify what a layer sees: maximize the sum of its squared activations "
                         f"over {octaves} octaves (x1.4) with random-roll jitter and normalized steps "
                         "(Mordvintsev 2015); the last one is guided by the coffee image.")
    cat = fit(sample_image("chelsea"), size)
    imgs, labels = [cat], ["input"]
    for layer in ("features.4", "features.10"):
        imgs.append(deepdream(m, cat, layer, octaves=octaves, steps=steps).image)
        labels.append(layer)
    imgs.append(deepdream(m, cat, "features.10", octaves=octaves, steps=steps,
                          guide=fit(sample_image("coffee"), 224)).image)
    labels.append("features.10 guided by coffee")
    if not ctx.quick:  # the lecture's network: the offline ImageNet VGG-16, relu4_3
        imgs.append(deepdream(load_model("vgg16-imagenet"), cat, "features.22", octaves=octaves, steps=steps).image)
        labels.append("VGG-16 relu4_3 (features.22)")
    sec.figure(grid(imgs, labels, ncol=len(imgs), tile=min(size, 256), upscale="bilinear"), "dreams.png",
               f"chelsea dreamed at two depths of {m.name}, then on VGG-16.",
               command=f"convlens dream chelsea --layer features.10 -o dream.png   "
                       "# and --model vgg16-imagenet --layer features.22")


def generator_space(report, ctx):
    m = ctx.model
    size, steps = (64, 3) if ctx.quick else (160, 40)
    sec = report.section("Generator space", "Nguyen et al. 2016: optimize the code z of a trained generator, "
                         "image = G(z), instead of the pixels. G is the DCGAN face generator of gan-face-generate "
                         "(64 px synthetic faces, upsampled); z is clipped to [-3, 3]. A faces-only prior: the class "
                         "shows only as far as a face can carry it (hair for a wig, redder lips), beside pixel-space "
                         "results (robust preset, same steps) that reach p = 1 with no such constraint.")
    G = load_face_generator(size)
    imgs, labels = [], []
    for c in ("wig", "lipstick"):
        g = visualize_class(m, c, param="generator", generator=G, steps=steps, transforms="none")
        p = visualize_class(m, c, size=size, steps=steps)
        with torch.no_grad():
            pg, pp = (float(m(v.images).softmax(1)[0, m.class_index(c)]) for v in (g, p))
        imgs += [g.images, p.images]
        labels += [f"{c}: faces G(z) p={pg:.2f}", f"{c}: pixels p={pp:.2f}"]
    sec.figure(grid(imgs, labels, ncol=4, tile=size), "generator_faces.png",
               f"{steps} Adam steps on z (lr 0.05) and on the Fourier pixels at {size} px; start z ~ N(0, 1), seed 0.",
               command=f"convlens classviz --target wig,lipstick --generator faces --steps {steps} --size {size} "
                       "--transforms none -o faces.png")


def inversion(report, ctx):
    m = load_model("vgg16-imagenet")
    size, steps = (48, 5) if ctx.quick else (128, 120)
    layers = ["features.1", "features.6", "features.11", "features.18", "features.25"]   # relu1_1 .. relu5_1
    if ctx.quick:
        layers = layers[:2]
    sec = report.section("Feature inversion", "One image reconstructed from the features of each layer of the "
                         "offline ImageNet VGG-16 (relu1_1 .. relu5_1; Mahendran & Vedaldi 2015: feature distance + "
                         "TV^2 + alpha-norm). Detail fades with depth; d is the final normalized feature distance.")
    row = invert_layers(m, sample_image("chelsea"), layers, size=size, steps=steps)
    sec.figure(row.figure, "inversion.png", f"{steps} steps at {size} px per layer.",
               command="convlens invert chelsea --layer " + ",".join(layers) + " -o inversion.png")


def facets(report, ctx):
    m = ctx.model
    layer, ch = FACET_CHANNEL
    if ctx.quick:
        ds, kw = sample_dataset(24, size=64), dict(n_facets=2, top=6, size=48, steps=3, octaves=1, examples=2)
    else:
        ds, kw = sample_dataset(200), dict(n_facets=3, top=24, size=128, steps=48, octaves=2, examples=4)
    sec = report.section("Multifaceted visualization", "Nguyen, Yosinski & Clune 2016: the channel's top images "
                         f"({len(ds)} bundled sample photos) are cut around their strongest unit, clustered (k-means on "
                         "pooled late-layer features); one optimization per cluster starts from the cluster's mean "
                         "patch, with a centre bias and TV. Each row: the facet, its start, the cluster's examples.")
    f = visualize_facets(m, layer, ch, ds, **kw)
    sec.figure(f.figure, "facets.png", f"{layer} channel {ch} (its top patches come from several different photos); "
               f"{kw['octaves']} octaves x {kw['steps']} steps at {kw['size']} px. Scores: start "
               + ", ".join(f"{a:.2f}->{b:.2f}" for a, b in zip(f.start_scores.tolist(), f.scores.tolist())),
               command=f"convlens facets --layer {layer} --channel {ch} --images samples:200 --n-facets 3 -o facets.png")


def maco_evidence(report, ctx):
    """MACO beside the robust preset, each with its natural exemplars and plausibility (issue 24)."""
    m = ctx.model
    # within the report's time budget (24 steps, 2 crops): fewer steps and crops than the configuration measured to reach 4/4
    # top-1 (96 steps, 6 crops, 256 px canvas: docs/synthesis.md, MACO), which takes minutes here
    steps, canvas, crops, k = (4, 64, 2, 3) if ctx.quick else (24, 224, 2, 5)
    boxes = dict(box_start=0.7, box_end=0.3)
    sec = report.section("MACO and natural evidence", "MACO (Fel et al. 2023): the Fourier magnitude is fixed to "
                         "that of natural images (estimated from the bundled photos, cached), only the phase is "
                         "optimized (NAdam), on random crops of a large canvas with noise; the summed |input gradients| "
                         "give a transparency map (where the feature lives). Beside each synthetic image: its top "
                         "natural exemplars (foolbox's 20 ImageNet photos by class logit; the bundled sample photos' "
                         "max-activating patches for a channel) and the plausibility score: the mean cosine "
                         "similarity to them in MobileNetV2's penultimate representation (after the /: the "
                         "exemplars among themselves).")
    v = visualize_class(m, CLASSES, preset="maco", steps=steps, canvas=canvas, crops=crops, **boxes)
    sec.figure(grid(list(v.images) + list(v.transparent()), [*CLASSES, *(f"{c} (transparency)" for c in CLASSES)],
                    ncol=4, tile=min(canvas, 224)), "maco_classes.png",
               f"maco preset, {steps} steps, {crops} crops per step, {canvas} px canvas, crop side 0.7 -> 0.3; second "
               "row: the image with its transparency map as opacity over white.",
               command=f"convlens classviz --target '{','.join(CLASSES)}' --preset maco --steps {steps} "
                       f"--canvas {canvas} --crops {crops} --box-start 0.7 --box-end 0.3 -o maco.png")
    two = ["strawberry", "jeep"]
    robust = visualize_class(m, two, size=128 if not ctx.quick else 48, steps=steps)
    maco = visualize_class(m, two, preset="maco", steps=steps, canvas=canvas, crops=crops, **boxes)
    for name, viz in (("robust", robust), ("maco", maco)):
        e = viz.evidence(m, "imagenet20" if not ctx.quick else "samples:12", k=k,
                         transfer=() if ctx.quick else None)   # None: DEFAULT_TRANSFER (both EfficientNet-Lites)
        sec.figure(e.figure(), f"evidence_{name}.png", f"{name} preset: " + "; ".join(e.text()),
                   command=f"convlens classviz --target strawberry,jeep --preset {name} --exemplars imagenet20 -o s.png")
    v = visualize_channel(m, "features.10", 7, preset="maco", steps=steps, canvas=canvas, crops=crops, **boxes)
    e = v.evidence(m, "samples:120" if not ctx.quick else "samples:12", k=k)
    sec.figure(e.figure(synthetic=v.transparent()), "evidence_channel.png", "; ".join(e.text()),
               command="convlens neuronviz --layer features.10 --channel 7 --preset maco --exemplars samples:120 -o ch.png")


FACET_CHANNEL = ("features.10", 8)


SECTIONS = [(name, small_batch(b)) for name, b in (
    ("classviz", class_viz), ("channels", channel_viz), ("facets", facets), ("deepdream", dreams),
    ("generator", generator_space), ("inversion", inversion), ("maco", maco_evidence))]
