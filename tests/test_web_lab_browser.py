"""The image lab in headless Debian chromium: pick a sample, see the top-5, run saliency and see the
overlay drawn, run a class visualization and see previews stream, cancel one and see the kept result,
upload a file. Screenshots go to tests/artifacts/ (the README's copy is docs/img/web-lab.png)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("fastapi")
from PIL import Image  # noqa: E402

from convlens.web import create_app  # noqa: E402

from web_helpers import chromium_page, live_server, screenshot  # noqa: E402

ALL_RESULTS_DRAWN = """() => {
  const imgs = [...document.querySelectorAll('#lab-results img.result')];
  return imgs.length >= %d && imgs.every((i) => i.complete && i.naturalWidth > 0);
}"""


@pytest.fixture(scope="module")
def server(offline_model):
    app = create_app(threads=1)
    app.state.convlens._models[("mobilenet_v2", "default")] = offline_model
    with live_server(app) as url:
        yield url


def _drawn_fraction(page, selector: str) -> float:
    """Fraction of non-white pixels of an <img>, read back through a canvas (proves pixels were drawn)."""
    return page.evaluate("""(sel) => {
      const img = document.querySelector(sel);
      const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
      const g = c.getContext('2d'); g.drawImage(img, 0, 0);
      const d = g.getImageData(0, 0, c.width, c.height).data; let n = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i] < 250 || d[i + 1] < 250 || d[i + 2] < 250) n++;
      return n / (d.length / 4);
    }""", selector)


def test_lab_saliency_previews_cancel(server):
    with chromium_page() as page:
        page.goto(server + "/")
        page.wait_for_selector("#lab-samples img[data-name=coffee]")
        page.click("#lab-samples img[data-name=coffee]")
        page.wait_for_function("document.querySelector('#lab-top5 table') !== null", timeout=60000)
        assert "espresso" in page.inner_text("#lab-top5")
        page.wait_for_function("[...document.querySelectorAll('#lab-samples img')].every((i) => i.complete && i.naturalWidth > 0)",
                               timeout=60000)   # every sample thumbnail drawn

        # saliency: the overlay appears and its pixels are drawn
        page.select_option("#lab-technique", "saliency")
        page.click("#lab-run")
        page.wait_for_function(ALL_RESULTS_DRAWN % 3, timeout=60000)
        assert "espresso" in page.inner_text("#lab-results")
        overlay = "#lab-results figure:nth-child(2) img"
        assert page.eval_on_selector(overlay, "i => i.naturalWidth") > 200
        assert _drawn_fraction(page, overlay) > 0.5
        screenshot(page, "web-lab-saliency")

        # class visualization: previews stream while it runs (distinct images), then the result
        page.select_option("#lab-technique", "classviz")
        page.fill("#lab-f-target", "flamingo")
        page.fill("#lab-f-steps", "60")
        page.fill("#lab-f-size", "96")
        page.click("#lab-run")
        page.wait_for_function("document.getElementById('lab-status').textContent.startsWith('done')", timeout=120000)
        page.wait_for_function(ALL_RESULTS_DRAWN % 1, timeout=30000)
        previews = page.evaluate("CL_LAB.previews")
        assert len(set(previews)) >= 2, len(previews)
        assert "flamingo" in page.inner_text("#lab-results")
        assert page.eval_on_selector("#lab-results canvas.lab-curve", "c => c.width") == 320
        screenshot(page, "web-lab-classviz")

        # cancel a long one: the best image so far is kept and shown
        page.fill("#lab-f-steps", "2000")
        page.fill("#lab-f-target", "goldfish")
        page.click("#lab-run")
        page.wait_for_function("CL_LAB.previews.length >= 3", timeout=60000)
        page.click("#lab-cancel")
        page.wait_for_function("document.getElementById('lab-status').textContent.startsWith('cancelled')",
                               timeout=60000)
        page.wait_for_function(ALL_RESULTS_DRAWN % 1, timeout=30000)
        assert "best result so far" in page.inner_text("#lab-results")
        assert "goldfish" in page.inner_text("#lab-results")
        assert _drawn_fraction(page, "#lab-results img.result") > 0.5
        screenshot(page, "web-lab-cancelled")
        assert page.js_errors == []


def test_lab_upload_and_errors(server, tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(tmp_path / "mine.png")
    (tmp_path / "fake.png").write_text("not an image")
    with chromium_page() as page:
        page.goto(server + "/lab")
        page.wait_for_selector("#lab-file")
        page.set_input_files("#lab-file", str(tmp_path / "fake.png"))
        page.wait_for_selector("#lab-input .error")
        assert "not an image" in page.inner_text("#lab-input .error")
        page.set_input_files("#lab-file", str(tmp_path / "mine.png"))
        page.wait_for_function("/uploaded 64×48/.test(document.getElementById('lab-upload-status').textContent)",
                               timeout=30000)
        page.wait_for_function("document.getElementById('lab-current').naturalWidth === 64")
        assert "image=" in page.url and "technique=" in page.url
        page.select_option("#lab-technique", "grad_cam")
        assert page.url.endswith("technique=grad_cam")
        reopened = page.url
        # an unknown class comes back as a readable error, and the page keeps working
        page.select_option("#lab-technique", "saliency")
        page.fill("#lab-f-target", "no such class")
        page.click("#lab-run")
        page.wait_for_selector("#lab-run-box .error")
        assert "unknown class" in page.inner_text("#lab-run-box .error")
        page.fill("#lab-f-target", "")
        page.click("#lab-run")
        page.wait_for_function(ALL_RESULTS_DRAWN % 3, timeout=60000)
        # the URL is a bookmark: it reopens the same image and technique
        page.goto(reopened)
        page.wait_for_function("(() => { const i = document.getElementById('lab-current');"
                               " return !!i && i.naturalWidth === 64; })()", timeout=30000)
        assert page.eval_on_selector("#lab-technique", "s => s.value") == "grad_cam"
        assert page.js_errors == []


def test_lab_webcam_capture_with_a_fake_camera(server):
    """Chromium's fake media device stands in for a webcam: capture uploads a frame as the input."""
    import web_helpers
    exe = web_helpers.chromium_path()
    if exe is None:
        pytest.skip("Debian's chromium is not installed (scripts/setup installs it with apt-get)")
    sync_api = pytest.importorskip("playwright.sync_api")
    args = web_helpers.CHROMIUM_ARGS + ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=args, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server + "/lab")
            page.wait_for_selector("#lab-top5 table")
            page.click("#lab-webcam")
            page.wait_for_function("(() => { const v = document.querySelector('.lab-webcam video');"
                                   " return v && v.videoWidth > 0; })()", timeout=30000)
            page.click(".lab-webcam button")
            page.wait_for_function("/uploaded \\d+×\\d+/.test(document.getElementById('lab-upload-status').textContent)",
                                   timeout=30000)
            page.wait_for_function("document.getElementById('lab-current').naturalWidth > 0")
            assert page.locator(".lab-webcam").count() == 0         # the camera was released
            import re
            assert re.search(r"/lab\?image=[0-9a-f]{16}&", page.url), page.url
            page.wait_for_function("document.querySelector('#lab-top5 table') !== null")
            assert errors == []
        finally:
            browser.close()


