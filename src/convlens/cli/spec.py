"""A saved description of every command, so ``--help`` and usage errors need no torch.

Building the real commands imports torch (the recipes' config dataclasses define the options), which
takes seconds. ``data/cli_commands.json`` holds each command's signature (Typer options/arguments,
help, docstring) and the module that registers it; ``register_stubs`` rebuilds the same Typer
commands from it, with bodies that import the real command only when it runs. The file records a
hash of the sources it was made from: when they change, the CLI falls back to importing everything
(correct, just slower) until it is regenerated with ``python -m convlens.cli.spec``;
``tests/test_cli_fuzz.py`` fails while it is stale.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
import json
import sys
import typing
from pathlib import Path

import typer
from typer.models import ArgumentInfo, CommandInfo, DefaultPlaceholder, TyperInfo

# the modules whose register(app) adds commands, in the order of `convlens --help`
CLI_MODULES = ("core", "inspect", "attribution", "synthesis", "embed", "adversarial", "texture", "faithfulness", "serve",
               "concepts")
PACKAGE = Path(__file__).resolve().parents[1]
SPEC_FILE = PACKAGE / "data" / "cli_commands.json"
_ELLIPSIS = {"...": True}


# --- what gets saved ------------------------------------------------------------------------
def _jsonable(v):
    if v is ...:
        return _ELLIPSIS
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    return v


def _fields(obj, fresh, skip=()) -> dict:
    """The attributes of a Typer info object set differently from a fresh one (JSON values only)."""
    out = {}
    for k, v in vars(obj).items():
        if k in skip or isinstance(v, DefaultPlaceholder) or callable(v):
            continue
        f = getattr(fresh, k, None)
        if v == f and not isinstance(f, DefaultPlaceholder):
            continue
        json.dumps(_jsonable(v))  # raises for a value the file cannot hold: extend this module
        out[k] = _jsonable(v)
    return out


def _annotation(ann) -> str:
    text = ann.__name__ if isinstance(ann, type) else repr(ann)
    if _eval_annotation(text) != ann:
        raise TypeError(f"cli/spec.py cannot save the annotation {ann!r}; extend _eval_annotation")
    return text


def _eval_annotation(text: str):
    names = {"__builtins__": {}, "typing": typing, "str": str, "int": int, "float": float, "bool": bool, "list": list}
    return eval(text, names)  # noqa: S307 - our own file, names limited to these


def _command(info: CommandInfo) -> dict:
    params = []
    for p in inspect.signature(info.callback, eval_str=True).parameters.values():
        pi = p.default
        kind = "argument" if isinstance(pi, ArgumentInfo) else "option"
        fresh = typer.Argument() if kind == "argument" else typer.Option()
        params.append({"name": p.name, "kind": kind, "annotation": _annotation(p.annotation),
                       "info": _fields(pi, fresh)})
    return {"name": info.name, "doc": info.callback.__doc__, "info": _fields(info, CommandInfo(), ("name",)),
            "params": params}


def _typer(t: typer.Typer) -> list[dict]:
    out = [{"kind": "command", **_command(c)} for c in t.registered_commands]
    for g in t.registered_groups:
        out.append({"kind": "group", "name": g.name, "add": _fields(g, TyperInfo(), ("name", "typer_instance")),
                    "info": _fields(g.typer_instance.info, TyperInfo()),
                    "commands": _typer(g.typer_instance)})
    return out


def _sources(configs) -> list[str]:
    files = {p for p in (PACKAGE / "cli").glob("*.py") if p.name != "main.py"}  # main: the root options only
    files.add(PACKAGE / "fields.py")  # the field walk that turns configs into flags
    files.add(PACKAGE / "catalog.py")  # commands generated from catalog entries (cli/attribution.py)
    files |= {Path(inspect.getfile(c)).resolve() for c in configs}
    return sorted(str(f.relative_to(PACKAGE)) for f in files)


def _digest(sources) -> str:
    h = hashlib.sha256()
    for rel in sources:
        h.update(rel.encode() + b"\0" + (PACKAGE / rel).read_bytes())
    return h.hexdigest()


def build_spec() -> dict:
    """The description of the live commands (imports every CLI module and torch)."""
    from . import common
    commands = []
    for name in CLI_MODULES:
        t = typer.Typer()
        importlib.import_module(f".{name}", __package__).register(t)
        for c in _typer(t):
            commands.append({"module": name, **c})
    sources = _sources(common.CONFIG_CLASSES)
    return {"sources": sources, "sha256": _digest(sources), "commands": commands}


def write_spec(path: Path = SPEC_FILE) -> Path:
    from ..images.io import write_atomic
    return write_atomic(path, json.dumps(build_spec(), indent=1, ensure_ascii=False) + "\n")


# --- what gets rebuilt ------------------------------------------------------------------------
def load_fresh_spec(path: Path = SPEC_FILE) -> dict | None:
    """The saved description if it matches the sources on disk, else None."""
    try:
        spec = json.loads(path.read_text())
        return spec if _digest(spec["sources"]) == spec["sha256"] else None
    except (OSError, ValueError, KeyError):
        return None


def _value(v):
    if v == _ELLIPSIS:
        return ...
    return tuple(v) if isinstance(v, list) else v


@dataclasses.dataclass
class _Target:
    module: str
    path: tuple


_REAL: dict[str, typer.Typer] = {}


def _real_callback(target: _Target):
    """The real command function (imports its CLI module, registered on a private Typer)."""
    if target.module not in _REAL:
        t = typer.Typer()
        importlib.import_module(f".{target.module}", __package__).register(t)
        _REAL[target.module] = t
    t = _REAL[target.module]
    for name in target.path[:-1]:
        t = next(g.typer_instance for g in t.registered_groups if g.name == name)
    return next(c.callback for c in t.registered_commands if c.name == target.path[-1])


def _stub(c: dict, target: _Target):
    def run(**kwargs):
        return _real_callback(target)(**kwargs)
    params = []
    for p in c["params"]:
        info = {k: _value(v) for k, v in p["info"].items()}
        default, decls = info.pop("default", ...), info.pop("param_decls", None) or ()  # absent: required
        pi = typer.Argument(default, **info) if p["kind"] == "argument" else typer.Option(default, *decls, **info)
        params.append(inspect.Parameter(p["name"], inspect.Parameter.KEYWORD_ONLY, default=pi,
                                        annotation=_eval_annotation(p["annotation"])))
    run.__signature__ = inspect.Signature(params)
    run.__doc__ = c["doc"]
    run.__name__ = c["name"].replace("-", "_")
    return run


def _add(app: typer.Typer, commands: list[dict], module: str | None, path: tuple) -> None:
    for c in commands:
        mod = c.get("module", module)
        if c["kind"] == "command":
            info = {k: _value(v) for k, v in c["info"].items()}
            app.command(c["name"], **info)(_stub(c, _Target(mod, (*path, c["name"]))))
        else:
            sub = typer.Typer(**{k: _value(v) for k, v in c["info"].items()})
            _add(sub, c["commands"], mod, (*path, c["name"]))
            app.add_typer(sub, name=c["name"], **{k: _value(v) for k, v in c["add"].items()})


def register_stubs(app: typer.Typer) -> bool:
    """Add every command to ``app`` from the saved description; False (nothing added) if it is stale."""
    spec = load_fresh_spec()
    if spec is None:
        return False
    _add(app, spec["commands"], None, ())
    return True


if __name__ == "__main__":
    print(f"wrote {write_spec()}", file=sys.stderr)
