"""The explorer's door (issue 19, items 5-10): DNS rebinding, cross-site requests, upload limits while
streaming, the served-model allow-list, offline /docs, orphan jobs and queue positions."""
from __future__ import annotations

import asyncio
import io
import re
import socket
import tempfile
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
from PIL import Image  # noqa: E402
from web_helpers import api_client, live_server, wait_job  # noqa: E402

from convlens.embed.store import EmbeddingStore  # noqa: E402
from convlens.images import sample_image  # noqa: E402
from convlens.images.io import to_uint8  # noqa: E402
from convlens.web import create_app  # noqa: E402
from convlens.web.jobs import JobPool  # noqa: E402
from convlens.web.security import host_allowed  # noqa: E402

EVIL = {"Host": "evil.example"}


def _png(arr) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def served(tmp_path_factory, offline_model):
    """A server with a store (thumbnails), a folder of the user's photos (patch crops), an upload and a
    finished patch pass: every kind of route has something real to serve."""
    root = tmp_path_factory.mktemp("security")
    photos = root / "photos"
    photos.mkdir()
    for name in ("china", "flower"):
        Image.fromarray(to_uint8(sample_image(name))).resize((96, 72)).save(photos / f"{name}.jpg")
    thumbs = [Image.new("RGB", (32, 32), (40 * i, 90, 200 - 30 * i)) for i in range(5)]
    store = EmbeddingStore.from_vectors(root / "store", np.eye(5, 8, dtype=np.float32), thumbnails=thumbs)
    app = create_app(store=store.path, images=[photos], data_dir=root / "data", threads=1)
    state = app.state.convlens
    state._models[(state.model_name, state.weights)] = offline_model
    with api_client(app) as c:
        up = c.post("/api/images", files={"file": ("a.png", _png(np.full((20, 30, 3), 77, np.uint8)), "image/png")})
        assert up.status_code == 200, up.text
        job = wait_job(c, c.post("/api/layers/features.1/patches?source=photos&k=2").json()["job"])
        assert job["status"] == "done", job
        yield c, up.json()["id"]


def _routes(image_id):
    """(what, method, url, request kwargs) for every kind of route the server has."""
    png = _png(np.zeros((8, 8, 3), np.uint8))
    return [
        ("page", "GET", "/", {}),
        ("page", "GET", "/layers", {}),
        ("static", "GET", "/static/common.js", {}),
        ("docs", "GET", "/docs", {}),
        ("docs asset", "GET", "/docs-assets/swagger-ui.css", {}),
        ("schema", "GET", "/openapi.json", {}),
        ("sample thumbnail", "GET", "/api/samples/chelsea.png?max_side=64", {}),
        ("store thumbnail", "GET", "/api/projector/thumb.png?i=1", {}),
        ("patch crops", "GET", "/api/layers/features.1/channels/0/patches.png?source=photos&k=2", {}),
        ("upload", "GET", f"/api/images/{image_id}.png", {}),
        ("JSON POST", "POST", "/api/predict", {"json": {"image": "chelsea"}}),
        ("upload POST", "POST", "/api/images", {"files": {"file": ("x.png", png, "image/png")}}),
        ("job POST", "POST", "/api/layers/features.1/patches?source=photos&k=2", {}),
    ]


def test_every_kind_of_route_refuses_a_foreign_host(served):
    client, image_id = served
    for what, method, url, kw in _routes(image_id):
        ok = client.request(method, url, **kw)
        assert ok.status_code == 200, (what, ok.text[:200])
        for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example", "localhost.evil.example"):
            bad = client.request(method, url, headers={"Host": host}, **kw)
            assert bad.status_code == 400, (what, host, bad.status_code)
            err = bad.json()["error"]
            assert "\n" not in err and "DNS rebinding" in err and host in err
        for host in ("localhost:8000", "127.0.0.5", "[::1]:8000", "LOCALHOST"):
            assert client.request(method, url, headers={"Host": host}, **kw).status_code == 200, (what, host)


