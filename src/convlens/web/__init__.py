"""The convlens explorer: a local FastAPI app over every technique (``convlens serve``).

    from convlens.web import create_app
    app = create_app(model="mobilenet_v2")          # any ASGI server; `convlens serve` uses uvicorn

Layout: ``app.py`` (factory, errors, pages), ``state.py`` (model, data folders, safe paths),
``jobs.py`` (the bounded worker pool), ``routes/`` (one router per view: core, lab, layers,
projector), ``static/`` (the page: plain HTML/JS/CSS, no build step, no CDN).
"""
from .app import create_app

__all__ = ["create_app"]
