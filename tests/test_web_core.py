"""The explorer's shared endpoints: health, model, samples, jobs (cache, cancel, events), JSON errors, safe paths."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
from web_helpers import api_client  # noqa: E402

from convlens.errors import ConvlensError  # noqa: E402
from convlens.web import create_app  # noqa: E402
from convlens.web.jobs import JobPool, job_key  # noqa: E402
from convlens.web.state import safe_child  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with api_client(create_app(threads=1)) as c:
        yield c


def test_health_and_openapi(client):
    h = client.get("/api/health").json()
    assert h["ok"] and h["model"] == "mobilenet_v2"
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/jobs/{job_id}/events" in paths and "/api/samples" in paths


def test_model_lists_layers_and_classes(client, offline_model):
    info = client.get("/api/model").json()
    assert [li["name"] for li in info["layers"]] == [li.name for li in offline_model.layers()]
    assert info["classes"][285] == offline_model.classes[285]


def test_sample_png_roundtrip(client):
    import io

    from PIL import Image

    import convlens
    r = client.get("/api/samples/chelsea.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    got = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))
    want = convlens.images.io.to_uint8(convlens.sample_image("chelsea"))
    assert np.array_equal(got, want)


@pytest.mark.parametrize("path", ["/api/samples/nosuch.png", "/api/jobs/nope", "/nosuchpage",
                                  "/api/samples/..%2F..%2Fetc%2Fpasswd.png", "/static/../../etc/passwd"])
def test_errors_are_json_with_a_message(client, path):
    r = client.get(path)
    assert r.status_code in (400, 404)
    assert "root:" not in r.text
    if not path.startswith("/static"):
        assert r.json()["error"]


def test_unknown_api_paths_name_the_schema(client):
    r = client.get("/api/samples/..%2F..%2Fetc%2Fpasswd.png")
    assert r.status_code == 404 and "/openapi.json" in r.json()["error"]
    assert client.get("/api/nosuch").json()["error"].startswith("no API endpoint '/api/nosuch'")


def test_safe_child_refuses_escapes(tmp_path):
    (tmp_path / "ok").mkdir()
    assert safe_child(tmp_path, "ok") == (tmp_path / "ok").resolve()
    outside = tmp_path.parent / "outside-target"
    outside.mkdir(exist_ok=True)
    (tmp_path / "link").symlink_to(outside)
    for bad in ["..", "../etc", "/etc/passwd", "a/b", "%2e%2e", "", "link"]:
        with pytest.raises(ConvlensError):
            safe_child(tmp_path, bad)


def test_job_pool_caches_by_key_and_cancels():
    pool = JobPool(workers=1, threads=1)
    calls = []
    try:
        key = job_key("model", {"a": 1})
        j1 = pool.submit(key, lambda job: calls.append(1) or {"v": 42})
        while not j1.finished:
            time.sleep(0.01)
        j2 = pool.submit(key, lambda job: calls.append(2) or {"v": 0})
        assert j2 is j1 and j1.result == {"v": 42} and calls == [1]

        started = threading.Event()

        def slow(job):
            started.set()
            steps = 0
            while not job.cancelled() and steps < 1000:
                steps += 1
                job.progress(steps, 1000)
                time.sleep(0.005)
            return {"steps": steps}
        j3 = pool.submit(job_key("slow"), slow)
        started.wait(5)
        j3.cancel()
        while not j3.finished:
            time.sleep(0.01)
        assert j3.status == "cancelled" and 0 < j3.result["steps"] < 1000  # kept what it had
        j4 = pool.submit(job_key("slow"), slow)  # a cancelled job is not served from the cache
        assert j4 is not j3
        j4.cancel()
    finally:
        pool.shutdown()


def test_result_files_are_written_after_waiters_are_answered(tmp_path):
    """A job's deferred file writes run after it is done (a waiting client is answered first);
    ``wait_files`` blocks until they are written; a failed job writes none of its files."""
    pool = JobPool(workers=1, threads=1)
    gate = threading.Event()
    try:
        def work(job):
            job.defer(lambda: (gate.wait(10), (tmp_path / "r.png").write_bytes(b"x")))
            return {"v": 1}
        key = job_key("files")
        job = pool.submit(key, work)
        assert job.wait_finished(10) and job.status == "done"
        assert not (tmp_path / "r.png").exists() and not job.files_ready.is_set()   # answered before the file
        waiter = threading.Thread(target=pool.wait_files, args=(key, 10))
        waiter.start()
        time.sleep(0.05)
        assert waiter.is_alive()            # blocked on the pending write
        gate.set()
        waiter.join(10)
        assert not waiter.is_alive() and (tmp_path / "r.png").read_bytes() == b"x"

        def fails(job):
            job.defer(lambda: (tmp_path / "never.png").write_bytes(b"x"))
            raise RuntimeError("boom")
        bad = pool.submit(job_key("fails"), fails)
        assert bad.wait_finished(10) and bad.status == "error"
        assert bad.files_ready.wait(10) and not (tmp_path / "never.png").exists()
    finally:
        gate.set()
        pool.shutdown()


def test_job_events_stream_until_done(client):
    state = client.app.state.convlens

    def work(job):
        for i in range(3):
            job.progress(i + 1, 3)
        return {"answer": 7}
    job = state.jobs.submit(job_key("events-test"), work)
    with client.stream("GET", f"/api/jobs/{job.id}/events") as r:
        lines = [ln for ln in r.iter_lines() if ln.startswith("data: ")]
    import json
    last = json.loads(lines[-1][6:])
    assert last["status"] == "done" and last["result"] == {"answer": 7} and last["done"] == 3


def test_sample_thumbnails_are_shrunk_versions(client):
    import io

    import torch.nn.functional as F
    from PIL import Image

    import convlens
    r = client.get("/api/samples/chelsea.png?max_side=128")
    got = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB")).astype(int)
    img = convlens.sample_image("chelsea")  # 300 x 451 -> 85 x 128
    want = convlens.images.io.to_uint8(F.interpolate(img, size=(85, 128), mode="bilinear", antialias=True)).astype(int)
    assert got.shape == (85, 128, 3) and np.abs(got - want).max() <= 1
    assert client.get("/api/samples/chelsea.png?max_side=5").status_code == 422
    assert client.get("/api/samples").json()[0]["thumb"].endswith("?max_side=128")


def test_image_folders_from_serve_are_patch_sources(tmp_path):
    from PIL import Image
    folder = tmp_path / "myphotos"
    folder.mkdir()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(folder / "red.png")
    with api_client(create_app(threads=1, images=[folder])) as c:
        names = [s["name"] for s in c.get("/api/layers/sources").json()]
        assert "myphotos" in names
    with pytest.raises(ConvlensError, match="image folder not found"):
        create_app(threads=1, images=[tmp_path / "missing"])
