"""Lab runners of the adversarial family: FGSM, PGD, fooling images, unrecognizable images."""
from __future__ import annotations

from ...adversarial import fgsm, fool, pgd, unrecognizable
from ...catalog import adversarial_summary
from ...errors import ConvlensError
from ..context import Ctx, jsonable, target_value
from ..forms import F
from . import Runner


def _adv_result(ctx: Ctx, r) -> dict:
    ctx.save(r.render(0), r.summary().splitlines()[0])
    ctx.save(r.images[0], "adversarial image")
    return {"figures": {**adversarial_summary(r), "summary": r.summary()}}


def _fgsm(ctx: Ctx) -> dict:
    r = fgsm(ctx.model, ctx.fit(), target=target_value(ctx.model, ctx.params["target"]), config=ctx.config)
    return _adv_result(ctx, r)


def _pgd(ctx: Ctx) -> dict:
    r = pgd(ctx.model, ctx.fit(), target=target_value(ctx.model, ctx.params["target"]), config=ctx.config,
            progress=ctx.progress)
    return _adv_result(ctx, r)


def _fool(ctx: Ctx) -> dict:
    tgt = target_value(ctx.model, ctx.params["target"])
    if tgt is None:
        raise ConvlensError("fool needs a target class (name or index), e.g. goldfish")
    r = fool(ctx.model, ctx.fit(), tgt, ctx.config, progress=ctx.progress)
    return _adv_result(ctx, r)


def _unrecognizable(ctx: Ctx) -> dict:
    tgt = target_value(ctx.model, ctx.params["target"])
    if tgt is None:
        raise ConvlensError("unrecognizable needs a target class (name or index), e.g. robin")
    u = unrecognizable(ctx.model, [tgt], ctx.config, progress=ctx.progress)
    ctx.save(u.images[0], u.labels[0])
    return {"figures": {"labels": u.labels, "confidence": jsonable(u.confidence), "steps": u.steps,
                        "stopped": ctx.stopped(u.optim.stopped)}}


_OPTIONAL_TARGET = F("target", "str", None, "class to reach (targeted); empty: untargeted", optional=True)
RUNNERS = {
    "fgsm": Runner(_fgsm, [_OPTIONAL_TARGET]),
    "pgd": Runner(_pgd, [_OPTIONAL_TARGET]),
    "fool": Runner(_fool, [F("target", "str", "goldfish", "class to reach")]),
    "unrecognizable": Runner(_unrecognizable, [F("target", "str", "robin", "class to reach")]),
}
