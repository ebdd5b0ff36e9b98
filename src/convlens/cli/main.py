"""The `convlens` command: a thin Typer layer over the Python API.

Each concern registers its commands from its own file (``cli/core.py``, ``cli/inspect.py``,
``cli/attribution.py``, ``cli/synthesis.py``...). Errors print one line on stderr and exit
non-zero; ``--debug`` (before the command) shows the traceback instead.
"""
from __future__ import annotations

import sys

import typer

app = typer.Typer(
    name="convlens", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="See inside convolutional networks: predictions, layers, attribution, visualization.\n\n"
         "Example: convlens predict chelsea coffee --topk 3",
    context_settings={"help_option_names": ["-h", "--help"]})

STATE = {"debug": False, "threads": None}


@app.callback()
def _global(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
            threads: int = typer.Option(None, "--threads", help="Torch CPU threads (default: all cores)."),
            backend: str = typer.Option(None, "--backend", help="Forward passes: auto, torch or onnxruntime (docs/forward.md).")):
    STATE["debug"] = debug
    if backend:  # read by every forward-only pass (convlens.drivers.onnx.resolve_backend)
        import os
        os.environ["CONVLENS_BACKEND"] = backend
    if threads:
        import torch
        torch.set_num_threads(threads)
        STATE["threads"] = threads


_REGISTERED = []


def _register_all() -> None:
    """Add every command to `app` once: from the saved description when it is current (no torch
    until a command runs; see cli/spec.py), else by importing each CLI module's register(app)."""
    if _REGISTERED:
        return
    import importlib

    from .spec import CLI_MODULES, register_stubs
    if not register_stubs(app):
        for name in CLI_MODULES:
            importlib.import_module(f".{name}", __package__).register(app)
    _REGISTERED.append(True)


def run(argv=None) -> int:
    """Entry point: run the CLI, turning every error into one line on stderr."""
    _register_all()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        rc = app(args=argv, standalone_mode=False)
        if rc == 130:  # typer turns Ctrl-C inside a command into exit code 130
            raise KeyboardInterrupt
        return rc if isinstance(rc, int) else 0
    except SystemExit as e:  # typer/click exits (help, usage)
        return int(e.code or 0)
    except KeyboardInterrupt:
        print("convlens: interrupted", file=sys.stderr)  # commands that keep partial work say what they wrote
        return 130
    except Exception as e:  # noqa: BLE001 - the CLI's contract is one line, no traceback
        if debug:
            raise
        if type(e).__name__ == "Abort":  # click's (typer vendors its own copy of click)
            print("convlens: aborted", file=sys.stderr)
            return 1
        if hasattr(e, "format_message") and hasattr(e, "exit_code"):  # click usage errors
            print(f"convlens: {e.format_message()} (see --help)", file=sys.stderr)
            return int(e.exit_code)
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        from ..errors import ConvlensError
        prefix = "" if isinstance(e, ConvlensError) else f"{type(e).__name__}: "
        print(f"convlens: error: {prefix}{msg}", file=sys.stderr)
        return 1


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
