"""The image lab's registry: every catalog technique the lab offers, with its form and its runner.

The catalog (``convlens.catalog``) says which techniques the lab offers, their family, title, config
and whether they need an image or stream progress; ``runners/`` holds one runner per technique
(calling the library function) and its web-only inputs. The form is those inputs followed by the
config's fields, walked by ``convlens.fields.config_fields`` exactly as the CLI's flags are, so the
web form and the CLI never drift (``tests/test_catalog.py`` checks both against the config).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import catalog
from ..errors import ConvlensError, closest
from ..fields import ConfigField, config_fields, parse_config
from .context import Cancelled, Ctx, jsonable  # noqa: F401  (the lab route's names)
from .forms import coerce
from .runners import Runner, adversarial, adversarial_studies, attribution, faithfulness, synthesis, texture
from .runners.texture import style_image

RUNNERS: dict[str, Runner] = {**attribution.RUNNERS, **synthesis.RUNNERS, **adversarial.RUNNERS,
                              **adversarial_studies.RUNNERS, **texture.RUNNERS, **faithfulness.RUNNERS}

# What the page offers to pick a field's value from (searchable lists the server knows): by field name, or
# by (technique, field name). The page reads ``picker`` in GET /api/techniques.
PICKERS = {"target": "class", "layer": "layer", "image_b": "image", ("style", "style"): "style",
           ("facets", "channel"): "class"}


@dataclass
class Technique:
    """A lab technique: its catalog entry plus its runner."""

    entry: catalog.Technique
    runner: Runner

    @property
    def name(self) -> str:
        return self.entry.id

    @property
    def family(self) -> str:
        return self.entry.family

    @property
    def title(self) -> str:
        return f"{self.entry.title} ({self.entry.paper})"

    @property
    def needs_image(self) -> bool:
        return self.entry.needs_image

    @property
    def iterative(self) -> bool:
        return self.entry.iterative

    @property
    def config(self) -> type | None:
        return self.entry.config

    @property
    def fixed(self) -> list[ConfigField]:
        return self.runner.fixed

    @property
    def hidden(self) -> tuple:
        return self.runner.hidden

    def run(self, ctx: Ctx) -> dict:
        return self.runner.run(ctx)

    def fields(self) -> list[ConfigField]:
        cfg = [f for f in config_fields(self.config) if f.name not in self.hidden] if self.config else []
        return list(self.fixed) + cfg

    def schema(self) -> dict:
        e = self.entry
        return {"name": e.id, "family": e.family, "title": self.title, "iterative": e.iterative,
                "needs_image": e.needs_image, "fields": [self._field_json(f) for f in self.fields()]}

    def _field_json(self, f: ConfigField) -> dict:
        d = f.as_json()
        picker = PICKERS.get((self.name, f.name), PICKERS.get(f.name) if f.kind == "str" and not f.choices else None)
        if picker:
            d["picker"] = picker
        return d

    def check(self, model, fixed: dict, state=None) -> None:
        """Refuse unknown classes, layers and images before a job is queued (400 at once, not a failed job)."""
        if self.name == "style" and state is not None:
            style_image(state, fixed.get("style"))
        if fixed.get("image_b") is not None and state is not None:
            state.image(fixed["image_b"])
        if isinstance(fixed.get("eps"), str):
            adversarial_studies.check_eps(fixed["eps"])
        tgt = fixed.get("target")
        if tgt not in (None, ""):
            for part in (str(tgt).split(",") if self.name == "classviz" else [tgt]):
                if part.strip():
                    model.class_index(int(part) if part.strip().lstrip("-").isdigit() else part.strip())
        layer = fixed.get("layer")
        if layer not in (None, "", "class", "logits"):
            model.module(layer)
        if self.name == "facets" and layer in ("class", "logits") and fixed.get("channel") not in (None, ""):
            ch = str(fixed["channel"]).strip()
            model.class_index(int(ch) if ch.lstrip("-").isdigit() else ch)

    def parse(self, params: dict | None) -> tuple[dict, Any]:
        """Validate request parameters: (fixed values, config instance). Unknown names or bad values raise."""
        params = dict(params or {})
        by_name = {f.name: f for f in self.fields()}
        unknown = sorted(set(params) - set(by_name))
        if unknown:
            raise ConvlensError(f"unknown parameter '{str(unknown[0])[:40]}' for {self.name}; "
                                f"its parameters: {', '.join(by_name) or 'none'}")
        values = {name: coerce(f, params[name]) if name in params else f.default for name, f in by_name.items()}
        fixed = {f.name: values[f.name] for f in self.fixed}
        cfg = None
        if self.config is not None:
            cfg_vals = {k: v for k, v in values.items() if k not in fixed}
            try:
                cfg = parse_config(self.config, cfg_vals)
            except TypeError as e:
                raise ConvlensError(f"invalid parameters for {self.name}: {e}") from None
        return fixed, cfg


def _runner(entry: catalog.Technique) -> Runner | None:
    if entry.id in RUNNERS:
        return RUNNERS[entry.id]
    if entry.family == "attribution" and entry.config is not None:   # the standard shape: no runner to write
        return attribution.default_runner(entry)
    return None


def _registry() -> dict[str, Technique]:
    entries = catalog.lab_techniques()
    missing = [e.id for e in entries if _runner(e) is None]
    if missing:  # a catalog entry with lab=True needs a runner in web/runners/
        raise RuntimeError(f"lab techniques without a runner: {missing}")
    return {e.id: Technique(e, _runner(e)) for e in entries}


_TECHNIQUES: dict[str, Technique] | None = None


def techniques() -> dict[str, Technique]:
    """The registry (built once)."""
    global _TECHNIQUES
    if _TECHNIQUES is None:
        _TECHNIQUES = _registry()
    return _TECHNIQUES


def get(name: str) -> Technique:
    t = techniques().get(name)
    if t is None:
        raise ConvlensError(f"unknown technique '{str(name)[:40]}'; closest: {closest(str(name), techniques())} "
                            "(GET /api/techniques lists them)")
    return t
