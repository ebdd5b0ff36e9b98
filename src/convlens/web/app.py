"""The FastAPI app: one factory, JSON errors everywhere, the page and the routers of each view.

Every action of the page is an endpoint under ``/api`` described by ``/openapi.json`` (browsable at
``/docs``, served offline from the ``fastapi-offline`` package's Swagger UI files); the page uses nothing else, so
scripts can drive the explorer the same way. Every request passes ``security.Guard`` first (Host
check; token, origin and JSON checks on state-changing requests; docs/web.md "Security").
"""
from __future__ import annotations

import html
import importlib
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from ..errors import ConvlensError
from .security import Guard
from .state import AppState, app_state, limits, require_known_model  # noqa: F401 - app_state: importable here as before

STATIC = Path(__file__).parent / "static"
TOKEN_META = '<meta name="convlens-token" content="">'   # in static/index.html; filled per server
UPLOAD_ROUTES = {"/api/images"}                          # the routes taking multipart/form-data

# One module per view under web/routes/, each with a module-level ``router`` (an APIRouter).
ROUTERS = [
    "core",
    "lab",
    "layers",
    "layer_units",
    "layer_patches",
    "layer_visualize",
    "layer_evidence",
    "projector",
    "projector_thumbs",
    "projector_colours",
    "projector_neighbors",
    "words",
    "concepts",
]
# Top-level page paths served by the single-page app (static/index.html routes on location.pathname).
PAGES = {"lab", "layers", "projector", "words", "concepts"}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(model: str | list[str] | tuple = "mobilenet_v2", weights: str = "default", store=None, data_dir=None,
               workers: int = 1, threads: int | None = None, images=(), host: str = "127.0.0.1",
               orphan_timeout: float | None = 60.0) -> FastAPI:
    """The explorer app serving ``model`` (a name or a list of names, the first the default; loaded on
    first use; requests may name no other), an optional embedding ``store`` and optional folders of the
    user's ``images`` (patch sources of the layer browser, named by basename). ``host`` is the address
    the server listens on (requests must name it, ``localhost`` or a loopback address as their Host);
    a job nobody has followed for ``orphan_timeout`` seconds is cancelled (None: never)."""
    models = [model] if isinstance(model, str) else list(model)
    if not models:
        raise ConvlensError("serve at least one model; pass --model NAME (repeatable)")
    for name in models:
        require_known_model(name)
    folders = {}
    for folder in images or ():
        p = Path(folder).expanduser().resolve()
        if not p.is_dir():
            raise ConvlensError(f"image folder not found: {folder}; pass an existing folder of images")
        folders.setdefault(p.name, p)
    state = AppState(model_name=models[0], models=tuple(dict.fromkeys(models)), weights=weights,
                     store=Path(store) if store else None, data_dir=data_dir, workers=workers, threads=threads,
                     image_folders=folders, orphan_timeout=orphan_timeout)

    @asynccontextmanager
    async def lifespan(app):
        yield
        state.close()

    app = FastAPI(title="convlens explorer", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Every technique of convlens over HTTP. The page at / uses only these endpoints. "
                              "POST and DELETE requests need the header X-Convlens-Token (GET /api/token) and a "
                              "JSON body.")
    app.state.convlens = state

    def upload_limit(path: str) -> int | None:
        return limits(state)[0] if path in UPLOAD_ROUTES else None
    app.add_middleware(Guard, token=state.token, bound=host, upload_limit=upload_limit)

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
    _mount_docs(app)
    page_html = (STATIC / "index.html").read_text(encoding="utf-8")
    if TOKEN_META not in page_html:
        raise ConvlensError(f"{STATIC / 'index.html'} lacks {TOKEN_META}; reinstall convlens")
    page_html = page_html.replace(TOKEN_META, TOKEN_META.replace('content=""', f'content="{state.token}"'))

    def page_response():
        return HTMLResponse(page_html, headers={"Cache-Control": "no-store"})

    @app.get("/", include_in_schema=False)
    def index():
        return page_response()

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    not_found_html = (STATIC / "404.html").read_text(encoding="utf-8")

    @app.get("/{page}", include_in_schema=False)
    @app.get("/{page}/{rest:path}", include_in_schema=False)
    def page(request: Request, page: str, rest: str = ""):
        if page == "api":
            raise HTTPException(404, f"no API endpoint '/api/{rest[:60]}'; the endpoints are listed in /openapi.json")
        if page not in PAGES:
            message = f"no page '/{page[:40]}'; the explorer's pages are /, /" + ", /".join(sorted(PAGES))
            if "text/html" in request.headers.get("accept", ""):   # a browser: a page with a way home
                where = html.escape(f"/{page}/{rest}".rstrip("/")[:80])
                return HTMLResponse(not_found_html.replace("There is no page at this address.",
                                                           f"There is no page at {where}."), status_code=404)
            raise HTTPException(404, message)
        return page_response()

    return app


def _mount_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI 5 from the ``fastapi-offline`` package's files (no CDN: works offline;
    ``swagger-ui-bundle``'s Swagger UI 4 cannot read FastAPI's OpenAPI 3.1). The
    schema declares the token header on every POST and DELETE, so "Authorize" (paste the token of
    ``GET /api/token``) makes "Try it out" work for them too."""
    import fastapi_offline
    from fastapi.openapi.docs import get_swagger_ui_html
    app.mount("/docs-assets", StaticFiles(directory=Path(fastapi_offline.__file__).parent / "static"),
              name="docs-assets")
    plain_schema = app.openapi

    def schema_with_token() -> dict:
        if app.openapi_schema is None:
            schema = plain_schema()
            schema.setdefault("components", {})["securitySchemes"] = {"token": {
                "type": "apiKey", "in": "header", "name": "X-Convlens-Token",
                "description": "the server's token: GET /api/token (the page sends it itself)"}}
            for ops in schema.get("paths", {}).values():
                for method, op in ops.items():
                    if method.upper() in ("POST", "PUT", "PATCH", "DELETE"):
                        op["security"] = [{"token": []}]
        return app.openapi_schema
    app.openapi = schema_with_token

    @app.get("/docs", include_in_schema=False)
    def docs():
        return get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{app.title} - API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon.png",
                                   swagger_ui_parameters={"persistAuthorization": True})
