"""Helpers for the explorer's tests: a live server on loopback and a headless Debian chromium.

    with live_server(create_app()) as url: ...            # uvicorn in a thread on 127.0.0.1:<free port>
    with chromium_page() as page: page.goto(url)          # Playwright driving /usr/bin/chromium
    with api_client(create_app()) as client: ...          # TestClient as the page: loopback Host + token

Browser tests are skipped (with the reason) when chromium or Playwright is missing; `scripts/setup`
installs both.
"""
from __future__ import annotations

import contextlib
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).parent / "artifacts"   # screenshots (git-ignored; the README's are in docs/img)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--enable-unsafe-swiftshader"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def live_server(app, timeout: float = 30.0):
    """Run ``app`` under uvicorn on 127.0.0.1 in a background thread; yields the base URL."""
    import uvicorn
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    t0 = time.time()
    while not server.started:
        if time.time() - t0 > timeout or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)


def api_client(app, **kw):
    """A TestClient that talks like the explorer's own page: Host 127.0.0.1 (the Host check refuses
    TestClient's default 'testserver') and the server's token on every request."""
    from fastapi.testclient import TestClient
    headers = {"X-Convlens-Token": app.state.convlens.token, **kw.pop("headers", {})}
    return TestClient(app, base_url=kw.pop("base_url", "http://127.0.0.1"), headers=headers, **kw)


def token_headers(base_url: str) -> dict:
    """The token header of a live server (read from GET /api/token, as a script would)."""
    import httpx
    return {"X-Convlens-Token": httpx.get(f"{base_url}/api/token").json()["token"]}


def wait_job(client, job_id: str, timeout: float = 120.0) -> dict:
    """Poll ``/api/jobs/{id}`` until the job finishes; its final JSON (fails the test after ``timeout`` s)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        j = client.get(f"/api/jobs/{job_id}").json()
        if j["status"] in ("done", "error", "cancelled"):
            return j
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextlib.contextmanager
def chromium_page(width: int = 1280, height: int = 900):
    """A Playwright page in headless Debian chromium (skips the test if unavailable)."""
    exe = chromium_path()
    if exe is None:
        pytest.skip("Debian's chromium is not installed (scripts/setup installs it with apt-get)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.js_errors = errors  # tests assert this stays empty
            yield page
        finally:
            browser.close()


def screenshot(page, name: str) -> Path:
    """Save a screenshot under tests/artifacts/NAME.png (kept as a test artifact)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
