"""The explorer's embedding projector in headless chromium (Debian's, no GPU: WebGL runs on SwiftShader).

Rows (each against a baseline measured in the same run, on the same server and store):
* 5,000 points with thumbnails: time to first render (navigation start -> every visible thumbnail
  drawn), ours (float32 coordinates + 20 atlas PNGs of 256 thumbnails, WebGL) vs a naive page
  (JSON coordinates + one ``<img>`` per point, each fetched from ``/api/projector/thumb.png``);
* the same, frame time while panning (median interval between ``requestAnimationFrame`` callbacks
  over 120 frames, measured in the page with ``performance.now``); the naive page moves every
  ``<img>`` each frame (what a zoomable DOM scatter does); and while zooming (every frame redrawn);
* 100,000 points: frame time while panning, ours (on a software WebGL: points on a 2D canvas under
  the WebGL thumbnails) vs every point drawn by WebGL (and the Canvas2D-only fallback in the note);
* 100,000 points: coordinates fetch + decode in the page, ``coords.bin`` (float32) vs the same
  coordinates as JSON.
The map is computed (PCA) before the timings: the page's first render includes no projection.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from .common import Row

ROOT = Path(__file__).resolve().parents[1]

NAIVE_PAGE = """<!doctype html><html><body style="margin:0">
<div id="stage" style="position:relative;width:900px;height:660px;overflow:hidden;background:#fff"></div>
<script>
window.naive = { ready: false };
(async () => {
  const xy = await (await fetch("/naive/coords.json")).json();
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const [x, y] of xy) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
  const s = 600 / Math.max(x1 - x0, y1 - y0), stage = document.getElementById("stage");
  const imgs = [];
  let loaded = 0;
  xy.forEach(([x, y], i) => {
    const im = new Image(); im.width = 14; im.height = 14; im.style.position = "absolute";
    im.onload = im.onerror = () => { if (++loaded === xy.length) { naive.firstThumbs = performance.now(); } };
    im.src = "/api/projector/thumb.png?store=STORE&i=" + i;
    imgs.push(im); stage.append(im);
  });
  let tx = 150, ty = 30;
  const place = () => { xy.forEach(([x, y], i) => { imgs[i].style.left = ((x - x0) * s + tx) + "px"; imgs[i].style.top = ((y1 - y) * s + ty) + "px"; }); };
  place();
  naive.benchPan = (frames, dx = 3) => new Promise((resolve) => {
    const intervals = []; let last = null, k = 0;
    const step = (t) => { if (last !== null) intervals.push(t - last); last = t;
      if (k++ >= frames) { resolve({ intervals }); return; }
      tx += dx * (k % 120 < 60 ? 1 : -1); place(); requestAnimationFrame(step); };
    requestAnimationFrame(step);
  });
  naive.ready = true;
})();
</script></body></html>"""


def _median(a) -> float:
    return float(np.median(np.asarray(a, float))) if len(a) else float("nan")


def _thumbs(n: int):
    """n small photos (crops of the bundled samples), as 48 px PIL thumbnails."""
    from PIL import Image

    import convlens
    ds = convlens.sample_dataset(min(n, 600), size=48, seed=2)
    base = [Image.fromarray((ds[i][0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)) for i in range(len(ds))]
    return [base[i % len(base)] for i in range(n)]


def _clustered(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(50, d))
    return (c[rng.integers(0, 50, n)] + 0.6 * rng.normal(size=(n, d))).astype(np.float32)


def _open(ctx, url: str, query: str, wait_thumbs: bool) -> dict:
    page = ctx.new_page()
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{url}/projector?{query}")
    page.wait_for_function("window.CLProjector && CLProjector.ready", timeout=300000)
    if wait_thumbs:
        page.wait_for_function("CLProjector.firstThumbs !== null", timeout=300000)
    else:
        page.wait_for_function("CLProjector.firstPoints !== null", timeout=300000)
    page.wait_for_timeout(300)
    info = page.evaluate("({kind: CLProjector.renderer.kind, points: CLProjector.firstPoints, thumbs: CLProjector.firstThumbs,"
                         " drawn: CLProjector.thumbsDrawn, pixels: CLProjector.drawnPixels()})")
    pan = page.evaluate("CLProjector.benchPan(120)")
    info["frame"] = _median(pan["intervals"])
    info["draw"] = _median(pan["draws"])
    zoom = page.evaluate("CLProjector.benchZoom(120)")
    info["zoom"] = _median(zoom["intervals"])
    info["zoom_draw"] = _median(zoom["draws"])
    info["page"] = page
    return info


def run(quick: bool = False) -> list[Row]:
    sys.path.insert(0, str(ROOT / "tests"))
    from playwright.sync_api import sync_playwright
    from web_helpers import CHROMIUM_ARGS, chromium_path, live_server

    import convlens
    from convlens.embed import EmbeddingStore
    from convlens.web import create_app
    exe = chromium_path()
    if exe is None:
        print("web_projector: Debian's chromium is not installed; skipped", file=sys.stderr)
        return []
    n_small, n_big = (2000, 100_000) if quick else (5000, 100_000)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-projector-") as tmp:
        data = Path(tmp) / "data"
        small = EmbeddingStore.from_vectors(data / "stores" / "small", _clustered(n_small, 64),
                                            labels=[f"c{i % 7}" for i in range(n_small)], thumbnails=_thumbs(n_small))
        big = EmbeddingStore.from_vectors(data / "stores" / "big", _clustered(n_big, 32, seed=1),
                                          labels=[f"c{i % 7}" for i in range(n_big)])
        xy_small = convlens.project(small, "pca").coords
        xy_big = convlens.project(big, "pca").coords
        app = create_app(data_dir=data, threads=1)
        with live_server(app) as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True)
            try:
                # warm-up: the server makes and caches the atlases once (as after a first visit)
                ctx = browser.new_context()
                _open(ctx, url, "store=small", True)["page"].close()
                ctx.close()
                ctx = browser.new_context()  # a fresh browser cache for the timing
                ours = _open(ctx, url, "store=small", True)
                ctx.close()
                # naive: JSON coordinates + one <img> per point
                ctx = browser.new_context()
                page = ctx.new_page()
                page.set_viewport_size({"width": 1280, "height": 900})
                page.route(f"{url}/naive", lambda r: r.fulfill(body=NAIVE_PAGE.replace("STORE", "small"), content_type="text/html"))
                small_json = json.dumps(xy_small.tolist())
                page.route(f"{url}/naive/coords.json", lambda r: r.fulfill(body=small_json, content_type="application/json"))
                page.goto(f"{url}/naive")
                page.wait_for_function("window.naive && naive.firstThumbs", timeout=600000)
                naive_first = page.evaluate("naive.firstThumbs")
                naive_frame = _median(page.evaluate("naive.benchPan(120)")["intervals"])
                ctx.close()
                rows.append(Row(f"projector, {n_small:,} thumbnails: time to first render (all drawn)", ours["thumbs"] / 1000,
                                naive_first / 1000, "s", "JSON + one <img> a point", higher_is_better=False,
                                note=f"{ours['kind']}, {-(-n_small // 256)} atlases of 256"))
                rows.append(Row(f"projector, {n_small:,} thumbnails: frame time while panning", ours["frame"], naive_frame,
                                "ms", "JSON + one <img> a point", higher_is_better=False,
                                note="median rAF interval; the drawing moves by a CSS shift, redrawn past the margin"))
                rows.append(Row(f"projector, {n_small:,} thumbnails: frame time while zooming (a full redraw a frame)",
                                ours["zoom"], naive_frame, "ms", "naive pan frame", higher_is_better=False,
                                note=f"our draw call {ours['zoom_draw']:.1f} ms (WebGL on SwiftShader, no GPU)"))
                # 100k points: WebGL vs the Canvas2D fallback
                ctx = browser.new_context()
                gl = _open(ctx, url, "store=big&colour=label", False)
                t_bin = gl["page"].evaluate("""(async () => { const t = performance.now();
                    const a = new Float32Array(await (await fetch('/api/projector/coords.bin?store=big&method=pca')).arrayBuffer());
                    return [performance.now() - t, a.length]; })()""")
                big_json = json.dumps(xy_big.tolist())
                gl["page"].route(f"{url}/naive/big.json", lambda r: r.fulfill(body=big_json, content_type="application/json"))
                t_json = gl["page"].evaluate("""(async () => { const t = performance.now();
                    const a = await (await fetch('/naive/big.json')).json(); return [performance.now() - t, a.length]; })()""")
                pure = _open(ctx, url, "store=big&colour=label&renderer=webgl", False)
                c2d = _open(ctx, url, "store=big&colour=label&renderer=canvas2d", False)
                ctx.close()
                rows.append(Row(f"projector, {n_big:,} points: frame time while panning", gl["frame"], pure["frame"], "ms",
                                "all-WebGL points (SwiftShader)", higher_is_better=False,
                                note=f"ours: {gl['kind']}; Canvas2D-only fallback {c2d['frame']:.1f} ms; first points "
                                     f"drawn at {gl['points'] / 1000:.2f} s"))
                rows.append(Row(f"projector, {n_big:,} points: frame time while zooming (a full redraw a frame)", gl["zoom"],
                                pure["zoom"], "ms", "all-WebGL points (SwiftShader)", higher_is_better=False,
                                note=f"draw call {gl['zoom_draw']:.1f} vs {pure['zoom_draw']:.1f} ms; Canvas2D-only "
                                     f"{c2d['zoom']:.1f} ms"))
                rows.append(Row(f"projector, {n_big:,} coordinates: fetch + decode in the page", t_bin[0], t_json[0], "ms",
                                "the same as JSON", higher_is_better=False,
                                note=f"{t_bin[1] // 2:,} float32 pairs, {8 * n_big / 1e6:.1f} MB"))
            finally:
                browser.close()
    return rows


if __name__ == "__main__":
    for r in run("--quick" in sys.argv):
        print(r)
