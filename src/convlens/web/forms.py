"""The lab's form fields: parameters described like config fields, and request values coerced to them.

A technique's form is its web-only fixed fields (target, layer, render mode... ``F``) followed by its
config's fields (``convlens.fields.config_fields``: the same walk as the CLI's flags). ``coerce``
turns a JSON or form value into the field's type, or raises a one-line ``ConvlensError``; ``LIMITS``
caps what a browser tab may ask of the server.
"""
from __future__ import annotations

import math

from ..errors import ConvlensError
from ..fields import ConfigField

# Upper bounds on the integer parameters a request may set (a browser tab must not freeze the server).
LIMITS = {"steps": 2000, "max_steps": 2000, "samples": 200, "size": 768, "octaves": 6, "groups": 20,
          "n_facets": 6, "top": 64, "images": 300, "sample_size": 256, "style_size": 768, "max_size": 1024,
          "examples": 8, "crop": 4096, "iterations": 20, "levels": 6,
          "generations": 1000, "population": 256, "repeats": 32, "hidden": 64, "layers": 8, "grid": 128,
          "batch_size": 64}


def F(name: str, kind: str, default=None, help: str = "", choices=None, optional: bool = False) -> ConfigField:
    """A fixed (non-config) parameter, described like a config field."""
    return ConfigField(name, kind, default, help, list(choices) if choices else None, optional)


TARGET = F("target", "str", None, "class index or name ('Egyptian cat'); empty: the predicted class", optional=True)
LAYER_NEURON = F("layer", "str", None, "explain a channel of this layer instead of a class (empty: the class)",
                 optional=True)
CHANNEL = F("channel", "int", None, "channel of the layer (empty: the most active one)", optional=True)
MODE = F("mode", "str", None, "render mode (empty: the method's)",
         choices=["abs", "positive", "negative", "signed", "minmax", "rgb"], optional=True)


def coerce(f: ConfigField, value):
    """A request value (JSON or form string) as the field's type; ConvlensError naming the fix."""
    def bad(why: str):
        return ConvlensError(f"parameter {f.name}: {why}")
    if value is None or (isinstance(value, str) and value.strip() == "" and f.kind != "str"):
        if f.optional or f.default is None:
            return None
        return f.default
    if isinstance(value, str) and value.strip() == "" and f.kind == "str" and f.optional:
        return None
    if f.kind == "bool":
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "1", "yes", "on"):
            return True
        if str(value).lower() in ("false", "0", "no", "off"):
            return False
        raise bad(f"expected true or false, got {str(value)[:40]!r}")
    if f.kind in ("int", "float"):
        if isinstance(value, bool):
            raise bad(f"expected a number, got {value}")
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise bad(f"expected a number, got {str(value)[:40]!r}") from None
        if not math.isfinite(v):
            raise bad("expected a finite number")
        if f.kind == "int":
            if v != int(v):
                raise bad(f"expected a whole number, got {value}")
            v = int(v)
            cap = LIMITS.get(f.name)
            if cap is not None and v > cap:
                raise bad(f"{v} is above the explorer's limit {cap}; use the CLI or Python API for larger runs")
        return v
    if f.kind == "list":
        items = value if isinstance(value, (list, tuple)) else [s for s in str(value).split(",")]
        items = [str(s).strip() for s in items if str(s).strip()]
        conv = {"int": int, "float": float}.get(f.item or "str", str)
        try:
            return tuple(conv(s) for s in items)
        except ValueError:
            raise bad(f"expected comma-separated {f.item} values") from None
    v = str(value) if not isinstance(value, (dict, list)) else None
    if v is None:
        raise bad("expected a string")
    if len(v) > 200:
        raise bad("value too long (200 characters at most)")
    if f.choices and v not in [str(c) for c in f.choices]:
        raise bad(f"'{v[:40]}' is not one of {', '.join(map(str, f.choices))}")
    return v
