"""`convlens serve`: the local web explorer (FastAPI under uvicorn).

    convlens serve                       # http://127.0.0.1:8000, the default model
    convlens serve --model resnet18 --store photos.store --port 8080 --open
    convlens serve --model mobilenet_v2 --model resnet18   # requests may name either, no other

The server answers only requests addressed to its local name and takes state-changing requests only
from its own page (docs/web.md, "Security").
"""
from __future__ import annotations

import typer

from .common import WEIGHTS_OPT, echo

DEFAULT_MODEL = "mobilenet_v2"


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_cmd(model: list[str] = typer.Option(None, "--model", "-m", help="torchvision model name to serve "
                                                  "(repeatable; the first is the default; requests may name no "
                                                  f"other; default {DEFAULT_MODEL}, offline)."),
                  weights: str = WEIGHTS_OPT,
                  store: str = typer.Option(None, "--store", help="Embedding store folder for the projector (`convlens embed`)."),
                  host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; anything but localhost is reachable from other machines."),
                  port: int = typer.Option(8000, "--port", help="TCP port."),
                  workers: int = typer.Option(1, "--workers", help="Job pool size (each gets cores/workers torch threads)."),
                  threads: int = typer.Option(None, "--worker-threads", help="Torch threads per worker (default: cores // workers; keep workers x threads <= cores)."),
                  images: list[str] = typer.Option(None, "--images", help="A folder of your images for the layer browser's max-activating patches (repeatable)."),
                  data_dir: str = typer.Option(None, "--data-dir", help="Folder for uploads, results and caches (default: a temporary folder)."),
                  orphan_timeout: float = typer.Option(60.0, "--orphan-timeout", help="Cancel a job no page or client has followed for this many seconds (0: never)."),
                  open_browser: bool = typer.Option(False, "--open", help="Open the page in a browser.")):
        """Start the local web explorer: every technique in a browser, offline.

        Example: convlens serve --port 8000 --open
        """
        from pathlib import Path

        import uvicorn

        from ..errors import ConvlensError
        from ..web import create_app
        models = list(model or [DEFAULT_MODEL])
        if not 1 <= port <= 65535:
            raise ConvlensError(f"--port must be a TCP port in 1..65535, got {port}; e.g. --port 8000")
        if orphan_timeout < 0:
            raise ConvlensError(f"--orphan-timeout must be 0 (never) or a number of seconds, got {orphan_timeout}")
        if workers < 1:
            raise ConvlensError(f"--workers must be at least 1, got {workers}")
        if threads is not None and threads < 1:
            raise ConvlensError(f"--worker-threads must be at least 1, got {threads}")
        if store and not Path(store).is_dir():
            raise ConvlensError(f"embedding store not found: {store}; make one with `convlens embed FOLDER -o STORE`")
        if host not in ("127.0.0.1", "localhost", "::1"):
            echo(f"warning: listening on {host}: anyone who can reach this machine can use the explorer")
        app = create_app(model=models, weights=weights, store=store, data_dir=data_dir, workers=workers, threads=threads,
                         images=images or (), host=host, orphan_timeout=orphan_timeout or None)
        st = app.state.convlens
        url = page_url(host, port)
        echo(banner(url, models, st.workers, st.threads))
        if open_browser:
            import threading
            import webbrowser
            threading.Timer(1.0, lambda: webbrowser.open(url)).start()
        uvicorn.run(app, host=host, port=port, log_level="warning")


def page_url(host: str, port: int) -> str:
    """The address a browser on this machine opens (a wildcard bind is reached through loopback)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else (f"[{host}]" if ":" in host else host)
    return f"http://{shown}:{port}/"


BANNER_PAGES = ("lab", "layers", "projector", "words", "concepts")  # every page of web.app.PAGES, in nav order


def banner(url: str, models: list[str], workers: int, threads: int) -> str:
    """The start-up lines: the URL to open first (on its own line, so a terminal makes it a link)."""
    return (f"convlens explorer: open {url}lab in a browser\n"
            f"  pages: {'  '.join(url + p for p in BANNER_PAGES)}  (API: {url}docs)\n"
            f"  model {', '.join(models)}; {workers} worker(s) x {threads} torch thread(s); Ctrl-C to stop")