@pytest.mark.parametrize("host,bound,ok", [
    ("127.0.0.1:8000", "127.0.0.1", True), ("127.1.2.3", "127.0.0.1", True), ("localhost", "127.0.0.1", True),
    ("localhost.", "127.0.0.1", True), ("[::1]:80", "127.0.0.1", True), ("[::1]", "::1", True),
    ("evil.example", "127.0.0.1", False), ("", "127.0.0.1", False), ("127.0.0.1:x", "127.0.0.1", False),
    ("[::1", "127.0.0.1", False), ("10.0.0.7:8000", "127.0.0.1", False),
    # the user's own --host, with any port; with a wildcard bind any IP literal, never a name
    ("10.0.0.7:8000", "10.0.0.7", True), ("mybox.lan:8000", "mybox.lan", True), ("other.lan", "mybox.lan", False),
    ("192.168.1.5:8000", "0.0.0.0", True), ("[fe80::1]:8000", "::", True), ("evil.example", "0.0.0.0", False),
])
def test_host_allowed(host, bound, ok):
    assert host_allowed(host, bound) is ok


def test_cross_site_requests_cannot_start_jobs(served):
    client, _ = served
    state = client.app.state.convlens
    before = len(state.jobs._jobs)
    run = {"technique": "saliency", "image": "chelsea", "params": {"target": 285}}
    no_token = {"X-Convlens-Token": ""}
    # a plain cross-site HTML form: form encoding, the attacker's Origin, no token
    form = client.post("/api/run", data={"technique": "saliency"}, headers={**no_token, "Origin": "http://evil.example"})
    assert form.status_code == 403 and "X-Convlens-Token" in form.json()["error"]
    cases = [
        ({**no_token}, {"json": run}, 403, "token"),                                      # JSON but no token
        ({"X-Convlens-Token": "wrong"}, {"json": run}, 403, "token"),
        ({}, {"data": {"technique": "saliency"}}, 415, "JSON"),                             # token, form body
        ({"Content-Type": "text/plain"}, {"content": b'{"technique": "saliency"}'}, 415, "JSON"),
        ({"Origin": "http://evil.example"}, {"json": run}, 403, "Origin"),
        ({"Origin": "null"}, {"json": run}, 403, "Origin"),
        ({"Origin": "http://127.0.0.1:9999"}, {"json": run}, 403, "Origin"),             # another local port
        ({"Referer": "http://evil.example/page.html"}, {"json": run}, 403, "Referer"),
    ]
    for headers, kw, status, word in cases:
        r = client.post("/api/run", headers=headers, **kw)
        assert r.status_code == status and word in r.json()["error"], (headers, r.text)
    png = _png(np.zeros((8, 8, 3), np.uint8))
    assert client.post("/api/images", files={"file": ("x.png", png)}, headers=no_token).status_code == 403
    assert client.post("/api/images", json={"file": "x"}).status_code == 415
    assert client.post("/api/layers/features.1/patches?source=photos&k=3", headers=no_token).status_code == 403
    assert client.delete("/api/jobs/0123456789abcdef", headers=no_token).status_code == 403
    assert len(state.jobs._jobs) == before   # nothing was queued
    # the page's own requests pass: its origin, its token
    for headers in ({"Origin": "http://127.0.0.1"}, {"Referer": "http://127.0.0.1/lab"}, {}):
        assert client.post("/api/predict", json={"image": "chelsea"}, headers=headers).status_code == 200


def test_the_page_and_scripts_get_the_token(served):
    client, _ = served
    token = client.app.state.convlens.token
    page = client.get("/lab").text
    assert f'<meta name="convlens-token" content="{token}">' in page
    assert client.get("/api/token").json() == {"header": "X-Convlens-Token", "token": token}
    assert len(token) >= 40 and create_app(threads=1).state.convlens.token != token   # random per server


