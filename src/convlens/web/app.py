"""The FastAPI app: one factory, JSON errors everywhere, the page and the routers of each view.

Every action of the page is an endpoint under ``/api`` described by ``/openapi.json``; the page
uses nothing else, so scripts can drive the explorer the same way.
"""
from __future__ import annotations

import importlib
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from ..errors import ConvlensError
from .state import AppState

STATIC = Path(__file__).parent / "static"

# One module per view under web/routes/, each with a module-level ``router`` (an APIRouter).
ROUTERS = [
    "core",
    "lab",
    "layers",
    "projector",
]
# Top-level page paths served by the single-page app (static/index.html routes on location.pathname).
PAGES = {"lab", "layers", "projector", "words"}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(model: str = "mobilenet_v2", weights: str = "default", store=None, data_dir=None,
               workers: int = 1, threads: int | None = None, images=()) -> FastAPI:
    """The explorer app for ``model`` (loaded on first use), an optional embedding ``store`` and
    optional folders of the user's ``images`` (patch sources of the layer browser, named by basename)."""
    from ..errors import ConvlensError
    folders = {}
    for folder in images or ():
        p = Path(folder).expanduser().resolve()
        if not p.is_dir():
            raise ConvlensError(f"image folder not found: {folder}; pass an existing folder of images")
        folders.setdefault(p.name, p)
    state = AppState(model_name=model, weights=weights, store=Path(store) if store else None,
                     data_dir=data_dir, workers=workers, threads=threads, image_folders=folders)

    @asynccontextmanager
    async def lifespan(app):
        yield
        state.close()

    app = FastAPI(title="convlens explorer", version="0.1.0", lifespan=lifespan,
                  description="Every technique of convlens over HTTP. The page at / uses only these endpoints.")
    app.state.convlens = state

    @app.exception_handler(ConvlensError)
    async def _convlens_error(request: Request, exc: ConvlensError):
        return _error(400, str(exc))

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException):
        return _error(exc.status_code, str(exc.detail))

    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(StarletteHTTPException)
    async def _starlette_error(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        errs = exc.errors()
        first = errs[0] if errs else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        return _error(422, f"invalid parameter {where}: {first.get('msg', 'bad value')}")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        return _error(500, f"internal error: {type(exc).__name__}: {str(exc)[:200]}")

    for name in ROUTERS:
        app.include_router(importlib.import_module(f"{__package__}.routes.{name}").router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html")

    @app.get("/{page}", include_in_schema=False)
    @app.get("/{page}/{rest:path}", include_in_schema=False)
    def page(page: str, rest: str = ""):
        if page == "api":
            raise HTTPException(404, f"no API endpoint '/api/{rest[:60]}'; the endpoints are listed in /openapi.json")
        if page not in PAGES:
            raise HTTPException(404, f"no page '/{page[:40]}'; the explorer's pages are /, /" + ", /".join(sorted(PAGES)))
        return FileResponse(STATIC / "index.html")

    return app


def app_state(request: Request) -> AppState:
    """The server's ``AppState`` (use as ``state: AppState = Depends(app_state)``)."""
    return request.app.state.convlens
