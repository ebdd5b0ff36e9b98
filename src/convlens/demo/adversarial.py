"""Demo-report sections for fooling the network: the linear walkthrough, FGSM and fooled images,
unrecognizable images, mixing in class weights, identical HOG, and the fooling-rate curve."""
from __future__ import annotations

import torch

from ..adversarial import (dimension_study, evolve_unrecognizable, fgsm, fool, linear_mixing_panel, linear_walkthrough,
                           mix_gradient, robustness, train_linear_digits, universal_perturbation, unrecognizable)
from ..adversarial.base import forward_logits
from ..adversarial.hog import hog_match
from ..images import sample_image
from ..inspect import sample_dataset
from ..render import grid, stack_rows
from .foundation import foolbox_photos
from .threads import small_batch  # small-batch work: one torch thread per section (measured there)

FOOL_IMAGES = ["chelsea", "coffee", "astronaut"]
FOOL_CLASSES = ["goldfish", "ostrich", "toaster"]
FOOL_FOOLBOX = [15]  # foolbox's goose (ImageNet 99)
UNRECOGNIZABLE = ["robin", "king penguin", "goldfish", "school bus"]


def linear(report, ctx):
    w = linear_walkthrough()
    sec = report.section("Why adversarial examples exist: linearity", "The lecture's worked example (Goodfellow, "
                         "Shlens & Szegedy 2015): logistic regression P(class 1) = 1/(1+e^-(w.x+b)). Moving every "
                         "input by eps = 0.5 along sign(w) moves the score by eps*||w||_1 = 5.")
    sec.table(["", *(f"x{i + 1}" for i in range(10))], w.table())
    for line in w.text().split("\n\n", 1)[1].splitlines():
        sec.text(line)
    d = dimension_study(seeds=2 if ctx.quick else 5)
    sec.figure(d.plot(), "adversarial_dimension.png", "The eps per input that flips a confident (P = 0.047) "
               "linear decision: 3/||w||_1, which falls as 1/d for +-1 weights and as 1/sqrt(d) for unit-norm "
               "Gaussian weights; for a 224x224x3 image it is far below one grey level (+-1 weights) or a couple of "
               "grey levels (Gaussian).", command="convlens linear-demo -o dims.png")
    sec.table(d.HEADER, d.rows())


def fooling(report, ctx):
    m = ctx.model
    size = 128 if ctx.quick else 224
    names = FOOL_IMAGES[:1] if ctx.quick else FOOL_IMAGES
    classes = FOOL_CLASSES[:1] if ctx.quick else FOOL_CLASSES
    imgs = torch.cat([sample_image(n, size) for n in names])
    truth = ["-"] * len(names)
    if not ctx.quick:  # and one of foolbox's ImageNet validation photos, whose true label is known
        fb, paths, labels = foolbox_photos(FOOL_FOOLBOX, size)
        imgs, names, truth = torch.cat([imgs, fb]), names + [p.rsplit("/", 1)[-1] for p in paths], truth + labels
    sec = report.section("Fooling images", "Szegedy et al. 2014 and the lecture's recipe: start from any image, "
                         "pick any class, step the image until the network says that class with 99% confidence "
                         "(targeted sign steps of 0.25/255 inside an 8/255 ball, each image stops when it "
                         "reaches 0.99). The change is a few grey levels: the two images look identical; the "
                         "difference is drawn as 0.5 + d and amplified 10x. First row: FGSM (one untargeted "
                         "step of 2/255, Goodfellow 2015).")
    r = fgsm(m, imgs[:1], "2/255")
    rows, table = [r.render(0, height=160)], []
    for cls in classes:
        f = fool(m, imgs, cls)
        rows.append(f.render(0, height=160))
        if not ctx.quick and cls == classes[0]:
            rows.append(f.render(len(names) - 1, height=160))
        for i, n in enumerate(names):
            table.append([n, truth[i], cls, f"{f.name(int(f.pred_before[i]))} {f.prob_before[i]:.3f}",
                          f"{f.target_prob_after[i]:.4f}", int(f.steps[i]), f"{255 * float(f.linf[i]):.2f}/255",
                          f"{float(f.l2[i]):.3f}"])
    extra = "" if ctx.quick else f" (after the first, the same for foolbox's {truth[-1]} photo)"
    sec.figure(stack_rows(rows), "adversarial_fooling.png", f"chelsea: FGSM, then fooled into {', '.join(classes)}"
               f"{extra}: image (top-1, prob) | fooled image (top-1, prob) | difference | 10x difference.",
               command=f"convlens fool chelsea --target {classes[0]} -o fool.png   (FGSM: convlens fgsm chelsea --eps 2/255 -o fgsm.png)")
    sec.table(["image", "true label", "target", "clean top-1", "p(target) after", "steps", "L-inf", "L2"], table)