def test_upload_refused_from_the_declared_length_before_the_body(offline_model):
    """A client declares 1.5 GB and sends nothing: the 413 comes back at once (the body is never awaited)."""
    app = create_app(threads=1)
    token = app.state.convlens.token
    with live_server(app) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            s.sendall((f"POST /api/images HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Convlens-Token: {token}\r\n"
                       "Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 1500000000\r\n\r\n").encode())
            reply = b""
            while b"\r\n\r\n" not in reply or not reply.endswith(b"}"):
                more = s.recv(4096)
                if not more:
                    break
                reply += more
            reply = reply.decode()
    assert reply.startswith("HTTP/1.1 413"), reply
    assert "upload too large: at most 12 MB" in reply


class _Body:
    """An ASGI ``receive`` handing out ``chunks`` of ``size`` bytes, counting how many were taken."""

    def __init__(self, head: bytes, size: int, chunks: int):
        self.parts = [head] + [b"\x00" * size] * chunks
        self.taken = 0

    async def __call__(self):
        i = self.taken
        self.taken += 1
        return {"type": "http.request", "body": self.parts[i], "more_body": i + 1 < len(self.parts)}


def test_upload_stream_is_cut_at_the_limit():
    """No declared length (chunked): the body is counted as it streams and reading stops at the limit."""
    from fastapi import HTTPException
    from starlette.requests import Request

    from convlens.web.routes.lab import read_upload
    from convlens.web.security import UPLOAD_OVERHEAD
    head = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
    body = _Body(head, 64 * 1024, chunks=1000)    # 64 MB offered
    scope = {"type": "http", "method": "POST", "path": "/api/images",
             "headers": [(b"content-type", b"multipart/form-data; boundary=xyz")]}
    with pytest.raises(HTTPException) as e:
        asyncio.run(read_upload(Request(scope, body), max_bytes=1024 * 1024))
    assert e.value.status_code == 413
    limit_chunks = (1024 * 1024 + UPLOAD_OVERHEAD) // (64 * 1024) + 2
    assert body.taken <= limit_chunks, body.taken   # stopped at the limit, not after the 64 MB


def test_oversize_upload_leaves_no_file(served, tmp_path, monkeypatch):
    client, _ = served
    state = client.app.state.convlens
    spill = tmp_path / "tmp"
    spill.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spill))   # where a spooled upload would overflow to
    made = []
    real = tempfile.TemporaryFile
    monkeypatch.setattr(tempfile, "TemporaryFile", lambda *a, **k: made.append(1) or real(*a, **k))
    monkeypatch.setattr(state, "upload_limits", (200_000, 40_000_000), raising=False)
    uploads = set(state.folder("uploads").iterdir())
    # 1.5 MB as PNG: more than a spooled upload keeps in memory (1 MB), so reading it whole first would
    # have spilled it to a temporary file
    noise = np.random.default_rng(0).integers(0, 256, (700, 700, 3), dtype=np.uint8)

    def chunked():   # no Content-Length: only the count while streaming can stop it
        data = (b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="n.png"\r\n'
                b"Content-Type: image/png\r\n\r\n" + _png(noise) + b"\r\n--xyz--\r\n")
        for i in range(0, len(data), 32 * 1024):
            yield data[i:i + 32 * 1024]
    r = client.post("/api/images", content=chunked(), headers={"Content-Type": "multipart/form-data; boundary=xyz"})
    assert r.status_code == 413 and r.json()["error"] == "upload too large: at most 195 KB"
    declared = client.post("/api/images", files={"file": ("n.png", _png(noise), "image/png")})
    assert declared.status_code == 413
    small = client.post("/api/images", files={"file": ("s.png", _png(noise[:100, :100]), "image/png")})
    assert small.status_code == 200   # under the limit: accepted, and held in memory too
    assert made == [] and list(spill.iterdir()) == []
    assert set(state.folder("uploads").iterdir()) - uploads == {state.folder("uploads") / f"{small.json()['id']}.png"}


