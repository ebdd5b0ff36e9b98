"""Shared CLI pieces: model/image/output options, and commands generated from config dataclasses.

A recipe's config dataclass is the single source of its parameters: ``config_command`` turns its
fields into ``--flags`` (name, type, default, help from ``field(metadata={"help": ...})``), so the
CLI and the web form never drift from the Python API.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
import types
import typing
from pathlib import Path
from typing import Any, Callable

import typer

MODEL_OPT = typer.Option("mobilenet_v2", "--model", "-m", help="torchvision model name (see `convlens models`).")
WEIGHTS_OPT = typer.Option("default", "--weights", "-w",
                           help="'default', 'none' (random, seeded), a torchvision weights name, or a file.")
OUT_OPT = typer.Option(..., "--out", "-o", help="Output PNG path.")
CONFIG_CLASSES: set = set()  # every config behind a command (cli/spec.py hashes their files)


def get_model(name: str, weights: str):
    from ..models import load_model
    return load_model(name, weights=None if str(weights).lower() == "none" else weights)


def get_image(arg: str, size=None):
    from ..images import image_from_arg
    return image_from_arg(arg, size)


def echo(msg: str) -> None:
    typer.echo(msg)


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

    def as_json(self) -> dict:
        d = dataclasses.asdict(self)
        if isinstance(d["default"], tuple):
            d["default"] = list(d["default"])
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
        out.append(ConfigField(f.name, kind, default, f.metadata.get("help", ""), choices, optional, item))
    return out


def config_schema(config_cls) -> list[dict]:
    """JSON descriptions of a config's fields (name, kind, default, help, choices, optional, item)
    for the web explorer's forms; the same walk as the CLI's ``config_options``."""
    return [f.as_json() for f in config_fields(config_cls)]


def config_options(config_cls) -> list[inspect.Parameter]:
    """``inspect.Parameter`` objects (Typer options) for every field of a config dataclass."""
    params = []
    for f in config_fields(config_cls):
        help_ = f.help + (f" [one of: {', '.join(map(str, f.choices))}]" if f.choices else "")
        default = f.default
        ann = {"int": int, "float": float, "bool": bool}.get(f.kind, str)
        if f.kind == "list":
            default = ",".join(map(str, default)) if isinstance(default, (tuple, list)) else default
        flag = "--" + f.name.replace("_", "-")
        opt = typer.Option(default, flag, help=help_) if ann is not bool else typer.Option(
            default, f"{flag}/--no-{f.name.replace('_', '-')}", help=help_)
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=ann))
    return params


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


def check_range(name: str, value) -> None:
    """One-line error for a CLI value outside its field's sanity range (see the sets above)."""
    from ..errors import ConvlensError
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConvlensError(f"{flag} must be a finite number, got {value}")
    if name in _AT_LEAST_1 and value < 1:
        raise ConvlensError(f"{flag} must be at least 1, got {value}")
    if name in _POSITIVE and value <= 0:
        raise ConvlensError(f"{flag} must be greater than 0, got {value}")
    if name in _NON_NEGATIVE and value < 0:
        raise ConvlensError(f"{flag} must be 0 or more, got {value}")
    if name in _FRACTION and not 0 < value < 1:
        raise ConvlensError(f"{flag} must be between 0 and 1 (exclusive), got {value}")


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
        check_range(f.name, v)
        kwargs[f.name] = v
    return config_cls(**kwargs)


def config_command(app: typer.Typer, name: str, config_cls, fixed: list[inspect.Parameter],
                   run: Callable[..., None], help: str, out_suffix: str = ".png") -> None:
    """Register ``convlens NAME`` whose options are ``fixed`` + the fields of ``config_cls``.

    ``run(config, **fixed_values)`` does the work; an ``out`` value is checked first (``out_path``
    with ``out_suffix``), the config's values next (``check_range``).
    """
    CONFIG_CLASSES.add(config_cls)
    cfg_params = config_options(config_cls)
    cfg_names = {p.name for p in cfg_params}

    def command(**kwargs):
        if isinstance(kwargs.get("out"), str):
            out_path(kwargs["out"], out_suffix)
        cfg = parse_config(config_cls, {k: v for k, v in kwargs.items() if k in cfg_names})
        run(cfg, **{k: v for k, v in kwargs.items() if k not in cfg_names})
    command.__signature__ = inspect.Signature(list(fixed) + cfg_params)
    command.__name__ = name.replace("-", "_")
    command.__doc__ = help
    app.command(name)(command)


def fixed(name: str, default, annotation=str) -> inspect.Parameter:
    """A non-config parameter for ``config_command`` (``default`` is a typer Option/Argument)."""
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def check_output(path) -> Path:
    """An output path convlens can create: not an existing folder, no file where a folder must be.
    Commands call it before any work (missing parent folders are created when writing)."""
    from ..errors import ConvlensError
    p = Path(path)
    if p.is_dir():
        raise ConvlensError(f"output {path} is a folder; give a file name inside it, e.g. {p / 'out.png'}")
    parent = next((q for q in p.parents if q.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ConvlensError(f"cannot write {path}: {parent} is a file, not a folder")
    return p


def out_path(path: str, suffix: str = ".png") -> Path:
    """The output path of a figure, checked (``check_output``) and ending in ``suffix``."""
    from ..errors import ConvlensError
    p = check_output(path)
    if p.suffix.lower() != suffix:
        raise ConvlensError(f"output {path} must end in {suffix}")
    return p


def at_least(value, minimum, flag: str):
    """``value`` if it is at least ``minimum`` (None passes: the default), else a one-line error."""
    from ..errors import ConvlensError
    if value is not None and value < minimum:
        raise ConvlensError(f"{flag} must be at least {minimum}, got {value}")
    return value
