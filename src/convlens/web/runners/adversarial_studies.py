"""Lab runners of the lecture's studies of adversarial examples: the linear walkthrough, evolved
unrecognizable images, mixing in a class's weights, identical HOG, the robustness curve and the
universal perturbation. Each calls the library function the catalog names and saves its figure."""
from __future__ import annotations

import torch

from ...adversarial import (dimension_study, evolve_unrecognizable, hog_match, linear_mixing_panel, linear_walkthrough,
                            mix_gradient, robustness, train_linear_digits, universal_perturbation)
from ...adversarial.base import forward_logits, parse_eps, parse_eps_list
from ...errors import ConvlensError
from ...images import fit, sample_dataset
from ...render import grid, stack_rows
from ..context import Ctx, jsonable, target_value
from ..forms import F
from . import Runner


def _numbers(text, what: str):
    if text in (None, ""):
        return None
    try:
        return [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ConvlensError(f"{what} takes comma-separated numbers, got {str(text)[:40]!r}") from None


def _linear(ctx: Ctx) -> dict:
    p = ctx.params
    w = linear_walkthrough(_numbers(p["x"], "x"), _numbers(p["w"], "w"), b=p["b"], eps=p["eps"])
    d = dimension_study()
    ctx.save(d.plot(), "eps needed to flip a confident linear decision, by input dimension")
    return {"figures": {"score": w.score, "score_adv": w.score_adv, "p": w.p, "p_adv": w.p_adv,
                        "summary": w.text() + "\n\n" + d.text()}}


def _evolve(ctx: Ctx) -> dict:
    tgt = target_value(ctx.model, ctx.params["target"])
    if tgt is None:
        raise ConvlensError("evolve_unrecognizable needs a target class (name or index), e.g. starfish")
    e = evolve_unrecognizable(ctx.model, [tgt], ctx.config, progress=ctx.progress)
    ctx.save(e.images[0], f"{e.labels[0]} (evolved {e.config.encoding})")
    hist = e.history[0]
    return {"figures": {"label": e.labels[0], "confidence": float(e.confidence[0]),
                        "start_confidence": float(e.start_confidence[0]), "generations": e.generations[0],
                        "evaluations": e.evaluations[0], "stopped": ctx.stopped("interrupted" if e.interrupted else "done"),
                        "objective": [[i + 1, v] for i, v in enumerate(hist)]}}


def _mix(ctx: Ctx) -> dict:
    p = ctx.params
    tgt = target_value(ctx.model, p["target"])
    if tgt is None:
        raise ConvlensError("mix_weights needs a target class (name or index), e.g. goldfish")
    d = mix_gradient(ctx.model, ctx.fit(), tgt, parse_eps_list(p["eps"]), normalize=p["normalize"],
                     repeats=p["repeats"])
    ctx.save(d.render(), f"the photo + eps x the local template of {d.target_name}")
    figs = {"target": d.target_name, "eps_255": [255 * e for e in d.eps], "p_target": d.probs_target,
            "top1": [{"class": n, "prob": pr} for n, pr in d.top1]}
    if p["digits"]:
        clf = train_linear_digits()
        panel, mixes = linear_mixing_panel(clf)
        ctx.save(stack_rows([clf.templates(), panel]), "a linear classifier on 8x8 digits: its templates, and "
                 "digits + a multiple of another class's template")
        figs["digits_accuracy"] = clf.test_accuracy
        figs["summary"] = "\n".join(m.line() for m in mixes)
    return {"figures": figs}


def _hog(ctx: Ctx) -> dict:
    size = ctx.config.size
    a, b = fit(ctx.image, size), fit(ctx.state.image(ctx.params["image_b"]), size)
    r = hog_match(a, b, ctx.config, progress=ctx.progress)
    ctx.save(r.render(), f"A | A changed to B's HOG | B ({ctx.params['image_b']})")
    ctx.save(r.image, "A with B's HOG")
    return {"figures": {"start_distance": r.start_distance, "distance": r.distance, "reached": r.reached,
                        "pixel_rms_255": 255 * r.pixel_rms, "psnr_db": r.psnr, "steps": r.steps,
                        "stopped": ctx.stopped("cancelled" if r.steps < ctx.config.steps else "steps"),
                        "objective": [[i + 1, v] for i, v in enumerate(r.history)]}}


def _samples(ctx: Ctx, n: int, seed: int = 0) -> torch.Tensor:
    return sample_dataset(n, size=ctx.model.input_size[0], seed=seed).tensor()


def _robustness(ctx: Ctx) -> dict:
    c, p = ctx.config, ctx.params
    r = robustness(ctx.model, _samples(ctx, p["images"]), p["eps"], c.attack, steps=c.steps, batch_size=c.batch_size,
                   seed=c.seed, progress=ctx.progress)
    ctx.save(r.plot(), f"fooling rate against eps ({c.attack}, {r.n} images)")
    return {"figures": {"eps_255": [255 * e for e in r.eps], "accuracy": r.accuracy, "fooling_rate": r.fooling_rate,
                        "mean_prob": r.mean_prob, "summary": r.text()}}


def _universal(ctx: Ctx) -> dict:
    p = ctx.params
    n = p["images"]
    data = _samples(ctx, 2 * n)
    x, held = data[:n], data[n:]
    tgt = target_value(ctx.model, p["target"])
    u = universal_perturbation(ctx.model, x, p["eps"], steps=p["steps"], target=tgt, held_out=held,
                               progress=ctx.progress)
    ctx.save((0.5 + u.delta[0] / (2 * u.eps)).clamp(0, 1), f"the perturbation (L-inf {255 * u.eps:.3g}/255, "
             "shown x 1/(2 eps) around grey)")
    show = held[:4]
    adv = (show + u.delta).clamp(0, 1)
    names = ctx.model.classes or []
    before, after = (forward_logits(ctx.model, t).softmax(-1).max(-1) for t in (show, adv))
    label = lambda pr, i: f"{names[int(i)] if int(i) < len(names) else int(i)} {float(pr):.0%}"  # noqa: E731
    tiles = [*show, *adv]
    labels = [label(*v) for v in zip(*before)] + [f"+ delta: {label(*v)}" for v in zip(*after)]
    ctx.save(grid(tiles, labels, ncol=len(show), tile=160, upscale="bilinear"),
             "held-out images before (top) and after adding the same perturbation (bottom)")
    return {"figures": {"eps_255": 255 * u.eps, "fooling_rate": u.fooling_rate, "held_out_rate": u.held_out_rate,
                        "target": jsonable(u.target),
                        "objective": [[i + 1, v] for i, v in enumerate(u.history)]}}


def check_eps(value, what: str = "eps") -> None:
    """Refuse a bad eps (list) before a job is queued."""
    if value not in (None, ""):
        try:
            parse_eps_list(value) if "," in str(value) else parse_eps(value, what)
        except ZeroDivisionError:   # "1/0": parse_eps divides before it checks
            raise ConvlensError(f"{what} '{str(value)[:40]}' divides by zero; give e.g. 2/255") from None


_IMAGES = F("images", "int", 16, "bundled sample images (crops of the photos) to attack")
RUNNERS = {
    "linear_walkthrough": Runner(_linear, [
        F("eps", "float", 0.5, "nudge per input, along sign(w)"),
        F("x", "str", None, "inputs, comma-separated (empty: the lecture's 2,-1,3,-2,2,2,1,-4,5,1)", optional=True),
        F("w", "str", None, "weights, comma-separated (empty: the lecture's)", optional=True),
        F("b", "float", 0.0, "bias")]),
    "evolve_unrecognizable": Runner(_evolve, [F("target", "str", "starfish", "class to reach")]),
    "mix_weights": Runner(_mix, [
        F("target", "str", "goldfish", "class whose local template is mixed into the photo"),
        F("eps", "str", "1/255,2/255,4/255", "sizes of the mix (L-inf), comma-separated"),
        F("repeats", "int", 1, "mix in this many portions, re-linearizing each time"),
        F("normalize", "str", "sign", "how the gradient is scaled", choices=["sign", "l2", "max"]),
        F("digits", "bool", True, "also the linear classifier on 8x8 digits (trained in about a second)")]),
    "hog_match": Runner(_hog, [F("image_b", "str", "coffee", "image B, whose HOG the input (A) takes: a sample "
                                 "name or an upload id")]),
    "robustness": Runner(_robustness, [_IMAGES, F("eps", "str", "0,1/255,2/255,4/255", "sizes, comma-separated")]),
    "universal": Runner(_universal, [
        _IMAGES, F("eps", "str", "8/255", "L-inf bound of the perturbation"),
        F("steps", "int", 10, "sign steps on the summed loss"),
        F("target", "str", None, "class to push every image to (empty: away from each one's top-1)", optional=True)]),
}
