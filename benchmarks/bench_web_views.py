"""Issue 23's benchmark, one table: the first useful paint of every view, the time from Run to the result
in view against the direct library call, and the projector's frame rate at 100k points.

One live uvicorn on 127.0.0.1 (one worker, the process's torch threads, the default MobileNetV2, a
100,000-point store synthesized as ``web_projector`` does) and Debian's chromium driven by Playwright.

- First useful paint (warm server: each page opened once before timing; median of 3 / 5 navigations):
  from ``page.goto`` to what the view is for, drawn. lab: the input image drawn and its top-5 shown;
  layers: the activation grid of ``features.6`` drawn; projector: the 100k points drawn; words: the
  neighbours of the default queries shown; concepts: the controls and their sample thumbnails drawn.
- Run to result in view (1400x900): from the click on Run (``performance.now()`` in the page) to the
  three result images decoded and the overlay's top inside the viewport (``bench_web_lab.RUN_TO_VIEW``);
  each run a new target class, so no cache hit. Peer: the same technique called directly plus the same
  three PNGs written, on the server's own worker thread (same thread, OpenMP team and budget),
  alternated with the page's runs; medians. A second peer, the floor of any viewer: the library call
  and the three images rendered as arrays, nothing encoded or written (the explorer answers a short job
  with its pixels as lossless WebP and writes its PNGs after the answer, so it can beat the first peer;
  the second says what the page, the network and the browser cost on top of the computation itself).
- Projector frames per second at 100k points: ``requestAnimationFrame`` intervals in the page (median,
  and the 90th percentile as the slow frames' rate) while zooming the 2-D map (a full redraw a frame)
  and while rotating and zooming the 3-D PCA map (a full redraw a frame). Headless chromium draws WebGL
  with SwiftShader (no GPU) and caps rAF at 60 Hz.

Rows for ``scripts/bench --only web_views [--quick]``.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .bench_web import chromium, lab_server
from .bench_web_lab import RUN_TO_VIEW
from .common import Row
from .web_projector import _clustered

N_POINTS = 100_000
TECHNIQUES = ("saliency", "grad_cam", "occlusion")

# view -> (path, a JS predicate true once the view's useful content is drawn)
DRAWN = "(s) => [...document.querySelectorAll(s)].length > 0 && [...document.querySelectorAll(s)].every((i) => i.complete && i.naturalWidth > 0)"
VIEWS = {
    "lab": ("/lab?image=chelsea&technique=saliency",
            "document.querySelector('#lab-top5 table') && document.getElementById('lab-current').naturalWidth > 0"),
    "layers": ("/layers/features.6?image=chelsea", f"({DRAWN})('#layers-grid')"),
    "projector": ("/projector?store=big&colour=label", "window.CLProjector && CLProjector.firstPoints !== null"),
    "words": ("/words", "(() => { const o = document.querySelector('[data-testid=words-out]'); "
                        "return !!o && o.textContent.length > 20 && o.textContent !== '…'; })()"),
    "concepts": ("/concepts", f"document.getElementById('cc-run') && ({DRAWN})('.cc-samples img')"),
}


def _median(a) -> float:
    return float(np.median(np.asarray(a, float)))


def _fps(intervals) -> tuple[float, float]:
    """(median fps, fps of the 90th-percentile frame interval)."""
    a = np.asarray(intervals, float)
    return 1000 / float(np.median(a)), 1000 / float(np.percentile(a, 90))


def run(quick: bool) -> list[Row]:
    from convlens.embed import EmbeddingStore

    exe, args = chromium()
    if exe is None:
        return [Row("web views: skipped (no chromium)", 0, None, "")]
    from playwright.sync_api import sync_playwright

    data = Path(tempfile.mkdtemp(prefix="bench-web-views-data-"))
    EmbeddingStore.from_vectors(data / "stores" / "big", _clustered(N_POINTS, 32, seed=1),
                                labels=[f"c{i % 7}" for i in range(N_POINTS)])
    n_paint, n_runs = (3, 3) if quick else (5, 7)
    targets = iter(range(100, 1000, 7))
    try:
        with lab_server("bench-web-views-", data_dir=data) as srv:
            return _measure(srv, exe, args, sync_playwright, n_paint, n_runs, targets, quick)
    finally:
        shutil.rmtree(data, ignore_errors=True)


def _measure(srv, exe, args, sync_playwright, n_paint, n_runs, targets, quick) -> list[Row]:
    url = srv.url
    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=args, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            for view, (path, ready) in VIEWS.items():
                page.goto(url + path)                      # warm: the server's caches, the model, the map
                page.wait_for_function(ready, timeout=600_000)
                paints = []
                for _ in range(n_paint):
                    t = time.perf_counter()
                    page.goto(url + path)
                    page.wait_for_function(ready, timeout=120_000, polling=10)
                    paints.append(time.perf_counter() - t)
                rows.append(Row(f"web views: first useful paint, {view} (1400x900)", 1e3 * _median(paints), None,
                                "ms", "", "", higher_is_better=False, note=f"warm server; median of {n_paint}"))
            for technique in TECHNIQUES:
                page.goto(url + f"/lab?image=chelsea&technique={technique}")
                page.wait_for_selector("#lab-top5 table", timeout=120_000)
                page.evaluate(RUN_TO_VIEW, str(next(targets)))    # warm-up run
                srv.pngs(technique, 99)
                runs, peer, floor = [], [], []
                for _ in range(n_runs):        # the page's runs alternate with the two peers
                    runs.append(page.evaluate(RUN_TO_VIEW, str(next(targets))))
                    peer.append(srv.pngs(technique, next(targets)))
                    floor.append(srv.arrays(technique, next(targets)))
                med, pm, fm = _median(runs), _median(peer), _median(floor)
                rows.append(Row(f"web views: Run to result in view, {technique} (1400x900)", med, pm, "ms",
                                "library call + same PNGs", "overhead < 15%", higher_is_better=False,
                                note=f"overhead {100 * (med / pm - 1):+.0f}%; median of {n_runs}, alternated"))
                rows.append(Row(f"web views: the same against the floor, {technique}", med, fm, "ms",
                                "library call + images as arrays", "report", higher_is_better=False,
                                note=f"page, network and browser add {med - fm:+.0f} ms ({100 * (med / fm - 1):+.0f}%)"))
            frames = 120 if quick else 240
            for what, path, bench in (
                    ("2-D map, zooming", "/projector?store=big&colour=label", "CLProjector.benchZoom"),
                    ("3-D PCA map, rotating", "/projector?store=big&colour=label&dims=3", "CLProjector.benchRotate"),
                    ("3-D PCA map, zooming", "/projector?store=big&colour=label&dims=3", "CLProjector.benchZoom3d")):
                page.goto(url + path)
                page.wait_for_function("window.CLProjector && CLProjector.firstPoints !== null", timeout=600_000)
                page.wait_for_timeout(300)
                r = page.evaluate(f"{bench}({frames})")
                med, slow = _fps(r["intervals"])
                rows.append(Row(f"web views: projector {N_POINTS // 1000}k points, {what}", med, 60.0, "fps",
                                "60 fps", "60 fps", note=f"90th-percentile frame {slow:.0f} fps; draw call "
                                f"{_median(r['draws']):.1f} ms median; {frames} frames, SwiftShader"))
            page.close()
        finally:
            browser.close()
    return rows


if __name__ == "__main__":
    for r in run("--quick" in sys.argv):
        print(r)
