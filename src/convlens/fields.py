"""The neutral schema of a technique's parameters, shared by the front doors (CLI and web lab).

A config dataclass is the single source of a technique's parameters: ``config_fields`` walks its
fields once into ``ConfigField`` descriptions (name, kind, default, help, choices); the CLI turns
them into ``--flags`` (``cli.common.config_options``), the web lab into form inputs
(``config_schema``). ``parse_config`` builds a config from either door's values, each checked by
``check_range``. Nothing here imports Typer or FastAPI: both doors import this module.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

from .errors import ConvlensError


@dataclasses.dataclass
class ConfigField:
    """One parameter as both front doors see it (the CLI's ``--flag`` and the web form's input).

    ``kind`` is int, float, str, bool or list (comma-separated on the CLI, ``item`` typed);
    ``choices`` lists the allowed values of a ``Literal``; ``optional``: ``None`` is allowed.
    """

    name: str
    kind: str
    default: Any
    help: str = ""
    choices: list | None = None
    optional: bool = False
    item: str | None = None
    range: tuple | None = None          # (low, high) inclusive; None on a side: unbounded
    flag: str | None = None             # the CLI's flag name when it differs from ``--name`` (e.g. "fg")

    @property
    def cli_flag(self) -> str:
        return "--" + (self.flag or self.name).replace("_", "-")

    def as_json(self) -> dict:
        d = dataclasses.asdict(self)
        if isinstance(d["default"], tuple):
            d["default"] = list(d["default"])
        d["range"] = list(self.range) if self.range else None
        return d


_KINDS = {int: "int", float: "float", str: "str", bool: "bool"}


def config_fields(config_cls) -> list[ConfigField]:
    """The fields of a config dataclass the user may set (``metadata={"cli": False}`` hides one).

    The single field walk behind ``config_options`` (CLI) and ``config_schema`` (web form): a new
    field appears in both at once.
    """
    out = []
    hints = typing.get_type_hints(config_cls)
    for f in dataclasses.fields(config_cls):
        if f.metadata.get("cli") is False:
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        ann, optional = hints[f.name], False
        origin = typing.get_origin(ann)
        if origin is typing.Union or origin is types.UnionType:  # Optional[X] and X | None
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            optional = len(args) < len(typing.get_args(ann))
            ann = args[0] if len(args) == 1 else str
        choices, item = None, None
        if typing.get_origin(ann) is typing.Literal:
            choices, ann = list(typing.get_args(ann)), str
        if (typing.get_origin(ann) or ann) in (tuple, list):
            inner = (typing.get_args(ann) or (str,))[0]
            kind, item = "list", _KINDS.get(inner, "str")
        else:
            kind = _KINDS.get(ann, "str")
        rng = f.metadata.get("range")
        out.append(ConfigField(f.name, kind, default, f.metadata.get("help", ""), choices, optional, item,
                               tuple(rng) if rng else None, f.metadata.get("flag")))
    return out


def config_schema(config_cls) -> list[dict]:
    """JSON descriptions of a config's fields (name, kind, default, help, choices, optional, item)
    for the web explorer's forms; the same walk as the CLI's ``config_options``."""
    return [f.as_json() for f in config_fields(config_cls)]


# Sanity ranges of config fields by name, checked on the CLI's values before anything runs (a zero
# step count or a negative learning rate would otherwise run for minutes, or fail deep inside).
_AT_LEAST_1 = {"steps", "size", "octaves", "max_steps", "generations", "population", "n_facets", "top", "examples",
               "batch", "crop", "width", "orientations", "cell", "block", "batch_size", "n_iter", "sample",
               "n_neighbors", "large", "hidden", "layers", "grid", "tile", "max_size", "patch", "yosinski_set",
               "blur_every", "patience"}
_POSITIVE = {"lr", "octave_scale", "sigma", "perplexity", "target"}
_NON_NEGATIVE = {"jitter", "style_size", "l2", "tv", "tv_weight", "content_weight", "style_weight", "alpha_weight",
                 "pixel_weight", "center_bias", "beta", "alpha", "blur_sigma", "decay", "norm_pct",
                 "contribution_pct", "decay_power"}
_FRACTION = {"confidence"}  # strictly between 0 and 1


def check_range(name: str, value, bounds: tuple | None = None, flag: str | None = None) -> None:
    """One-line error for a value outside its field's sanity range: ``bounds`` (the field's
    ``metadata={"range": (low, high)}``, inclusive) or, by name, the sets above."""
    flag = flag or "--" + name.replace("_", "-")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConvlensError(f"{flag} must be a finite number, got {value}")
    if bounds is not None:
        lo, hi = bounds
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            span = f"[{lo}, {hi}]" if lo is not None and hi is not None else (
                f"at least {lo}" if lo is not None else f"at most {hi}")
            raise ConvlensError(f"{flag} must be {'in ' if '[' in span else ''}{span}, got {value}")
        return  # a field's own range replaces the by-name sets
    if name in _AT_LEAST_1 and value < 1:
        raise ConvlensError(f"{flag} must be at least 1, got {value}")
    if name in _POSITIVE and value <= 0:
        raise ConvlensError(f"{flag} must be greater than 0, got {value}")
    if name in _NON_NEGATIVE and value < 0:
        raise ConvlensError(f"{flag} must be 0 or more, got {value}")
    if name in _FRACTION and not 0 < value < 1:
        raise ConvlensError(f"{flag} must be between 0 and 1 (exclusive), got {value}")


def check_choice(ann, name: str, value, flag: str | None = None) -> None:
    """One-line error for a value outside the choices of a ``Literal`` annotation ``ann`` (of field ``name``)."""
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        if value is None:
            return
        ann = args[0] if len(args) == 1 else ann
    if typing.get_origin(ann) is typing.Literal and value not in typing.get_args(ann):
        flag = flag or "--" + name.replace("_", "-")
        raise ConvlensError(f"{flag} must be one of {', '.join(map(str, typing.get_args(ann)))}, got {str(value)[:40]!r}")


def parse_config(config_cls, values: dict[str, Any]):
    """Build a config from CLI values (strings for tuple/list fields are split on commas), each
    checked against its sanity range (``check_range``)."""
    hints = typing.get_type_hints(config_cls)
    kwargs = {}
    for f in dataclasses.fields(config_cls):
        if f.name not in values:
            continue
        v = values[f.name]
        ann = hints[f.name]
        origin = typing.get_origin(ann) or ann
        if isinstance(v, str) and origin in (tuple, list):
            inner = (typing.get_args(ann) or (str,))[0]
            inner = inner if inner in (int, float, str) else str
            v = origin(inner(x) for x in v.split(",") if x.strip())
        flag = "--" + (f.metadata.get("flag") or f.name).replace("_", "-")
        check_range(f.name, v, f.metadata.get("range"), flag)
        check_choice(hints[f.name], f.name, v, flag)
        kwargs[f.name] = v
    return config_cls(**kwargs)


def resolve_config(config_cls, config=None, overrides: dict[str, Any] | None = None):
    """The config a technique runs with: ``config`` (default: the paper's, ``config_cls()``) with
    ``overrides`` (keyword arguments named like its fields) replaced and range-checked.

    The calling convention of every technique function, ``fn(..., config=None, **overrides)``:
    ``smoothgrad(model, x, samples=50)`` and ``smoothgrad(model, x, SmoothGradConfig(samples=50))``
    are the same call. An unknown keyword names the fields."""
    if config is None:
        config = config_cls()
    elif not isinstance(config, config_cls):
        raise ConvlensError(f"config must be a {config_cls.__name__}, got {type(config).__name__}; "
                            f"build one with {config_cls.__name__}(...) or pass its fields as keywords")
    if not overrides:
        return config
    names = {f.name: f for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ConvlensError(f"unknown parameter '{unknown[0]}' for {config_cls.__name__}; "
                            f"its fields: {', '.join(names)}")
    hints = typing.get_type_hints(config_cls)
    for k, v in overrides.items():
        check_range(k, v, names[k].metadata.get("range"), k)
        check_choice(hints[k], k, v, k)
    return dataclasses.replace(config, **overrides)