def test_requests_may_name_only_the_served_models(served, monkeypatch):
    client, _ = served
    import convlens.web.state as web_state
    from convlens.recipes.style import default_style_model
    loads = []
    real = web_state.load_model   # the name the server loads models through
    monkeypatch.setattr(web_state, "load_model", lambda name, **kw: loads.append(name) or real(name, **kw))
    assert default_style_model() != "vgg19"   # not cached here: vgg19 would be a download
    for method, url, kw in [
        ("POST", "/api/predict", {"json": {"image": "chelsea", "model": "resnet50"}}),
        ("POST", "/api/run", {"json": {"technique": "saliency", "image": "chelsea", "model": "resnet50"}}),
        ("POST", "/api/run", {"json": {"technique": "style", "image": "chelsea", "params": {"model": "vgg19",
                                                                                           "steps": 1}}}),
        ("GET", "/api/layers?model=resnet50", {}),
        ("POST", "/api/layers/features.1/patches?model=resnet50", {}),
    ]:
        r = client.request(method, url, **kw)
        assert r.status_code == 400, (url, r.text)
        assert "this server serves: mobilenet_v2, vgg16-imagenet, vgg16-hed" in r.json()["error"], r.text
    assert loads == []   # nothing was downloaded or loaded


def test_several_served_models_and_a_bounded_cache(monkeypatch):
    import convlens.web.state as web_state
    loads = []
    monkeypatch.setattr(web_state, "load_model", lambda name, **kw: loads.append(name) or object())
    app = create_app(model=["mobilenet_v2", "resnet18", "alexnet"], threads=1)
    state = app.state.convlens
    state.model_cache = 2
    assert state.models == ("mobilenet_v2", "resnet18", "alexnet")
    a, b = state.model("mobilenet_v2"), state.model("resnet18")
    assert state.model("mobilenet_v2") is a and loads == ["mobilenet_v2", "resnet18"]   # cached
    state.model("alexnet")     # evicts the least recently used: resnet18
    assert [k[0] for k in state._models] == ["mobilenet_v2", "alexnet"]
    assert state.model("resnet18") is not b and loads[-1] == "resnet18"
    assert len(state._models) == 2
    with api_client(app) as c:
        assert c.get("/api/health").json()["models"] == ["mobilenet_v2", "resnet18", "alexnet"]
        err = c.post("/api/predict", json={"image": "chelsea", "model": "vgg11"}).json()["error"]
        assert err.startswith("model 'vgg11' is not served here; this server serves: mobilenet_v2, resnet18, alexnet")
    with pytest.raises(Exception, match="unknown model 'nosuchnet'"):
        create_app(model=["nosuchnet"], threads=1)


def test_serve_takes_repeated_models(monkeypatch):
    import uvicorn

    from convlens.cli.main import run
    apps = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: apps.append((app, kw)))
    assert run(["serve", "--model", "mobilenet_v2", "--model", "resnet18", "--port", "8123"]) == 0
    st = apps[0][0].state.convlens
    assert st.models == ("mobilenet_v2", "resnet18") and st.model_name == "mobilenet_v2"
    assert run(["serve", "--port", "8124"]) == 0
    assert apps[1][0].state.convlens.models == ("mobilenet_v2",)   # the offline default
    for _, kw in apps:
        kw.clear()
    for app, _ in apps:
        app.state.convlens.close()


def test_docs_are_served_offline(served):
    client, _ = served
    html = client.get("/docs").text
    urls = re.findall(r'(?:src|href|url)\s*[=:]\s*["\']([^"\']+)["\']', html)
    assert "/docs-assets/swagger-ui-bundle.js" in urls and "/docs-assets/swagger-ui.css" in urls
    assert "/openapi.json" in urls
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url   # nothing from another host
        r = client.get(url)
        assert r.status_code == 200 and len(r.content) > 100, url
    assert "http://" not in html and "https://" not in html
    assert "SwaggerUIBundle" in client.get("/docs-assets/swagger-ui-bundle.js").text
    assert client.get("/redoc").status_code == 404   # ReDoc would load from a CDN: not offered
    schema = client.get("/openapi.json").json()   # "Authorize" takes the token for "Try it out"
    assert schema["components"]["securitySchemes"]["token"]["name"] == "X-Convlens-Token"
    assert schema["paths"]["/api/run"]["post"]["security"] == [{"token": []}]
    assert "security" not in schema["paths"]["/api/health"]["get"]


