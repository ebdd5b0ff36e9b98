"""Demo-report section: concept discovery (CRAFT) on GCompris's monument photos, class "palace"."""
from __future__ import annotations

import torch

from ..images import labelled_photos, load_image
from ..inspect import concepts
from ..render import side_by_side, stack_rows

LAYER = "features.18"  # the last conv block (1280 channels after ReLU6, 7x7): CRAFT's choice of layer, the penultimate
CLASS = "palace"


def concept_discovery(report, ctx):
    m = ctx.model
    photos = labelled_photos("gcompris")
    group = photos.label_names.index("monument")
    paths = [p for p, lab in zip(photos.paths, photos.labels) if lab == group]
    x = torch.cat([load_image(p, m.input_size) for p in paths])
    with torch.no_grad():
        pred = torch.cat([m(x[i:i + 32]).argmax(1) for i in range(0, len(x), 32)])
    mine = x[pred == m.class_index(CLASS)]
    n_img = 6 if ctx.quick else 10
    mine = mine[:n_img]
    c = concepts(m, mine, LAYER, CLASS, n=6, crops=12, importance_images=n_img, designs=16, top=8)
    sec = report.section(
        "Concepts (CRAFT)",
        f"What the network sees in a class, not only where (Fel et al. 2023; Ghorbani et al. 2019). "
        f"{len(mine)} of GCompris's {len(paths)} monument photos that MobileNetV2 calls '{CLASS}': "
        f"{len(c.U)} random crops (35% of the side, each resized to 224 px), their mean activations at {LAYER} "
        f"factorized by NMF (our HALS, in torch) into {c.n} concepts (relative reconstruction error "
        f"{c.error:.3f}). Each concept is shown by its 8 strongest crops, and ranked by its Sobol total index "
        f"for the '{CLASS}' logit: the share of the logit's variance due to masking that concept's coefficients "
        f"({c.config.designs} quasi-Monte-Carlo designs x (n + 2) per image), beside gradient x input on the "
        f"coefficients.")
    sec.figure(c.plot(), "concepts_palace.png", f"Concepts of '{CLASS}' at {LAYER}, most important first.",
               command=f"convlens concepts gcompris --label monument --class {CLASS} --only-predicted --limit {n_img} "
                       f"--layer {LAYER} --n 6 --crops 12 --designs 16 --importance-images {n_img} --top 8 "
                       f"--out concepts_palace/")
    show = mine[:3]
    rows = [side_by_side([show[i]] + [c.heatmap(show[i], k) for k in range(min(4, c.n))],
                         labels=["photo"] + [f"concept {k + 1}" for k in range(min(4, c.n))], height=150)
            for i in range(len(show))]
    sec.figure(stack_rows(rows), "concepts_palace_maps.png",
               "The four most important concepts located on three photos: each position's activations projected on "
               "the concept basis (non-negative least squares), the concept's coefficient upsampled from 7x7.")
    sec.table(["concept", "Sobol total index", "gradient x input"],
              [[k + 1, f"{float(c.sobol[k]):.3f}", f"{float(c.gxi[k]):.3g}"] for k in range(c.n)])


SECTIONS = [("concepts", concept_discovery)]
