"""Shared CLI pieces: model/image/output options, and commands generated from config dataclasses.

A recipe's config dataclass is the single source of its parameters: ``config_command`` turns its
fields (walked by ``convlens.fields.config_fields``, the web lab's walk too) into ``--flags`` (name, type, default, help from ``field(metadata={"help": ...})``), so the
CLI and the web form never drift from the Python API.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Callable

import typer

# the neutral field schema lives below both front doors (convlens/fields.py); importable here as before
from ..fields import ConfigField, check_range, config_fields, config_schema, parse_config  # noqa: F401

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


def config_options(config_cls) -> list[inspect.Parameter]:
    """``inspect.Parameter`` objects (Typer options) for every field of a config dataclass."""
    params = []
    for f in config_fields(config_cls):
        help_ = f.help + (f" [one of: {', '.join(map(str, f.choices))}]" if f.choices else "")
        default = f.default
        ann = {"int": int, "float": float, "bool": bool}.get(f.kind, str)
        if f.kind == "list":
            default = ",".join(map(str, default)) if isinstance(default, (tuple, list)) else default
        flag = f.cli_flag
        opt = typer.Option(default, flag, help=help_) if ann is not bool else typer.Option(
            default, f"{flag}/--no-{flag[2:]}", help=help_)
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=ann))
    return params


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
