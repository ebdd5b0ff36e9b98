"""Demo sections of the foundation: predictions of the default model, its layer table."""
from __future__ import annotations

from ..images import PHOTOS, sample_image
from ..models import predict
from ..render import grid


def predictions(report, ctx):
    m = ctx.model
    names = PHOTOS if not ctx.quick else PHOTOS[:3]
    sec = report.section("Predictions", f"Top-5 of {m.name} ({m.weights}) on the bundled sample images "
                         "(resized to 224 px, centre crop).")
    imgs, labels, rows = [], [], []
    for n in names:
        img = sample_image(n, m.input_size)
        top = predict(m, img, 5)[0]
        imgs.append(img)
        labels.append(f"{top[0].label} {top[0].prob:.2f}")
        rows.append([n] + [f"{p.label} ({p.prob:.3f})" for p in top])
    sec.figure(grid(imgs, labels, ncol=len(imgs), tile=160, upscale="bilinear"), "predictions.png",
               "Sample images with their top-1 class and probability.",
               command="convlens predict " + " ".join(names) + " --topk 5")
    sec.table(["image", "top-1", "top-2", "top-3", "top-4", "top-5"], rows)


def layer_table(report, ctx):
    from ..probe import receptive_field
    m = ctx.model
    sec = report.section("Layers", f"The addressable layers of {m.name}: dotted name, type, output shape at "
                         f"{m.input_size[0]} px, parameters, and each top-level block's exact receptive field.")
    rows = []
    for li in m.layers():
        if li.name.count(".") > 1 and not ctx.quick and li.type not in ("Conv2d",):
            continue
        rf = ""
        if li.name.startswith("features.") and li.name.count(".") == 1 and len(li.shape) == 3:
            r = receptive_field(m, li.name)
            rf = f"{r.size[0]} px, stride {r.stride[0]}, offset {r.offset[0]}"
        rows.append([li.name, li.type, "x".join(map(str, li.shape)), f"{li.params:,}", rf])
    sec.command(f"convlens layers {m.name} --rf")
    sec.table(["name", "type", "output", "params", "receptive field"], rows)


SECTIONS = [("predictions", predictions), ("layers", layer_table)]