def unrecognizable_section(report, ctx):
    m = ctx.model
    size = 64 if ctx.quick else 224
    classes = UNRECOGNIZABLE[:2] if ctx.quick else UNRECOGNIZABLE
    sec = report.section("Unrecognizable images", "Nguyen, Yosinski & Clune 2015: images a person sees as noise "
                         "or a pattern, classified with >= 99.6% confidence. Gradient ascent on log p(class) from "
                         "uniform noise (top row) or from a blank grey image (bottom row), Adam on the pixels, "
                         "stopped once every image passes 99.6%.")
    steps = 20 if ctx.quick else 200
    noise = unrecognizable(m, classes, size=size, start="noise", steps=steps)
    blank = unrecognizable(m, classes, size=size, start="blank", steps=steps)
    sec.figure(stack_rows([noise.render(), blank.render()]), "adversarial_unrecognizable.png",
               f"{size} px; {noise.steps} and {blank.steps} steps. Labels: the class and the model's confidence.",
               command=f"convlens unrecognizable --target '{','.join(classes)}' --start noise -o fooled.png")
    evo_classes, gens = (["pinwheel"], 3) if ctx.quick else (["peacock", "pinwheel", "monarch", "jellyfish"], 25)
    e = evolve_unrecognizable(m, evo_classes, size=96, generations=gens)
    sec.figure(e.render(), "adversarial_evolved.png",
               "The paper's evolutionary variant, no gradients: a small CPPN (3 layers of 8 sine / Gaussian / tanh "
               "units painting each pixel from its coordinates) whose weights evolve by an evolution strategy on "
               f"the model's probability alone; 96 px, at most {gens} generations of 17 images each. Reached: "
               + ", ".join(f"{lab} in {g} generation{'s' if g > 1 else ''}" for lab, g in zip(e.labels, e.generations))
               + f" (the first genomes: {', '.join(f'{c:.1%}' for c in e.start_confidence.tolist())}). The regular, "
               "repeating patterns are the paper's CPPN look.",
               command=f"convlens evolve-unrecognizable --target '{','.join(evo_classes)}' --size 96 "
                       f"--generations {gens} -o evolved.png")


def mixing(report, ctx):
    m = ctx.model
    clf = train_linear_digits()
    panel, mixes = linear_mixing_panel(clf)
    sec = report.section("Mixing in a bit of another class's weights", "(a) A linear softmax classifier trained "
                         f"here on scikit-learn's 8x8 digits (held-out accuracy {clf.test_accuracy:.1%}). Its class "
                         "templates are the rows of W; adding a multiple of the '8' template to a '3' makes it an '8' "
                         "(the lecture's goldfish weights mixed into a kit fox). With only 64 inputs the multiple is "
                         "large and visible, the dimension argument above. (b) The deep-net analogue: a ConvNet's "
                         "template for a class at an image is the gradient of the class score; adding eps times its "
                         "sign in one portion raises p(goldfish) but not to the top (the net is only locally linear); "
                         "mixed in 8 portions, re-linearizing each time, the same budget makes it a goldfish.")
    sec.figure(clf.templates(), "adversarial_templates.png", "The ten class templates w_c (grey = 0, white > 0).",
               command="convlens mix-weights -o mix.png")
    sec.figure(panel, "adversarial_mix_linear.png", "digit (probabilities) | + alpha x template | = mixed digit; alpha "
               "is the smallest multiple reaching p = 90%. " + "; ".join(mx.line() for mx in mixes) + ".",
               command="convlens mix-weights -o mix.png")
    size = 128 if ctx.quick else 224
    cat = sample_image("chelsea", size)
    eps = ["1/255", "2/255", "4/255"]
    one = mix_gradient(m, cat, "goldfish", eps)
    many = mix_gradient(m, cat, "goldfish", eps, repeats=8)
    sec.figure(stack_rows([one.render(tile=160), many.render(tile=160, template=False)]), "adversarial_mix_deep.png",
               "Top: the goldfish template at the cat image (dS/dx), then cat + eps sign(template) in one portion, "
               "with p(goldfish) ('not top': the cat class still wins). Bottom: the same eps mixed in 8 portions.",
               command="convlens mix-weights --image chelsea --target goldfish --eps 1/255,2/255,4/255 --repeats 8 -o mix.png")
    _universal(sec, m, ctx)