EVIL_PAGE = """async (target) => {
  const out = {};
  try {   // the token header forces a CORS preflight, which the explorer never answers: never sent
    await fetch(target + "/api/run", { method: "POST", body: "{}",
      headers: { "Content-Type": "application/json", "X-Convlens-Token": "guess" } });
    out.preflighted = "answered";
  } catch (e) { out.preflighted = "blocked"; }
  // a "simple" request needs no preflight: it arrives, and is refused (no token, not JSON)
  const r = await fetch(target + "/api/run", { method: "POST", mode: "no-cors", headers: { "Content-Type": "text/plain" },
    body: JSON.stringify({ technique: "saliency", image: "chelsea" }) });
  out.simple = r.type;
  return out;
}"""


def test_lab_shows_queue_position_and_other_origins_start_nothing(offline_model):
    """The page shows where its job waits in the queue; a page of another origin (another local port)
    cannot start a job by fetch or by a plain HTML form; /docs renders offline."""
    import threading
    app = create_app(threads=1, orphan_timeout=None)
    state = app.state.convlens
    state._models[("mobilenet_v2", "default")] = offline_model
    gate = threading.Event()
    with live_server(app) as url, live_server(create_app(threads=1)) as evil, chromium_page() as page:
        try:
            page.goto(url + "/lab")
            page.wait_for_selector("#lab-samples img[data-name=chelsea]")
            page.click("#lab-samples img[data-name=chelsea]")
            page.wait_for_function("document.querySelector('#lab-top5 table') !== null", timeout=60000)
            blocker = state.jobs.submit("blocker", lambda job: gate.wait(60) and {})   # holds the one worker
            page.select_option("#lab-technique", "saliency")
            page.click("#lab-run")
            page.wait_for_function("document.getElementById('lab-status').textContent.startsWith('queued · next')",
                                   timeout=30000)
            screenshot(page, "web-lab-queued")
            gate.set()
            page.wait_for_function(ALL_RESULTS_DRAWN % 3, timeout=60000)
            assert page.inner_text("#lab-status").startswith("done") and blocker.status == "done"
            screenshot(page, "web-lab-after-queue")
            assert page.js_errors == []

            jobs = len(state.jobs._jobs)
            page.goto(evil + "/")
            assert page.evaluate(EVIL_PAGE, url) == {"preflighted": "blocked", "simple": "opaque"}
            page.set_content(f"""<form id=f method=post action="{url}/api/run">
              <input name=technique value=saliency><input name=image value=chelsea></form>""")
            with page.expect_navigation():
                page.eval_on_selector("#f", "f => f.submit()")
            assert "refused: a POST needs the server's token" in page.inner_text("body")
            assert len(state.jobs._jobs) == jobs   # nothing was queued

            # /docs draws every endpoint from the server's own files (chromium here reaches no CDN anyway)
            hosts = set()
            page.on("request", lambda r: hosts.add(r.url.split("/")[2]))
            page.goto(url + "/docs")
            page.wait_for_selector(".opblock", timeout=30000)
            assert page.locator(".opblock").count() >= 30
            assert page.locator(".opblock-post").count() >= 6 and page.locator("button.authorize").count() == 1
            assert hosts == {url.split("/")[2]}
            screenshot(page, "web-docs")
            assert page.js_errors == []
        finally:
            gate.set()

