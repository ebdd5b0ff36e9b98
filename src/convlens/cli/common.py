"""Shared CLI pieces: model/image/output options, and commands generated from config dataclasses.

A recipe's config dataclass is the single source of its parameters: ``config_command`` turns its
fields into ``--flags`` (name, type, default, help from ``field(metadata={"help": ...})``), so the
CLI and the web form never drift from the Python API.
"""
from __future__ import annotations

import dataclasses
import inspect
import typing
from pathlib import Path
from typing import Any, Callable

import typer

MODEL_OPT = typer.Option("mobilenet_v2", "--model", "-m", help="torchvision model name (see `convlens models`).")
WEIGHTS_OPT = typer.Option("default", "--weights", "-w",
                           help="'default', 'none' (random, seeded), a torchvision weights name, or a file.")
OUT_OPT = typer.Option(..., "--out", "-o", help="Output PNG path.")


def get_model(name: str, weights: str):
    from ..models import load_model
    return load_model(name, weights=None if str(weights).lower() == "none" else weights)


def get_image(arg: str, size=None):
    from ..images import image_from_arg
    return image_from_arg(arg, size)


def echo(msg: str) -> None:
    typer.echo(msg)


def config_options(config_cls) -> list[inspect.Parameter]:
    """``inspect.Parameter`` objects (Typer options) for every field of a config dataclass."""
    params = []
    hints = typing.get_type_hints(config_cls)
    for f in dataclasses.fields(config_cls):
        if f.metadata.get("cli") is False:
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else ...)
        ann = hints[f.name]
        origin = typing.get_origin(ann)
        if origin is typing.Union or str(origin) == "types.UnionType":
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            ann = args[0] if len(args) == 1 else str
        if typing.get_origin(ann) is typing.Literal:
            choices = typing.get_args(ann)
            ann = str
            help_ = f.metadata.get("help", "") + f" [one of: {', '.join(map(str, choices))}]"
        else:
            help_ = f.metadata.get("help", "")
        if ann not in (int, float, str, bool):
            ann = str
            default = None if default is ... else (",".join(map(str, default)) if isinstance(default, (tuple, list)) else default)
        flag = "--" + f.name.replace("_", "-")
        opt = typer.Option(default, flag, help=help_) if ann is not bool else typer.Option(
            default, f"{flag}/--no-{f.name.replace('_', '-')}", help=help_)
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=ann))
    return params


def parse_config(config_cls, values: dict[str, Any]):
    """Build a config from CLI values (strings for tuple/list fields are split on commas)."""
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
        kwargs[f.name] = v
    return config_cls(**kwargs)


def config_command(app: typer.Typer, name: str, config_cls, fixed: list[inspect.Parameter],
                   run: Callable[..., None], help: str) -> None:
    """Register ``convlens NAME`` whose options are ``fixed`` + the fields of ``config_cls``.

    ``run(config, **fixed_values)`` does the work.
    """
    cfg_params = config_options(config_cls)
    cfg_names = {p.name for p in cfg_params}

    def command(**kwargs):
        cfg = parse_config(config_cls, {k: v for k, v in kwargs.items() if k in cfg_names})
        run(cfg, **{k: v for k, v in kwargs.items() if k not in cfg_names})
    command.__signature__ = inspect.Signature(list(fixed) + cfg_params)
    command.__name__ = name.replace("-", "_")
    command.__doc__ = help
    app.command(name)(command)


def fixed(name: str, default, annotation=str) -> inspect.Parameter:
    """A non-config parameter for ``config_command`` (``default`` is a typer Option/Argument)."""
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def out_path(path: str) -> Path:
    from ..errors import ConvlensError
    p = Path(path)
    if p.suffix.lower() != ".png":
        raise ConvlensError(f"output {path} must end in .png")
    return p
