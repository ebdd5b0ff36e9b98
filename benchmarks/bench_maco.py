"""MACO (preset "maco") vs the Fourier preset ("robust"), same class objective, on mobilenet_v2.

Rows (full run: 256 steps, 224 px network input, the lecture's 4 classes, one batch):
  * time per step, maco (32 crops of a 512 px canvas) vs robust (one 224 px image per class);
  * plausibility: mean over the 4 classes of the cosine similarity to their top-5 exemplars among
    foolbox's 20 ImageNet photos (``natural_evidence``), maco vs robust;
  * transferability: how many of the 4 efficientnet_lite2 reads as the target class, maco vs robust.
``--quick``: 8 steps, 4 crops of a 256 px canvas, 96 px for robust (checks the rows run; numbers meaningless).
"""
from __future__ import annotations

import time

import torch

from .common import Row

CLASSES = ["flamingo", "pelican", "ground beetle", "Indian cobra"]


def run(quick: bool) -> list[Row]:
    import convlens
    torch.set_num_threads(2)
    m = convlens.load_model()
    steps = 8 if quick else 256
    maco_kw = dict(canvas=256, crops=4) if quick else dict(canvas=512, crops=32)
    size = 96 if quick else 224
    t0 = time.perf_counter()
    mv = convlens.visualize_class(m, CLASSES, preset="maco", steps=steps, size=224, **maco_kw)
    t_maco = (time.perf_counter() - t0) / steps
    t0 = time.perf_counter()
    rv = convlens.visualize_class(m, CLASSES, steps=steps, size=size)
    t_robust = (time.perf_counter() - t0) / steps
    transfer = () if quick else ("efficientnet_lite2",)
    em = mv.evidence(m, "imagenet20", k=5, transfer=transfer)
    er = rv.evidence(m, "imagenet20", k=5, transfer=transfer)
    what = f"{len(CLASSES)} classes, {steps} steps"
    rows = [Row(f"maco step vs robust step ({what}, {maco_kw['crops']} crops of {maco_kw['canvas']} px)",
                t_maco, t_robust, "s", "robust (Fourier) preset", "report", higher_is_better=False),
            Row(f"plausibility maco vs robust ({what}; cosine to top-5 imagenet20 exemplars)",
                float(em.plausibility.mean()), float(er.plausibility.mean()), "cos", "robust (Fourier) preset",
                "report", note=f"exemplars among themselves {float(em.reference.mean()):.3f}, "
                               f"noise {float(em.noise.mean()):.3f}")]
    if transfer:
        rows.append(Row(f"efficientnet_lite2 top-1, maco vs robust ({what})",
                        float(em.transfer_top1[transfer[0]].sum()), float(er.transfer_top1[transfer[0]].sum()),
                        "of 4", "robust (Fourier) preset", "report"))
    return rows
