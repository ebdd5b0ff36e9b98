"""Lab runner of the faithfulness family: the report card of the map on screen (issue 22, item 5)."""
from __future__ import annotations

from ...catalog import sanity_method_names
from ...faithfulness import METRICS, evaluate
from ..context import Ctx, jsonable, target_value
from ..forms import TARGET, F
from . import Runner

CURVED = [k for k, m in METRICS.items() if m.kind in ("model", "explainer")]


def _card(ctx: Ctx) -> dict:
    p = ctx.params
    focus = p["focus"]
    methods = list(dict.fromkeys([focus, *p["others"]]))
    metrics = list(p["metrics"])
    configs = {k: {"steps": p["steps"]} for k in metrics
               if METRICS[k].config is not None and "steps" in METRICS[k].config.__dataclass_fields__}
    stopped = None
    try:
        card = evaluate(ctx.model, ctx.fit(), methods, metrics, target=target_value(ctx.model, p["target"]),
                        configs=configs, progress=lambda stage, done, total: ctx.progress(done, total))
    except KeyboardInterrupt as e:  # cancelled: keep the metrics finished so far
        card = getattr(e, "partial", None)
        if card is None:
            raise
        stopped = "cancelled"
    summary = card.summary()
    row = next(r for r in summary if r["method"] == card.methods[0])
    if any(METRICS[k].curve for k in card.metrics):
        ctx.save(card.plot(), f"{card.methods[0]} against the others: {card.labels[0]}")
    return {"figures": {
        "method": card.methods[0], "target": card.labels[0], "methods": card.methods,
        "rank": {k: row.get(f"{k}_rank") for k in card.metrics},
        "of": len(card.methods),
        "table": jsonable(summary),
        "params": {r["metric"]: r["params"] for r in card.rows},
        "better": {k: card.better(k) for k in card.metrics}, "stopped": stopped}}


RUNNERS = {
    "evaluate": Runner(_card, [
        F("focus", "str", "grad_cam", "the method whose map is judged (the one on screen)", choices=sanity_method_names()),
        F("others", "list", ("saliency", "grad_cam", "integrated_gradients"),
          "methods it is ranked against (random and edge maps are always added)"),
        F("metrics", "list", ("deletion", "insertion", "sparseness"), f"metrics, from: {', '.join(sorted(METRICS))}"),
        F("steps", "int", 20, "steps of each curve metric"),
        TARGET]),
}
