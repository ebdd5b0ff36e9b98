"""Demo-report section for the faithfulness concern: which map to believe, on labelled photos."""
from __future__ import annotations

from ..attribution.sanity import methods as attribution_methods
from ..faithfulness import METRICS, evaluate
from ..images.labelled import labelled_photos
from ..render import grid, overlay, stack_rows
from .foundation import foolbox_photos

WANTED_METHODS = ("saliency", "grad_cam", "integrated_gradients", "rise")   # score_cam: 1280 passes an image
WANTED_METRICS = ("deletion", "insertion", "road", "sparseness", "complexity")


def which_map_section(report, ctx):
    m = ctx.model
    n = 2 if ctx.quick else 3
    x, paths, labels = foolbox_photos(range(n), m.input_size)
    photos = labelled_photos("imagenet20")
    target = [photos.imagenet[i] for i in range(n)]
    known = attribution_methods()
    methods = [k for k in WANTED_METHODS if k in known]
    metrics = [k for k in WANTED_METRICS if k in METRICS]
    steps = 12 if ctx.quick else 25
    configs = {k: {"steps": steps} for k in metrics if METRICS[k].config is not None
               and "steps" in METRICS[k].config.__dataclass_fields__}
    if "road" in metrics:
        configs["road"] = {"percentages": (20.0, 40.0, 60.0, 80.0)}
    card = evaluate(m, x, [_method(k, known) for k in methods], metrics, target=target, configs=configs)
    sec = report.section("Which map to believe", "Every attribution method draws a map; the metrics say how far to "
                         "trust each on this model. Deletion removes the pixels a map ranks first (to black) and "
                         "tracks the true class's probability (lower area = more faithful); insertion puts them back "
                         "into a blurred copy (higher = more faithful); ROAD removes them by noisy linear imputation, "
                         "so the removal itself does not look like a new object (Rong et al. 2022). A random map and "
                         "a Sobel edge map are scored beside the methods: a method that does not beat them on a "
                         "metric has earned no trust from it.")
    rows = []
    for r in card.summary():
        rows.append([r["method"], *[f"{r[k]:.3f} (#{r.get(k + '_rank', '-')})" for k in card.metrics]])
    arrows = {k: "↑" if card.better(k) == "higher" else "↓" for k in card.metrics}
    sec.table(["method", *[f"{k} {arrows[k]}" for k in card.metrics]], rows)
    params = {row["metric"]: row["params"] for row in card.rows if row["params"]}
    sec.text("Mean over the photos, rank among the methods in brackets (1 = best). The report explains the true "
             "class with 16 integrated-gradient steps and 500 RISE masks (the command below: the predicted class "
             "and each method's defaults). Parameters: "
             + "; ".join(f"{k}: {v}" for k, v in params.items()))
    tiles, caps = [], []
    for name in card.methods:
        for i in range(n):
            tiles.append(overlay(card.images[i], card.maps[name][i], mode="abs"))
            caps.append(f"{name} · {labels[i]}"[:30])
    sec.figure(grid(tiles, caps, ncol=n, tile=150), "which_map_maps.png",
               "The maps being judged (|map|), one row per method, on foolbox's labelled ImageNet photos, explained "
               "for their true class.",
               command="convlens evaluate imagenet20 --limit 3 --methods saliency,grad_cam,ig,rise --metrics "
                       "deletion,insertion,road,sparseness,complexity --steps 25 --set road.percentages=20,40,60,80 "
                       "-o curves.png")
    sec.figure(stack_rows([card.plot(i) for i in range(min(n, 2))]), "which_map_curves.png",
               "The curves behind the areas for the first photos (dotted: the random and edge baselines).",
               command="convlens evaluate imagenet20 --limit 2 --metrics deletion,insertion,road -o curves.png")


BUDGET = {"integrated_gradients": {"steps": 16}, "rise": {"masks": 500}}   # the report's time budget


def _method(name, known):
    """The method by name, with fewer steps / masks where it has them (``BUDGET``)."""
    if name not in BUDGET:
        return name

    def method(model, images, target):
        return known[name](model, images, target, **BUDGET[name])
    method.__name__ = name
    return method


SECTIONS: list = [("which-map", which_map_section)]
