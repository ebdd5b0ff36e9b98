"""Demo-report sections for the attribution concern: (name, build(report, ctx)) pairs, in order."""
from __future__ import annotations

from pathlib import Path

import torch

from .. import attribution as A
from ..images import resize_shorter, sample_image
from ..render import grid, stack_rows
from .foundation import foolbox_photos


def _full(name: str, side: int = 224) -> torch.Tensor:
    """A sample image with its whole frame kept, shorter side resized to ``side``."""
    return resize_shorter(sample_image(name), side)


def side_by_side_methods(report, ctx):
    m = ctx.model
    q = ctx.quick
    side = 128 if q else m.input_size
    names = ["chelsea"] if q else ["chelsea", "coffee"]
    items = [(n, sample_image(n, side), "", n) for n in names]
    fb = [16] if q else [16, 14]  # foolbox's dalmatian, and its spoonbill (read as a white stork)
    items += [(Path(p).stem, x[None], t, p) for x, p, t in zip(*foolbox_photos(fb, side))]
    sec = report.section("Which pixels matter", "Seven attribution methods side by side on the offline "
                         f"{m.name}, each explaining the predicted class. Saliency = max over RGB of |dS/dx| "
                         "(Simonyan 2014); SmoothGrad averages it over noisy copies (Smilkov 2017); guided backprop "
                         "and deconvnet override the ReLU gradients (Springenberg 2015, Zeiler & Fergus 2014; drawn "
                         "as RGB, grey = 0); Grad-CAM weights the last block's maps by their mean gradient "
                         "(Selvaraju 2017); integrated gradients integrate the gradient from a black image "
                         "(Sundararajan 2017); occlusion records the probability drop under a sliding grey patch "
                         "(Zeiler & Fergus 2014). Raw ranges are in the table.")
    rows = []
    for n, img, true, arg in items:
        res = [A.saliency(m, img), A.smoothgrad(m, img, samples=4 if q else 25),
               A.guided_backprop(m, img), A.deconvnet(m, img), A.grad_cam(m, img),
               A.integrated_gradients(m, img, steps=4 if q else 32),
               A.occlusion(m, img, window=32 if q else 16, stride=32 if q else 8, baseline="grey")]
        tiles = [img] + [r.heatmap(0) if r.default_mode == "rgb" else r.overlay(0, colorbar=False, label=False)
                         for r in res]
        labels = [f"true {true}: {res[0].labels[0]}" if true else f"{n}: {res[0].labels[0]}"] \
            + [r.method.replace("_", " ") for r in res]
        fname = f"attribution_{n}.png"
        truth = f" (true label: {true}; ImageNet validation photo from foolbox)" if true else ""
        sec.figure(grid(tiles, labels, ncol=len(tiles), tile=160, upscale="bilinear"), fname,
                   f"{n}{truth}: image, then each method's map for the predicted '{res[0].labels[0]}'.",
                   command=f"convlens saliency {arg} -o sal.png  (likewise: smoothgrad, guided, deconvnet, gradcam, ig, "
                           f"occlusion --window {32 if q else 16} --stride {32 if q else 8} --baseline grey)")
        ig = res[5].info
        rows.append([n, true or "-", res[0].labels[0]]
                    + [f"{float(r.map.min()):.3g} .. {float(r.map.max()):.3g}" for r in res]
                    + [f"{ig['sum_attributions'][0]:.3f} vs {ig['score_diff'][0]:.3f}"])
    sec.table(["image", "true label", "target (predicted)", "saliency", "smoothgrad", "guided", "deconvnet",
               "grad-cam", "IG", "occlusion",
               "IG completeness: sum vs S(x)-S(0)"], rows)


def grabcut_section(report, ctx):
    m = ctx.model
    names = ["coffee"] if ctx.quick else ["coffee", "chelsea", "flower", "rocket"]
    sec = report.section("Segmentation without supervision", "GrabCut (Rother 2004) seeded from saliency "
                         "quantiles (Simonyan 2014, section 3.1): above the 95th percentile = foreground, above the "
                         "70th = probable foreground, below the 30th = background. The whole frame is kept (not the "
                         "model's centre crop). The lecture seeds from the plain gradient; SmoothGrad seeds are more "
                         "coherent, so the figure shows both for the first image and SmoothGrad for the rest.")
    rows = []
    for i, n in enumerate(names):
        img = _full(n, 128 if ctx.quick else 224)
        if i == 0:
            rows.append(A.grabcut(img, A.saliency(m, img)).render(height=160))
        if not ctx.quick:
            rows.append(A.grabcut(img, A.smoothgrad(m, img, samples=16)).render(height=160))
    sec.figure(stack_rows(rows), "grabcut.png", "Image | smoothed saliency | seeds | GrabCut mask | cut-out "
               f"(first row: seeds from the plain gradient).", command=f"convlens grabcut {names[0]} -o cut.png "
               f"[--method saliency]")