def _until(cond, timeout=20.0):
    t0 = time.time()
    while not cond():
        assert time.time() - t0 < timeout, "condition not reached"
        time.sleep(0.02)


def test_an_orphan_job_is_cancelled_and_keeps_its_partial_result():
    pool = JobPool(workers=1, threads=1, orphan_timeout=0.4)
    try:
        def work(job):   # an iterative job: stops when cancelled, returning what it finished
            steps = 0
            while not job.cancelled() and steps < 10_000:
                steps += 1
                job.progress(steps, 10_000)
                time.sleep(0.01)
            return {"steps": steps}
        orphan = pool.submit("orphan", work)
        _until(lambda: orphan.finished)
        assert orphan.status == "cancelled" and 0 < orphan.result["steps"] < 10_000
        assert orphan.as_dict()["note"] == "cancelled: no client followed it for 0.4 s"
        followed = pool.submit("followed", work)
        t0 = time.time()
        while time.time() - t0 < 1.5:   # a client polling keeps it alive well past the timeout
            followed.touch()
            time.sleep(0.05)
        assert followed.status == "running"
        pool.cancel(followed.id)
        _until(lambda: followed.finished)
        assert followed.note is None and followed.result["steps"] > 0
    finally:
        pool.shutdown()


def test_queue_positions_are_reported_and_updated():
    pool = JobPool(workers=1, threads=1, orphan_timeout=None)
    gate = threading.Event()
    try:
        first = pool.submit("a", lambda job: gate.wait(20) and {"ok": 1})
        _until(lambda: first.status == "running")
        second = pool.submit("b", lambda job: {"ok": 2})
        third = pool.submit("c", lambda job: {"ok": 3})
        assert first.as_dict()["position"] is None
        assert (second.as_dict()["position"], third.as_dict()["position"]) == (0, 1)
        v = third.version
        pool.cancel(second.id)   # a job ahead leaves the queue: the followers hear the new number
        assert third.version > v and third.as_dict()["position"] == 0
        gate.set()
        _until(lambda: third.finished)
        assert third.status == "done" and third.as_dict()["position"] is None
    finally:
        gate.set()
        pool.shutdown()


def test_an_open_event_stream_keeps_a_silent_job_alive(offline_model):
    app = create_app(threads=1, orphan_timeout=1.5)
    state = app.state.convlens

    def quiet(job):   # no progress events for 3.5 s: only the stream's own heartbeat touches it
        t0 = time.time()
        while time.time() - t0 < 3.5 and not job.cancelled():
            time.sleep(0.05)
        return {"finished": not job.cancelled()}
    with api_client(app) as c:
        job = state.jobs.submit("quiet", quiet)
        with c.stream("GET", f"/api/jobs/{job.id}/events") as ev:
            last = [line for line in ev.iter_lines() if line.startswith("data: ")][-1]
        assert '"status": "done"' in last and job.result == {"finished": True}
        left = state.jobs.submit("left", quiet)   # nobody follows this one
        _until(lambda: left.finished, timeout=10)
        assert left.status == "cancelled" and "no client followed it" in left.note


@pytest.mark.parametrize("args,words", [(["--port", "99999"], "--port must be a TCP port in 1..65535"),
                                        (["--orphan-timeout", "-1"], "--orphan-timeout must be 0"),
                                        (["--model", "nosuchnet"], "unknown model 'nosuchnet'")])
def test_serve_refuses_bad_options_in_one_line(monkeypatch, capsys, args, words):
    import uvicorn

    from convlens.cli.main import run
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: pytest.fail("the server must not start"))
    assert run(["serve", *args]) != 0
    err = capsys.readouterr().err.strip()
    assert words in err and "\n" not in err and "Traceback" not in err
