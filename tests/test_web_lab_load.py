"""The explorer on a live uvicorn (loopback only): 20 concurrent saliency requests, results equal to the
library, nothing left over afterwards; the docs' "drive it from Python / curl" examples, run as written;
`convlens serve` warns when it listens beyond localhost."""
from __future__ import annotations

import io
import json
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
from PIL import Image  # noqa: E402

import convlens  # noqa: E402
from convlens.images import fit  # noqa: E402
from convlens.web import create_app  # noqa: E402

from convlens.drivers.forward import thread_budget  # noqa: E402
from web_helpers import live_server, token_headers  # noqa: E402

SAMPLES = ["chelsea", "coffee", "astronaut", "rocket", "china", "flower", "grace_hopper"]


def _app(model, **kw):
    app = create_app(**kw)
    app.state.convlens._models[("mobilenet_v2", "default")] = model
    return app


def _leftovers(before: set) -> list:
    return [t for t in threading.enumerate() if t not in before and t.is_alive()]


def test_20_concurrent_saliency_requests_on_loopback(offline_model):
    before = set(threading.enumerate())
    tmp_before = set(Path(tempfile.gettempdir()).glob("convlens-web-*"))
    app = _app(offline_model, workers=2, threads=1)
    data_dir = app.state.convlens.data_dir
    targets = [(SAMPLES[i % len(SAMPLES)], 100 + 37 * i) for i in range(20)]  # 20 distinct jobs (no cache hits)

    with live_server(app) as url:
        assert url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=url, timeout=120, headers=token_headers(url)) as http:
            def one(i):
                image, target = targets[i]
                r = http.post("/api/run", json={"technique": "saliency", "image": image, "params": {"target": target}})
                r.raise_for_status()
                job_id = r.json()["job"]
                last = None
                with http.stream("GET", f"/api/jobs/{job_id}/events") as ev:  # server-sent events to the end
                    for line in ev.iter_lines():
                        if line.startswith("data: "):
                            last = json.loads(line[6:])
                assert last and last.get("result"), last  # the final event carries the result
                png = http.get(last["result"]["images"][2]["url"])
                return last, png.content
            t0 = time.time()
            with ThreadPoolExecutor(20) as ex:
                results = list(ex.map(one, range(20)))
            assert time.time() - t0 < 300
            assert http.get("/api/health").json()["ok"]

    for (image, target), (job, png) in zip(targets, results):
        assert job["status"] == "done", job
        with thread_budget(1):  # the workers' budget: float sums depend on the thread count
            want = convlens.saliency(offline_model, fit(convlens.sample_image(image), offline_model.input_size), target)
        assert job["result"]["figures"]["target_index"] == target
        assert job["result"]["figures"]["raw_max"] == pytest.approx(float(want.map.max()), rel=1e-4)
        got = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
        diff = np.abs(got - np.asarray(want.heatmap(0).convert("RGB")).astype(int))
        assert diff.max() <= 2 and diff.mean() < 0.05, (image, target, diff.max())

    # afterwards: no worker or server thread, no temporary folder left over (bounded wait)
    t0 = time.time()
    while _leftovers(before) and time.time() - t0 < 15:
        time.sleep(0.1)
    assert _leftovers(before) == [], [t.name for t in _leftovers(before)]
    assert not data_dir.exists()
    assert set(Path(tempfile.gettempdir()).glob("convlens-web-*")) <= tmp_before


def test_drive_it_from_python_and_curl(offline_model, tmp_path):
    """The examples of docs/web.md ("Drive it from Python / curl"), run against a live server."""
    arr = np.random.default_rng(3).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "photo.png")
    with live_server(_app(offline_model, threads=1)) as url:
        # --- Python (httpx), as in the docs ---
        import httpx as client_lib
        base = url
        token = {"X-Convlens-Token": client_lib.get(f"{base}/api/token").json()["token"]}  # POSTs carry it
        with open(tmp_path / "photo.png", "rb") as f:
            image_id = client_lib.post(f"{base}/api/images", files={"file": f}, headers=token).json()["id"]
        top5 = client_lib.post(f"{base}/api/predict", json={"image": image_id}, headers=token).json()["top"]
        job = client_lib.post(f"{base}/api/run", json={"technique": "saliency", "image": image_id,
                                                       "params": {"target": top5[0]["label"]}}, headers=token).json()["job"]
        while (j := client_lib.get(f"{base}/api/jobs/{job}").json())["status"] not in ("done", "error", "cancelled"):
            time.sleep(0.2)
        overlay = client_lib.get(base + j["result"]["images"][1]["url"]).content
        assert j["status"] == "done" and overlay[:8] == b"\x89PNG\r\n\x1a\n"
        want = convlens.saliency(offline_model, fit(convlens.images.load_image(arr), offline_model.input_size),
                                 top5[0]["index"])
        assert j["result"]["figures"]["raw_max"] == pytest.approx(float(want.map.max()), rel=1e-4)

        # --- curl, as in the docs ---
        if shutil.which("curl") is None:
            pytest.skip("curl is not installed")

        def curl(*args):
            return subprocess.run(["curl", "-sf", *args], check=True, capture_output=True, timeout=60).stdout
        tok = json.loads(curl(f"{url}/api/token"))["token"]
        up = json.loads(curl("-H", f"X-Convlens-Token: {tok}", "-F", f"file=@{tmp_path / 'photo.png'}", f"{url}/api/images"))
        assert up["id"] == image_id
        started = json.loads(curl("-H", f"X-Convlens-Token: {tok}", "-H", "Content-Type: application/json", "-d",
                                  json.dumps({"technique": "saliency", "image": up["id"],
                                              "params": {"target": top5[0]["label"]}}), f"{url}/api/run"))
        assert started["cached"] and started["job"] == job   # the same request: served from the cache
        events = curl("-N", f"{url}/api/jobs/{started['job']}/events").decode()
        assert '"status": "done"' in events
        curl("-o", str(tmp_path / "overlay.png"), f"{url}{j['result']['images'][1]['url']}")
        assert (tmp_path / "overlay.png").read_bytes() == overlay


@pytest.mark.parametrize("host,warned", [("0.0.0.0", True), ("192.168.1.5", True), ("127.0.0.1", False),
                                         ("localhost", False)])
def test_serve_warns_beyond_localhost(monkeypatch, capsys, host, warned):
    import uvicorn

    from convlens.cli.main import run
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    assert run(["serve", "--host", host, "--port", "8123", "--workers", "2", "--worker-threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "2 worker(s) x 1 torch thread(s)" in out
    assert calls and calls[0]["host"] == host and calls[0]["port"] == 8123
    assert ("warning" in out) == warned, out
    assert "http://" in out and ":8123/" in out
    calls[0].clear()