def neurons_section(report, ctx):
    m = ctx.model
    layer = "features.14"
    channels = [7] if ctx.quick else [7, 21, 42, 99, 120]
    names = ["chelsea"] if ctx.quick else ["chelsea", "coffee", "astronaut", "flower"]
    imgs = torch.cat([sample_image(n, m.input_size) for n in names])
    tiles, labels = [], []
    for c in channels:
        r = A.guided_backprop(m, imgs, layer=layer, channel=c, unit="max")
        d = A.deconvnet(m, imgs, layer=layer, channel=c, unit="max")
        for i, n in enumerate(names):
            box = _support_box(r.attributions[i])
            tiles += [_crop(imgs[i], box), _rgb_crop(r.attributions[i], box), _rgb_crop(d.attributions[i], box)]
            labels += [f"ch {c} {n} {r.info['activation'][i]:.2f}", "guided", "deconvnet"]
    sec = report.section("Inner neurons: guided backprop and deconvnet", f"For channels of {layer}, the strongest "
                         f"unit in each image: the input patch where its guided backprop is non-zero, its "
                         "guided-backprop image and its deconvnet image (as in Springenberg 2015, fig. of "
                         "patches beside guided backprop). The number is the unit's activation.")
    sec.figure(grid(tiles, labels, ncol=3 * len(names), tile=96, upscale="bilinear"), "neurons_guided.png",
               "Rows: channels; per image: patch | guided backprop | deconvnet (grey = 0).",
               command=f"convlens guided chelsea --layer {layer} --channel {channels[0]} --unit max -o gb.png")


def _support_box(a: torch.Tensor, frac: float = 0.05, pad: int = 6) -> tuple[int, int, int, int]:
    """A square (top, left, size) around where |a| exceeds ``frac`` of its max (the visible support)."""
    m = a.abs().sum(0)
    ys, xs = torch.nonzero(m > frac * float(m.max()), as_tuple=True)
    H, W = m.shape
    if len(ys) == 0:
        return 0, 0, min(H, W)
    t, b, l, r = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    size = min(min(H, W), max(b - t, r - l) + 2 * pad)
    top = min(max(0, (t + b - size) // 2), H - size)
    left = min(max(0, (l + r - size) // 2), W - size)
    return top, left, size


def _crop(img: torch.Tensor, box) -> torch.Tensor:
    top, left, size = box
    return img[..., top:top + size, left:left + size]


def _rgb_crop(a: torch.Tensor, box) -> torch.Tensor:
    """Per-channel values in the box as an image, grey = 0, scaled by the box's own 99.5th percentile."""
    c = _crop(a, box).double()
    s = float(torch.quantile(c.abs().flatten(), 0.995)) or float(c.abs().max()) or 1.0
    return (0.5 + c / (2 * s)).clamp(0, 1).float()


def sanity_section(report, ctx):
    m = ctx.model
    img = sample_image("chelsea", 128 if ctx.quick else m.input_size)
    methods = ["saliency", "guided_backprop"] if ctx.quick else ["saliency", "guided_backprop", "grad_cam",
                                                                  "integrated_gradients"]
    sec = report.section("Sanity check", "Model-parameter randomization (Adebayo et al. 2018): the layers are "
                         "re-initialized from the logits down, and each new map is compared with the original by "
                         "Spearman rank correlation. A map that survives random weights explains the image, not "
                         "the model: guided backprop is the textbook failure.")
    figs, rows = [], []
    for meth in methods:
        kw = {"steps": 8} if meth == "integrated_gradients" else {}
        r = A.sanity_check(meth, m, img, groups=3 if ctx.quick else 6, **kw)
        figs.append(r.render(tile=112))
        rows += [[meth, n, f"{a:.3f}", f"{s:.3f}"] for n, a, s in r.rows]
        rows.append([meth, "verdict", f"median {r.median_rho:.2f}",
                     "depends on the model" if r.depends_on_model else "FAILS: barely depends on the weights"])
    sec.figure(stack_rows(figs), "sanity.png", "Per method: the original map, then the map after randomizing "
               "every layer from the logits down to the named one (rho = Spearman of |map|).",
               command="convlens sanity guided chelsea -o sanity.png")
    sec.table(["method", "randomized down to", "rho |map|", "rho signed"], rows)


SECTIONS: list = [("attribution", side_by_side_methods), ("grabcut", grabcut_section),
                  ("guided-neurons", neurons_section), ("sanity", sanity_section)]
