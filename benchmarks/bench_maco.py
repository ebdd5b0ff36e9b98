"""MACO (preset "maco") vs the Fourier preset ("robust"), same class objective, on mobilenet_v2.

Rows (full run: 256 steps, 224 px network input, the lecture's 4 classes in one batch):
  * time per step, maco vs robust (one 224 px image per class). maco runs the configuration that
    reaches 4/4 top-1 in ``test_maco_reaches_top1_for_the_lecture_classes`` (6 crops of a 256 px canvas,
    crop side 0.7 -> 0.3), with 256 steps; a second row times Xplique's defaults (32 crops of 512 px)
    over 8 steps (the cost per step is the crops' forward/backward passes, the same at every step);
  * plausibility: mean over the 4 classes of the cosine similarity to their top-5 exemplars among
    foolbox's 20 ImageNet photos (``natural_evidence``), maco vs robust (per class in the note);
  * transferability: how many of the 4 each of ``DEFAULT_TRANSFER`` (efficientnet_lite2, _lite0) reads
    as the target class, maco vs robust (mean probability in the note);
  * MobileNetV2's own top-1 on each result resized to 224 px (maco's canvas is not what it optimized).
The images are written to benchmarks/results/maco_vs_robust.png (to be looked at).
``--quick``: 8 steps, 4 crops of a 256 px canvas, 96 px for robust, no transfer (checks the rows run;
numbers meaningless).
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .common import Row

CLASSES = ["flamingo", "pelican", "ground beetle", "Indian cobra"]


def run(quick: bool) -> list[Row]:
    import convlens
    from convlens.recipes.evidence import DEFAULT_TRANSFER
    from convlens.render import grid
    torch.set_num_threads(2)
    m = convlens.load_model()
    steps = 8 if quick else 256
    maco_kw = dict(canvas=256, crops=4) if quick else dict(canvas=256, crops=6, box_start=0.7, box_end=0.3)
    size = 96 if quick else 224
    t0 = time.perf_counter()
    mv = convlens.visualize_class(m, CLASSES, preset="maco", steps=steps, size=224, **maco_kw)
    t_maco = (time.perf_counter() - t0) / steps
    t0 = time.perf_counter()
    rv = convlens.visualize_class(m, CLASSES, steps=steps, size=size)
    t_robust = (time.perf_counter() - t0) / steps
    # Xplique's defaults (32 crops of a 512 px canvas): time per step only, over a few steps
    few = 2 if quick else 8
    t0 = time.perf_counter()
    convlens.visualize_class(m, CLASSES, preset="maco", steps=few, size=224)
    t_xplique = (time.perf_counter() - t0) / few
    transfer = () if quick else DEFAULT_TRANSFER
    em = mv.evidence(m, "imagenet20", k=5, transfer=transfer)
    er = rv.evidence(m, "imagenet20", k=5, transfer=transfer)
    target = torch.tensor([m.class_index(c) for c in CLASSES])

    def top1(v) -> int:
        with torch.no_grad():
            x = F.interpolate(v.images, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
            return int((m(x).argmax(1).cpu() == target).sum())

    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    per = lambda e: ", ".join(f"{c} {p:.2f}" for c, p in zip(CLASSES, e.plausibility.tolist()))  # noqa: E731
    grid(list(mv.images) + list(rv.images), [f"maco {c}" for c in CLASSES] + [f"robust {c}" for c in CLASSES],
         ncol=4, tile=224).save(out / "maco_vs_robust.png")
    what = f"{len(CLASSES)} classes, {steps} steps, 224 px" + ("" if size == 224 else f" (robust {size} px)")
    crops = f"{maco_kw['crops']} crops of {maco_kw['canvas']} px"
    rows = [Row(f"maco step vs robust step ({what}; maco {crops})",
                t_maco, t_robust, "s", "robust (Fourier) preset", "report", higher_is_better=False,
                note=f"maco {t_maco / (len(CLASSES) * maco_kw['crops']):.2f} s per crop-image"),
            Row(f"maco step with Xplique's defaults (32 crops of 512 px; {few} steps) vs robust step",
                t_xplique, t_robust, "s", "robust (Fourier) preset", "report", higher_is_better=False),
            Row(f"plausibility maco vs robust ({what}; cosine to top-5 imagenet20 exemplars)",
                float(em.plausibility.mean()), float(er.plausibility.mean()), "cos", "robust (Fourier) preset",
                "report", note=f"maco: {per(em)}; robust: {per(er)}; exemplars among themselves "
                               f"{float(em.reference.mean()):.3f}, noise {float(em.noise.mean()):.3f}"),
            Row(f"mobilenet_v2 top-1 on the result at 224 px, maco vs robust ({what})", top1(mv), top1(rv),
                "of 4", "robust (Fourier) preset", "report")]
    for name in transfer:
        rows.append(Row(f"{name} top-1, maco vs robust ({what})",
                        float(em.transfer_top1[name].sum()), float(er.transfer_top1[name].sum()),
                        "of 4", "robust (Fourier) preset", "report",
                        note=f"mean p(target): maco {float(em.transfer[name].mean()):.3f}, "
                             f"robust {float(er.transfer[name].mean()):.3f}"))
    return rows
