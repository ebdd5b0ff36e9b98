"""Demo sections of the foundation: predictions of the default model, its layer table."""
from __future__ import annotations

import torch

from ..drivers.predict import predict
from ..images import PHOTOS, sample_image
from ..images.labelled import labelled_photos
from ..inspect.stages import stage_layers
from ..probe import Probe, receptive_field
from ..render import grid, heatmap


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
    labelled_predictions(sec, m, 8 if ctx.quick else 20)


def foolbox_photos(indices, size):
    """Some of foolbox's ImageNet photos for the other sections: (images (N,3,S,S), file paths, true labels)."""
    photos = labelled_photos("imagenet20")
    imgs = photos.images(size)[list(indices)]
    return imgs, [str(photos.paths[i]) for i in indices], [photos.label_of(i) for i in indices]


def labelled_predictions(sec, m, n: int = 20) -> None:
    """foolbox's ImageNet validation photos: the true label beside the top-5, and the accuracy."""
    photos = labelled_photos("imagenet20")
    idx = list(range(min(n, len(photos))))
    x = photos.images(m.input_size)[idx]
    rows, caps, top1, top5 = [], [], 0, 0
    for i, top in zip(idx, predict(m, x, 5)):
        true, cls = photos.label_of(i), photos.imagenet[i]
        top1 += top[0].index == cls
        top5 += any(p.index == cls for p in top)
        caps.append(f"{true}: {'ok' if top[0].index == cls else top[0].label}")
        rows.append([photos.paths[i].name, true] + [("✓ " if p.index == cls else "") + f"{p.label} ({p.prob:.3f})"
                                                    for p in top])
    sec.text(f"{len(idx)} ImageNet validation photos shipped with foolbox, with their true labels: top-1 "
             f"{top1}/{len(idx)}, top-5 {top5}/{len(idx)} (✓ marks the true class).")
    sec.figure(grid(x, caps, ncol=min(10, len(idx)), tile=128, upscale="bilinear"), "predictions_imagenet20.png",
               "foolbox's ImageNet photos: the true label, then 'ok' or the wrong top-1.",
               command="python -c \"import convlens; s = convlens.labelled_photos('imagenet20'); "
                       "print(s.label_names, convlens.predict(convlens.load_model(), s.images(224), 5))\"")
    sec.table(["photo", "true label", "top-1", "top-2", "top-3", "top-4", "top-5"], rows)


def stage_strip(m, image: str = "chelsea"):
    """The network at a glance: the image, then each resolution stage's last block (found from the
    model, ``inspect.stages.stage_layers``) as its mean activation map over channels, labelled with
    channels x size and receptive field."""
    stages = stage_layers(m)
    img = sample_image(image, m.input_size)
    with Probe(m, stages, detach=True) as p, torch.inference_mode():
        p.run(img)
        maps = {s: p[s][0].float() for s in stages}
    tiles, labels = [img], [f"{image} {m.input_size[0]}px"]
    for s in stages:
        a = maps[s]
        rf = receptive_field(m, s).size[0]
        tiles.append(heatmap(a.mean(0), "minmax", size=m.input_size))
        labels.append(f"{s} {a.shape[0]}x{a.shape[1]}x{a.shape[2]} rf {rf}")
    return stages, grid(tiles, labels, ncol=len(tiles), tile=160, upscale="bilinear", label_size=10)


def layer_table(report, ctx):
    m = ctx.model
    sec = report.section("Layers", f"The addressable layers of {m.name}: dotted name, type, output shape at "
                         f"{m.input_size[0]} px, parameters, and each top-level block's exact receptive field.")
    stages, fig = stage_strip(m)
    sec.figure(fig, "stages.png", f"{m.name} at a glance: the last block of each resolution stage (found from the "
               "model, as the explorer's layer browser picks its default layers) and its mean activation over "
               "channels on the cat; label: layer, channels x height x width, receptive field in px. The full "
               "layer table is folded below.", command=f"convlens layers {m.name} --rf",
               explorer=f"/layers/{stages[len(stages) // 2]}?image=chelsea")
    rows = []
    for li in m.layers():
        if li.name.count(".") > 1 and not ctx.quick and li.type not in ("Conv2d",):
            continue
        rf = ""
        if li.name.startswith("features.") and li.name.count(".") == 1 and len(li.shape) == 3:
            r = receptive_field(m, li.name)
            rf = f"{r.size[0]} px, stride {r.stride[0]}, offset {r.offset[0]}"
        rows.append([li.name, li.type, "x".join(map(str, li.shape)), f"{li.params:,}", rf])
    sec.table(["name", "type", "output", "params", "receptive field"], rows)


SECTIONS = [("predictions", predictions), ("layers", layer_table)]