def _universal(sec, m, ctx):
    n, size, steps = (6, 64, 3) if ctx.quick else (16, 128, 8)
    ds = sample_dataset(2 * n, size=size, seed=1).tensor()  # the first ones: whole photos, then crops
    u = universal_perturbation(m, ds[n:], "8/255", steps=steps, held_out=ds[:n])
    show = ds[:4]
    names = m.classes
    before = forward_logits(m, show).softmax(-1).max(-1)
    after = forward_logits(m, (show + u.delta).clamp(0, 1)).softmax(-1).max(-1)
    tiles = [(0.5 + u.delta[0] * 255 / 16).clamp(0, 1)]
    labels = ["delta x 16"]
    for i in range(len(show)):
        tiles += [show[i], (show[i] + u.delta[0]).clamp(0, 1)]
        labels += [f"{names[int(before.indices[i])]} {before.values[i]:.0%}",
                   f"{names[int(after.indices[i])]} {after.values[i]:.0%}"]
    sec.figure(grid(tiles, labels, ncol=len(tiles), tile=128, upscale="bilinear"), "adversarial_universal.png",
               f"(c) One perturbation for every image (universal, L-inf 8/255, {steps} sign steps on the summed loss "
               f"of {n} bundled crops): it changes the top-1 of {u.fooling_rate:.0%} of them and of {u.held_out_rate:.0%} "
               "of other images it never saw (shown: held-out whole photos before | after).",
               command="python: convlens.universal_perturbation(m, images, '8/255', held_out=other_images)")


def hog_section(report, ctx):
    size, steps = (64, 60) if ctx.quick else (96, 600)
    r = hog_match(sample_image("chelsea", size), sample_image("coffee", size), size=size, steps=steps)
    c = r.config
    sec = report.section("Identical HOG, different images", "Tatu et al. 2011 (the lecture's 'these results were "
                         "around before ConvNets'): change the cat's pixels a little until its HOG equals the coffee "
                         "cup's. HOG as scikit-image computes it (our differentiable version equals "
                         f"skimage.feature.hog to 1e-7): {c.orientations} bins, {c.cell}x{c.cell}-pixel cells, "
                         f"{c.block}x{c.block}-cell blocks, L2-Hys. Top: the cat, the changed cat, the cup; below, "
                         f"their HOG pictures (drawn by skimage). The changed cat still looks like the cat (PSNR "
                         f"{r.psnr:.1f} dB against it), but its HOG is {r.distance:.2%} from the cup's (the cat's own: "
                         f"{r.start_distance:.0%}): the bottom middle and bottom right pictures match.")
    sec.figure(r.render(tile=192), "adversarial_hog.png", f"{size} px grey, {r.steps} steps; relative HOG distance "
               f"{r.start_distance:.1%} -> {r.distance:.2%}; pixel change from the cat RMS {255 * r.pixel_rms:.1f}/255, "
               f"PSNR {r.psnr:.1f} dB.",
               command=f"convlens hog-match chelsea coffee --size {size} --steps {steps} -o hog.png")


def robustness_section(report, ctx):
    m = ctx.model
    n, size = (4, 96) if ctx.quick else (12, 160)
    data = sample_dataset(n, size=size).tensor()
    eps = [0, 0.1 / 255, 0.25 / 255, 0.5 / 255, 1 / 255]
    f = robustness(m, data, eps, "fgsm")
    p = robustness(m, data, eps, "pgd", steps=5)
    sec = report.section("Fooling rate against eps", f"{n} bundled photos and crops ({size} px), untargeted attacks "
                         "against each image's clean top-1. Accuracy = agreement with the clean prediction. One grey "
                         "level (1/255) already fools almost every image.")
    sec.figure(f.plot(others=[p]), "adversarial_robustness.png", "Fooling rate of FGSM and 5-step PGD (early stop).",
               command=f"convlens robustness samples --n {n} --eps 0,0.1/255,0.25/255,0.5/255,1/255 --size 160 --attack pgd --steps 5 -o curve.png")
    sec.table(["eps", "FGSM accuracy", "FGSM fooling rate", "PGD-5 accuracy", "PGD-5 fooling rate"],
              [[a[0], a[1], a[2], b[1], b[2]] for a, b in zip(f.rows(), p.rows())])


SECTIONS: list = [(name, small_batch(b)) for name, b in (
    ("adv-linear", linear), ("adv-fooling", fooling), ("adv-unrecognizable", unrecognizable_section),
    ("adv-mixing", mixing), ("adv-hog", hog_section), ("adv-robustness", robustness_section))]
