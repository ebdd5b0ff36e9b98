"""The explorer's door: which requests reach the app at all (docs/web.md, "Security").

The server shows the user's photos and runs jobs on their CPU, so a request must prove two things:

- **It is addressed to this server by a local name** (DNS rebinding): the ``Host`` header names a
  loopback address (127.x, ``[::1]``), ``localhost`` or the ``--host`` the user gave, with any port;
  anything else gets 400. A rebinding page's requests carry its own domain name as ``Host``.
- **A state-changing request comes from the explorer's own page** (cross-site request forgery):
  POST/PUT/PATCH/DELETE carry the per-server random token in ``X-Convlens-Token`` (the page reads it
  from its ``<meta name="convlens-token">``; scripts from ``GET /api/token``, which another origin
  cannot read), an ``Origin`` or ``Referer`` header, when present, is the server's own origin, and a
  body is JSON (``Content-Type: application/json``; the upload route takes ``multipart/form-data``).
  A cross-site HTML form can send neither the header nor a JSON content type.

``Guard`` is plain ASGI middleware (no buffering: server-sent event streams pass through untouched).
It also refuses a request whose declared ``Content-Length`` is above the route's limit before a byte
of the body is read (413).
"""
from __future__ import annotations

import ipaddress
import secrets
from typing import Callable
from urllib.parse import urlsplit

from starlette.responses import JSONResponse

TOKEN_HEADER = "x-convlens-token"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
WILDCARDS = {"0.0.0.0", "::", ""}
MAX_JSON_BYTES = 1024 * 1024            # a JSON request body (parameters only) is far smaller
UPLOAD_OVERHEAD = 64 * 1024             # multipart framing around the file's bytes


def size_text(n: int) -> str:
    """A byte limit for messages: ``12 MB``, ``195 KB``."""
    return f"{n // (1024 * 1024)} MB" if n >= 1024 * 1024 else f"{max(1, n // 1024)} KB"


def new_token() -> str:
    """A fresh per-server token (256 random bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def _host_name(value: str) -> str | None:
    """The host part of a ``Host`` header value (``[::1]:8000`` -> ``::1``), lowercased; None if malformed."""
    value = value.strip().lower()
    if value.count(":") > 1 and not value.startswith("["):   # a bare IPv6 address (as --host takes it)
        return value
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or (value[end + 1:] and not value[end + 1:].startswith(":")):
            return None
        return value[1:end]
    name, _, port = value.partition(":")
    if port and not port.isdigit():
        return None
    return name.rstrip(".")


def _ip(name: str):
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def host_allowed(value: str, bound: str = "127.0.0.1") -> bool:
    """Whether a ``Host`` header names this server locally: loopback, ``localhost`` or ``bound`` (the
    ``--host`` the server was started with), any port. Bound to every interface (0.0.0.0, ::), any IP
    address literal is accepted too (a rebinding attack needs a domain name), never another name."""
    name = _host_name(value)
    if not name:
        return False
    ip = _ip(name)
    if name == "localhost" or (ip is not None and ip.is_loopback):
        return True
    bound = (_host_name(bound) or "").lower()
    if name == bound:
        return True
    return bound in WILDCARDS and ip is not None


def _same_origin(url: str, scheme: str, host: str) -> bool:
    """Whether ``url``'s scheme, host and port are the request's own (default ports made explicit)."""
    try:
        u = urlsplit(url)
        port = u.port
    except ValueError:
        return False
    default = {"http": 80, "https": 443}
    own = urlsplit(f"{scheme}://{host}")
    try:
        own_port = own.port
    except ValueError:
        return False
    return (u.scheme.lower() == scheme and (u.hostname or "") == (own.hostname or "")
            and (port or default.get(u.scheme.lower())) == (own_port or default.get(scheme)))


class Guard:
    """ASGI middleware: the Host check on every request, the token, origin and content-type checks on
    state-changing ones, and the declared-size check on bodies.

    Args:
        app: the ASGI app to protect.
        token: the server's token (``new_token()``).
        bound: the address the server listens on (``--host``).
        upload_limit: ``path -> max body bytes`` for routes that take ``multipart/form-data`` (uploads),
            None for every other route (JSON only, at most ``MAX_JSON_BYTES``).
    """

    def __init__(self, app, token: str, bound: str = "127.0.0.1", upload_limit: Callable[[str], int | None] = None):
        self.app, self.token, self.bound = app, token, bound
        self.upload_limit = upload_limit or (lambda path: None)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        why, status = self.refusal(scope)
        if why:
            if scope["type"] == "websocket":
                return await send({"type": "websocket.close", "code": 1008})
            return await JSONResponse({"error": why}, status_code=status)(scope, receive, send)
        return await self.app(scope, receive, send)

    def refusal(self, scope) -> tuple[str | None, int]:
        """(one-line reason, HTTP status) if the request must be refused, else (None, 0)."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        if not host_allowed(host, self.bound):
            return (f"refused: Host '{host[:60]}' is not this server's local address; open the explorer at "
                    "http://127.0.0.1:PORT/ or http://localhost:PORT/ (protection against DNS rebinding)"), 400
        method = scope.get("method", "GET")
        if method not in UNSAFE:
            return None, 0
        if not secrets.compare_digest(headers.get(TOKEN_HEADER, "").encode(), self.token.encode()):
            return (f"refused: a {method} needs the server's token in the X-Convlens-Token header (the page sends "
                    "it; scripts read it from GET /api/token)"), 403
        scheme = scope.get("scheme", "http")
        for name in ("origin", "referer"):
            if name in headers:
                if not _same_origin(headers[name], scheme, host):
                    return f"refused: {name.title()} '{headers[name][:60]}' is not this server's own page", 403
                break
        path = scope.get("path", "")
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        length = headers.get("content-length", "")
        has_body = (length not in ("", "0")) or "transfer-encoding" in headers
        limit = self.upload_limit(path) if method == "POST" else None
        if limit is not None:
            if ctype != "multipart/form-data":
                return "refused: send the upload as multipart/form-data (the field 'file')", 415
            if length.isdigit() and int(length) > limit + UPLOAD_OVERHEAD:
                return f"upload too large: at most {size_text(limit)}", 413
            return None, 0
        if (has_body or ctype) and ctype != "application/json":
            return f"refused: a {method} body must be JSON (Content-Type: application/json), not '{ctype[:40]}'", 415
        if length.isdigit() and int(length) > MAX_JSON_BYTES:
            return f"request body too large: at most {size_text(MAX_JSON_BYTES)} of JSON", 413
        return None, 0
