"""The explorer's overhead: a saliency request through a live server against the library call.

A real uvicorn on 127.0.0.1 (one worker with the process's 2 torch threads), driven over HTTP with
httpx: POST /api/run, follow the job's server-sent events to "done", GET the overlay PNG. The peer
is the direct library call in the same process and run, producing the same outputs (the saliency
map, its overlay and heat map written as PNGs, as the server does); a second row compares with the
bare ``convlens.saliency`` call. The direct calls run on the server's own worker thread (``run_sync``:
the same thread, OpenMP team and budget; alternating torch work between the main thread and a worker
would leave two OpenMP teams competing for the 2 cores). Requests and direct calls alternate
(medians), each request with a new target class so the cache is not hit. The last row is a repeated request (served from the cache)
against a fresh one. The projector's rows (first render and frame times in headless chromium) come
from ``benchmarks/web_projector.py``.
"""
from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

from .common import Row


@contextlib.contextmanager
def lab_server(prefix: str = "bench-web-", **app_kw):
    """A live uvicorn serving the offline MobileNetV2 (one worker with the process's torch threads), and the
    peers the explorer's rows compare with, run on the server's own worker thread (``run_sync``: the same
    thread, OpenMP team and budget). Yields a namespace: ``app``, ``url``, ``model``, ``img`` (chelsea
    fitted), ``pool``, ``tmp`` (a scratch folder), ``pngs(technique, target)`` (the library call and the
    same three PNGs the server writes), ``arrays(technique, target)`` (the call and its three images as
    arrays: nothing encoded), each returning its wall time in ms."""
    import numpy as np
    import torch

    import convlens
    from convlens.images import fit, save_png
    from convlens.images.io import to_uint8
    from convlens.web import create_app

    model = convlens.load_model("mobilenet_v2")
    img = fit(convlens.sample_image("chelsea"), model.input_size)
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    out = tmp / "direct"
    out.mkdir()
    app = create_app(workers=1, threads=torch.get_num_threads(), **app_kw)
    app.state.convlens._models[("mobilenet_v2", "default")] = model
    pool = app.state.convlens.jobs

    def on_worker(fn):
        t = time.perf_counter()
        pool.run_sync(fn)
        return 1e3 * (time.perf_counter() - t)

    def pngs(technique: str, target) -> float:
        def work():
            r = getattr(convlens, technique)(model, img, target)
            save_png(img, out / "in.png")
            save_png(r.overlay(0), out / "overlay.png")
            save_png(r.heatmap(0), out / "map.png")
        return on_worker(work)

    def arrays(technique: str, target) -> float:
        def work():
            r = getattr(convlens, technique)(model, img, target)
            return [to_uint8(img), np.asarray(r.overlay(0)), np.asarray(r.heatmap(0))]
        return on_worker(work)

    server, thread, url = _live(app)
    try:
        yield SimpleNamespace(app=app, url=url, model=model, img=img, pool=pool, tmp=tmp, pngs=pngs, arrays=arrays)
    finally:
        server.should_exit = True
        thread.join(30)
        shutil.rmtree(tmp, ignore_errors=True)


def chromium():
    """Debian's chromium and its launch flags, as the browser tests use them: (path or None, args)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from web_helpers import CHROMIUM_ARGS, chromium_path
    return chromium_path(), CHROMIUM_ARGS


def _live(app):
    import socket

    import uvicorn
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}"


def run(quick: bool) -> list[Row]:
    import httpx
    import torch

    import convlens

    threads = torch.get_num_threads()
    n = 5 if quick else 15
    targets = iter(range(100, 1000, 7))
    with lab_server() as srv:
        model, img = srv.model, srv.img

        def request(target):
            with http.stream("POST", "/api/run", json={"technique": "saliency", "image": "chelsea",
                                                       "params": {"target": target}}) as r:
                job = json.loads(r.read())["job"]
            last = None
            with http.stream("GET", f"/api/jobs/{job}/events") as ev:
                for line in ev.iter_lines():
                    if line.startswith("data: "):
                        last = json.loads(line[6:])
            assert last["status"] == "done", last
            png = http.get(last["result"]["images"][1]["url"]).content
            assert png[:4] == b"\x89PNG"

        def timed(fn, *a):
            t = time.perf_counter()
            fn(*a)
            return time.perf_counter() - t

        with httpx.Client(base_url=srv.url, timeout=120, headers={"X-Convlens-Token": srv.app.state.convlens.token}) as http:
            request(next(targets)), srv.pngs("saliency", 99)  # warm-up: model, routes, matplotlib
            ts = {"server": [], "direct": [], "bare": []}
            for _ in range(n):              # requests alternate with the peers (on the server's worker)
                ts["server"].append(timed(request, next(targets)))
                ts["direct"].append(srv.pngs("saliency", next(targets)) / 1e3)
                tg = next(targets)
                ts["bare"].append(timed(srv.pool.run_sync, lambda: convlens.saliency(model, img, tg)))
            fresh_target = next(targets)
            fresh = timed(request, fresh_target)
            cached = sorted(timed(request, fresh_target) for _ in range(n))[n // 2]
    med = {k: sorted(v)[len(v) // 2] * 1e3 for k, v in ts.items()}
    budget = _thread_budget(model, img, 4 if quick else 8)
    overhead = med["server"] / med["direct"] - 1
    from . import web_projector  # the projector page in headless chromium (its own module)
    return [
        Row("web: saliency request, end to end (mobilenet_v2 224px)", med["server"], med["direct"], "ms",
            "library call + same PNGs", "overhead < 15%", higher_is_better=False,
            note=f"overhead {100 * overhead:+.0f}%; live uvicorn on loopback, SSE, {threads} threads"),
        Row("web: saliency request vs the bare library call", med["server"], med["bare"], "ms",
            "convlens.saliency only", "", higher_is_better=False,
            note="includes rendering the overlay and heat map PNGs"),
        Row("web: repeated request (cache hit)", cached * 1e3, fresh * 1e3, "ms", "fresh request", "instant",
            higher_is_better=False, note="same model, technique, parameters and input"),
        Row(f"web: {budget['jobs']} saliency jobs, 2 workers x 1 thread (budgeted) vs 2 workers x 2 threads",
            budget["budgeted"], budget["oversubscribed"], "s", "oversubscribed", "budgeted not slower",
            higher_is_better=False, note="JobPool directly, batch 8 per job, best of 2 alternated runs each"),
        *web_projector.run(quick),
    ]


def _thread_budget(model, img, jobs: int) -> dict:
    """Wall time of ``jobs`` saliency jobs on a 2-worker pool with 1 vs 2 torch threads per worker."""
    import convlens
    from convlens.web.jobs import JobPool, job_key
    x = img.expand(8, -1, -1, -1).contiguous()
    out = {"jobs": jobs}
    for name, threads in (("budgeted", 1), ("oversubscribed", 2), ("budgeted", 1), ("oversubscribed", 2)):
        pool = JobPool(workers=2, threads=threads)
        try:
            pool.run_sync(lambda: convlens.saliency(model, x[:1]))  # warm the workers
            t = time.perf_counter()
            js = [pool.submit(job_key(name, threads, i, time.time()), lambda job: convlens.saliency(model, x) and {})
                  for i in range(jobs)]
            while not all(j.finished for j in js):
                time.sleep(0.005)
            took = time.perf_counter() - t
        finally:
            pool.shutdown()
        out[name] = min(out.get(name, float("inf")), took)
    return out
