"""The image lab in headless chromium: first useful paint, and the time from pressing Run to the result
drawn and in view, against the direct library call producing the same outputs.

A live uvicorn on 127.0.0.1 (one worker, the process's torch threads) and Debian's chromium driven by
Playwright. "First useful paint": from navigation to the input image drawn and its top-5 shown (a warm
server). "Run to result in view": from the click on Run (measured inside the page with
``performance.now()``) to every result image decoded and the overlay's top inside the viewport, at
1400x900 (the result column beside the input) and 800x900 (scrolled to); each run asks saliency for a
new target class, so the cache is never hit. The peer is ``convlens.saliency`` plus the same three
PNGs written, on the server's own worker thread (as ``bench_web``). Rows for ``scripts/bench --only web_lab``.
"""
from __future__ import annotations

import time

from .bench_web import chromium, lab_server
from .common import Row

RUN_TO_VIEW = """async (target) => {
  const input = document.getElementById('lab-f-target');
  input.value = target;
  const t0 = performance.now();
  document.getElementById('lab-run').click();
  await new Promise((resolve) => {
    const tick = () => {
      const imgs = [...document.querySelectorAll('#lab-results img.result')];
      if (document.getElementById('lab-status').textContent.startsWith('done') && imgs.length >= 3
          && imgs.every((i) => i.complete && i.naturalWidth > 0)) {
        const r = imgs[1].getBoundingClientRect();
        if (r.top >= 0 && r.top < innerHeight) return resolve();
      }
      requestAnimationFrame(tick);
    };
    tick();
  });
  return performance.now() - t0;
}"""


def run(quick: bool) -> list[Row]:
    exe, args = chromium()
    if exe is None:
        return [Row("web lab: skipped (no chromium)", 0, None, "")]
    from playwright.sync_api import sync_playwright

    n = 4 if quick else 10
    targets = iter(range(100, 1000, 7))
    rows = []
    with lab_server("bench-web-lab-") as srv, sync_playwright() as p:
        srv.pngs("saliency", 99)   # warm-up
        browser = p.chromium.launch(executable_path=exe, args=args, headless=True)
        try:
            for width in (1400, 800):
                page = browser.new_page(viewport={"width": width, "height": 900})
                page.goto(srv.url + "/lab?image=chelsea&technique=saliency")   # warm: samples, model, routes
                page.wait_for_selector("#lab-top5 table", timeout=120000)
                paints = []
                for _ in range(3 if quick else 5):
                    t = time.perf_counter()
                    page.goto(srv.url + "/lab?image=chelsea&technique=saliency")
                    page.wait_for_function("document.querySelector('#lab-top5 table') && "
                                           "document.getElementById('lab-current').naturalWidth > 0", timeout=60000)
                    paints.append(time.perf_counter() - t)
                page.evaluate(RUN_TO_VIEW, str(next(targets)))   # warm-up run
                runs, direct_ms = [], []    # the peer measured alternately with this width's runs
                for _ in range(n):
                    runs.append(page.evaluate(RUN_TO_VIEW, str(next(targets))))
                    direct_ms.append(srv.pngs("saliency", next(targets)))
                page.close()
                med = sorted(runs)[len(runs) // 2]
                peer = sorted(direct_ms)[len(direct_ms) // 2]
                rows.append(Row(f"web lab: Run to result in view, saliency ({width}x900)", med, peer, "ms",
                                "library call + same PNGs", "overhead < 15%", higher_is_better=False,
                                note=f"overhead {100 * (med / peer - 1):+.0f}%; click to overlay drawn in the viewport"))
                rows.append(Row(f"web lab: first useful paint ({width}x900)", 1e3 * sorted(paints)[len(paints) // 2],
                                None, "ms", "", "", higher_is_better=False,
                                note="navigation to input image drawn and top-5 shown (warm server)"))
        finally:
            browser.close()
    return rows
