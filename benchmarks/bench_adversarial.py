"""Adversarial attacks against torchattacks, measured in the same run on the same convlens.Model and batch.

Rows (2 threads): FGSM and PGD-10 (L-inf, eps 4/255, step 1/255, random start) images/s for
mobilenet_v2 (offline ImageNet weights) and resnet18 (seeded random weights), batch 8 at 224 px,
ours without and with early stopping (torchattacks has none), the adversarial images alone (what
torchattacks returns) and with the predictions after read (one more forward for both: torchattacks'
users call the model on its output); ours and torchattacks' calls
alternate (FGSM 5 times, PGD 3) and the fastest of each is kept, so load from other processes hits both alike. Then the time to a 99% targeted fooling
image (chelsea -> goldfish) on mobilenet_v2 at 224 px.
"""
from __future__ import annotations

import time
import warnings

import torch

from .common import alternated, Row

warnings.filterwarnings("ignore")



def _pair(ours, peer, repeat: int):
    """The fastest of alternated calls (see ``alternated``)."""
    return alternated(ours, peer, repeat, stat="min")


def run(quick: bool) -> list[Row]:
    import torchattacks

    import convlens

    rows: list[Row] = []
    size, bs, rep = (112, 4, 3) if quick else (224, 8, 5)
    eps, step = 4 / 255, 1 / 255
    ds = convlens.sample_dataset(bs, size=size).tensor()
    for name in ("mobilenet_v2", "resnet18"):
        m = convlens.load_model(name, weights="default" if name == "mobilenet_v2" else None)
        lab = m.targets(None, ds)

        def predicted(adv):  # what a torchattacks user runs to learn whether the attack worked
            with torch.no_grad():
                return m(adv).argmax(-1)
        tag = f"{name} batch {bs} {size}px"
        ta = torchattacks.FGSM(m, eps=eps)
        ours, peer = _pair(lambda: convlens.fgsm(m, ds, eps).images, lambda: ta(ds, lab), rep)
        rows.append(Row(f"FGSM {tag}, images", bs / ours, bs / peer, "img/s", "torchattacks", ">= 1.3x",
                        note="the same work as torchattacks: one forward + backward"))
        ours, peer = _pair(lambda: convlens.fgsm(m, ds, eps).pred_after, lambda: predicted(ta(ds, lab)), rep)
        rows.append(Row(f"FGSM {tag}, images + predictions after", bs / ours, bs / peer, "img/s",
                        "torchattacks + model(adv)", ">= 1.3x",
                        note="both read the predictions after with one more forward"))
        tp = torchattacks.PGD(m, eps=eps, alpha=step, steps=10, random_start=True)
        for es, read in ((False, False), (False, True), (True, True)):
            r = convlens.pgd(m, ds, eps, step=step, steps=10, early_stop=es)
            ours, peer = _pair(lambda: (lambda r: r.fooled if read else r.images)(
                convlens.pgd(m, ds, eps, step=step, steps=10, early_stop=es)),
                lambda: predicted(tp(ds, lab)) if read else tp(ds, lab), 3)
            note = (f"early stop: {float(r.steps.float().mean()):.1f} steps per image on average, "
                    f"{int(r.fooled.sum())}/{bs} fooled") if es else "same 10 steps for every image"
            what = "images + predictions after" if read else "images"
            rows.append(Row(f"PGD-10 {tag}, early stop {'on' if es else 'off'}, {what}", bs / ours, bs / peer,
                            "img/s", "torchattacks + model(adv)" if read else "torchattacks", ">= 1.3x", note=note))
    m = convlens.load_model()
    cat = convlens.sample_image("chelsea", 224)
    convlens.fool(m, cat, "goldfish", max_steps=2)  # builds the folded twin once
    t0 = time.perf_counter()
    f = convlens.fool(m, cat, "goldfish", confidence=0.99)
    t = time.perf_counter() - t0
    rows.append(Row("time to a 99% fooling image, mobilenet_v2 224 px (chelsea -> goldfish)", t, None, "s",
                    higher_is_better=False,
                    note=f"{int(f.steps[0])} steps, p {float(f.target_prob_after[0]):.3f}, "
                         f"L-inf {255 * float(f.linf[0]):.2f}/255"))
    return rows
