"""The image lab as a user sees it (issue 23, lab part), in headless Debian chromium: the result in view
when it arrives (beside the input at 1400 px, scrolled to at 800 px), pickers and the top-5 setting the
target, the URL restoring image, model, technique and every parameter (and the tab title naming them),
stuck states cleared, the model switch, history and the compare view, the 404 page and the favicon.
Screenshots go to tests/artifacts/web-lab-*.png."""
from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("fastapi")
from PIL import Image  # noqa: E402
import convlens  # noqa: E402
from convlens.web import create_app  # noqa: E402

import web_helpers  # noqa: E402
from web_helpers import live_server, screenshot  # noqa: E402

RESULTS_DRAWN = """(n) => {
  const imgs = [...document.querySelectorAll('#lab-results img.result')];
  return imgs.length >= n && imgs.every((i) => i.complete && i.naturalWidth > 0);
}"""
DONE = "document.getElementById('lab-status').textContent.startsWith('done')"
# where the first result image is, against the viewport and the input card
PLACE = """() => {
  const img = document.querySelector('#lab-results img.result').getBoundingClientRect();
  const input = document.getElementById('lab-input').getBoundingClientRect();
  const header = document.querySelector('header.top').getBoundingClientRect();
  return {top: img.top, bottom: img.bottom, left: img.left, height: innerHeight, header: header.bottom,
          inputRight: input.right, inputTop: input.top, inputBottom: input.bottom};
}"""


@pytest.fixture(scope="module")
def server(offline_model):
    """Two served models: the offline MobileNetV2 and a random-weight ResNet-18 (no download)."""
    app = create_app(model=["mobilenet_v2", "resnet18"], threads=1)
    state = app.state.convlens
    state._models[("mobilenet_v2", "default")] = offline_model
    state._models[("resnet18", "default")] = convlens.load_model("resnet18", weights=None)
    with live_server(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    """One headless chromium for the module (a launch costs seconds); each test opens its own page."""
    exe = web_helpers.chromium_path()
    if exe is None:
        pytest.skip("Debian's chromium is not installed (scripts/setup installs it with apt-get)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=web_helpers.CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def chromium_page(browser):
    """``chromium_page(width, height)``: a fresh page (own context: own sessionStorage) with ``js_errors``."""
    import contextlib

    @contextlib.contextmanager
    def make(width: int = 1400, height: int = 900):
        context = browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        page.js_errors = []
        page.on("pageerror", lambda e: page.js_errors.append(str(e)))
        try:
            yield page
        finally:
            context.close()
    return make


def _open(page, url):
    page.goto(url)
    page.wait_for_selector("#lab-top5 table", timeout=60000)


def _run(page, n_images=1):
    page.click("#lab-run")
    page.wait_for_function(DONE, timeout=60000)
    page.wait_for_function(RESULTS_DRAWN, arg=n_images, timeout=30000)


@pytest.mark.parametrize("width", [1400, 800])
def test_result_is_in_view_when_it_arrives(server, chromium_page, width):
    with chromium_page(width, 900) as page:
        _open(page, server + "/lab?image=coffee&technique=saliency")
        page.wait_for_function("[...document.querySelectorAll('#lab-samples img, #lab-current')]"
                               ".every((i) => i.complete && i.naturalWidth > 0)", timeout=120000)
        screenshot(page, f"web-lab-{width}-before")
        page.wait_for_timeout(100)
        _run(page, 3)
        p = page.evaluate(PLACE)
        assert p["top"] >= p["header"] - 1 and p["top"] + 0.5 * (p["bottom"] - p["top"]) < p["height"], p
        # a short job came back with the POST answer: its images inline, no event stream, no image fetch
        assert page.eval_on_selector("#lab-results img.result", "i => i.src.slice(0, 23)") == "data:image/webp;base64,"
        if width == 1400:   # beside the input, the input still in view
            assert p["left"] >= p["inputRight"] and p["inputTop"] < p["height"], p
        else:               # below the form: scrolled to
            assert page.evaluate("scrollY") > 300 and p["top"] > p["inputBottom"], p
        page.screenshot(path=str(screenshot(page, f"web-lab-{width}-after")).replace(".png", "-viewport.png"))
        assert page.js_errors == []


def test_a_repeated_run_comes_from_the_cache(server, chromium_page):
    """An iterative technique run twice: the second answer is the cached job, shown at once (the answer
    already carries its result; it is not followed), for a short technique too (answered inline)."""
    with chromium_page(1400, 900) as page:
        _open(page, server + "/lab?image=chelsea&technique=classviz&target=goldfish&steps=8&size=64")
        for technique in ("classviz", "grad_cam"):
            if technique != "classviz":
                page.select_option("#lab-technique", technique)
            _run(page, 1)
            first = page.inner_text("#lab-results h3")
            page.click("#lab-run")
            page.wait_for_function("document.getElementById('lab-cached').textContent === '(from the cache)'",
                                   timeout=30000)
            page.wait_for_function(DONE, timeout=30000)
            page.wait_for_function(RESULTS_DRAWN, arg=1, timeout=30000)
            assert page.inner_text("#lab-results h3") == first
        assert page.js_errors == []


def test_url_restores_every_parameter_and_titles_the_tab(server, chromium_page):
    with chromium_page(1400, 900) as page:
        _open(page, server + "/lab")
        page.click("#lab-samples img[data-name=coffee]")
        page.wait_for_function("document.getElementById('lab-current-name').textContent === 'coffee'")
        page.select_option("#lab-technique", "smoothgrad")
        page.fill("#lab-f-target", "cup")
        page.select_option("#lab-f-mode", "positive")
        page.fill("#lab-f-samples", "3")
        page.fill("#lab-f-noise", "0.2")
        page.select_option("#lab-model", "resnet18")
        page.wait_for_function("location.search.includes('model=resnet18')")
        url = page.url
        for part in ("image=coffee", "model=resnet18", "technique=smoothgrad", "target=cup", "mode=positive",
                     "samples=3", "noise=0.2"):
            assert part in url, (part, url)
        assert page.title() == "smoothgrad · coffee — convlens"
        page.goto("about:blank")
        _open(page, url)
        values = page.evaluate("""() => Object.fromEntries(['target', 'mode', 'samples', 'noise', 'seed'].map(
            (n) => [n, document.getElementById('lab-f-' + n).value]))""")
        assert values == {"target": "cup", "mode": "positive", "samples": "3", "noise": "0.2", "seed": "0"}
        assert page.eval_on_selector("#lab-technique", "s => s.value") == "smoothgrad"
        assert page.eval_on_selector("#lab-model", "s => s.value") == "resnet18"
        assert page.inner_text("#lab-current-name") == "coffee"
        assert page.title() == "smoothgrad · coffee — convlens"
        assert page.url == url                    # restoring writes back the same address
        _run(page, 3)                             # and it runs what the URL says
        cap = page.inner_text("#lab-results .lab-caption")
        assert "resnet18" in cap and "samples=3" in cap and "target=cup" in cap, cap
        # a parameter named like the lab's own keys travels under "p.": style's network
        page.select_option("#lab-technique", "style")
        page.select_option("#lab-f-model", "vgg16-hed")
        assert "p.model=vgg16-hed" in page.url and "model=resnet18" in page.url
        assert page.js_errors == []


def test_pickers_and_top5_set_the_target(server, chromium_page):
    with chromium_page(1400, 900) as page:
        _open(page, server + "/lab?image=chelsea&technique=grad_cam")
        # a top-5 row sets the target
        first = page.locator(".lab-top5-row").first
        label = first.inner_text().split(" (")[0]
        first.click()
        assert page.input_value("#lab-f-target") == label
        assert f"target={label.replace(' ', '+')}" in page.url
        # the class picker filters the model's 1000 names as you type
        page.fill("#lab-f-target", "")
        page.type("#lab-f-target", "flamin")
        page.wait_for_selector(".lab-picker-list:not([hidden]) li[data-value=flamingo]")
        assert page.locator(".lab-picker-list:not([hidden]) li[role=option]").count() == 1
        page.click(".lab-picker-list li[data-value=flamingo]")
        assert page.input_value("#lab-f-target") == "flamingo"
        # the layer picker lists the model's layers with their type and shape
        page.click("#lab-f-layer + .lab-picker-browse")
        page.wait_for_selector(".lab-picker-list:not([hidden]) li[data-value='features.18']")
        assert "Conv2d" in page.inner_text(".lab-picker-list:not([hidden])")
        page.keyboard.type("features.14.conv.0.0")
        page.keyboard.press("Escape")
        page.fill("#lab-f-layer", "")
        page.type("#lab-f-layer", "14.conv.1.")
        page.wait_for_selector(".lab-picker-list:not([hidden]) li[role=option]")
        matches = page.eval_on_selector_all(".lab-picker-list:not([hidden]) li[role=option]", "ls => ls.map((l) => l.dataset.value)")
        assert len(matches) >= 2 and all("14.conv.1." in m for m in matches), matches
        page.keyboard.press("ArrowDown")
        page.keyboard.press("Enter")
        assert page.input_value("#lab-f-layer") == matches[1]    # the second match, chosen by keys
        page.fill("#lab-f-layer", "features.18")
        _run(page, 3)
        assert "flamingo" in page.inner_text("#lab-results")
        assert page.js_errors == []


@pytest.mark.slow
def test_style_picker_shows_thumbnails(server, chromium_page):
    """Style images: a list with thumbnails (the paintings are assembled on first use: slow), and a preview
    of the chosen one beside the field."""
    with chromium_page(1400, 900) as page:
        _open(page, server + "/lab?image=chelsea&technique=style")
        page.click("#lab-f-style + .lab-picker-browse")
        page.wait_for_selector(".lab-picker-list:not([hidden]) li[data-value=hubble] img")
        page.wait_for_function("""() => [...document.querySelectorAll('.lab-picker-list:not([hidden]) li img')].slice(0, 4)
                                  .every((i) => i.complete && i.naturalWidth > 0)""", timeout=30000)
        screenshot(page, "web-lab-style-picker")
        page.click(".lab-picker-list li[data-value=great_wave]")
        assert page.input_value("#lab-f-style") == "great_wave"
        page.wait_for_function("(() => { const i = document.querySelector('.lab-picker-preview');"
                               " return !i.hidden && i.complete && i.naturalWidth > 0 && i.src.includes('great_wave'); })()")
        assert page.js_errors == []


def test_stuck_states_clear(server, chromium_page, tmp_path):
    (tmp_path / "fake.png").write_text("not an image")
    with chromium_page(1400, 900) as page:
        # a bad image in the URL: an error and no broken icon, no endless "predicting…"
        page.goto(server + "/lab?image=0123456789abcdef&technique=saliency")
        page.wait_for_function("document.getElementById('lab-current')?.hidden === true", timeout=30000)
        assert "could not be loaded" in page.inner_text("#lab-input > .error")
        assert page.eval_on_selector("#lab-current", "i => getComputedStyle(i).display === 'none'")   # no broken icon
        page.wait_for_function("!document.getElementById('lab-top5').textContent.includes('predicting')", timeout=30000)
        page.goto(server + "/lab?image=nosuch")
        page.wait_for_selector("#lab-input > .error")
        assert "neither a bundled sample nor an upload id" in page.inner_text("#lab-input > .error")
        # an upload error clears at the next action
        page.set_input_files("#lab-file", str(tmp_path / "fake.png"))
        page.wait_for_selector("#lab-input .error >> text=not an image")
        page.click("#lab-samples img[data-name=chelsea]")
        page.wait_for_selector("#lab-top5 table", timeout=60000)
        assert page.locator("#lab-input .error").count() == 0
        # an upload is named by its file name in the tab title (and its id in the URL)
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(tmp_path / "cat.png")
        page.select_option("#lab-technique", "saliency")
        page.set_input_files("#lab-file", str(tmp_path / "cat.png"))
        page.wait_for_function("document.title === 'saliency · cat.png — convlens'", timeout=30000)
        assert re.search(r"image=[0-9a-f]{16}", page.url) and page.locator("#lab-input > .error").count() == 0
        # a refused Run (400): the error, and no "running…" left behind
        page.fill("#lab-f-target", "no such class")
        page.click("#lab-run")
        page.wait_for_selector("#lab-run-box .error")
        assert "unknown class" in page.inner_text("#lab-run-box .error")
        assert "running" not in page.inner_text("#lab-results")
        assert page.inner_text("#lab-status").startswith("refused")
        screenshot(page, "web-lab-refused")
        page.fill("#lab-f-target", "")
        _run(page, 3)
        assert page.locator("#lab-run-box .error").count() == 0
        # a job the page loses track of (the server gone): said so, Cancel off, no "running…". (An iterative
        # technique: a short one comes back with the POST answer and is never followed.)
        page.select_option("#lab-technique", "classviz")
        page.fill("#lab-f-steps", "20")
        page.fill("#lab-f-size", "64")
        page.evaluate("() => { CL.follow = () => Promise.reject(new Error('connection lost')); }")
        page.click("#lab-run")
        page.wait_for_selector("#lab-results .error")
        assert "lost track of the job: connection lost" in page.inner_text("#lab-results .error")
        assert page.inner_text("#lab-status") == "lost" and page.is_disabled("#lab-cancel")
        assert page.js_errors == []


def test_model_switch_history_and_compare(server, chromium_page):
    with chromium_page(1400, 900) as page:
        _open(page, server + "/lab?image=chelsea&technique=saliency")
        top_mobilenet = page.inner_text("#lab-top5 table")
        _run(page, 3)
        page.click("#lab-pin")
        page.select_option("#lab-technique", "grad_cam")
        _run(page, 3)
        page.click("#lab-pin")
        page.click("#lab-samples img[data-name=coffee]")
        page.wait_for_function("document.getElementById('lab-current-name').textContent === 'coffee'")
        _run(page, 3)
        page.click("#lab-pin")
        assert page.locator("#lab-history .lab-hist").count() == 3
        # the compare view: three pinned results side by side
        page.click(".lab-to-compare")
        cards = page.locator("#lab-compare .lab-compare-card")
        assert cards.count() == 3
        boxes = [cards.nth(i).bounding_box() for i in range(3)]
        assert abs(boxes[0]["y"] - boxes[1]["y"]) < 2 and boxes[0]["x"] < boxes[1]["x"] < boxes[2]["x"]
        captions = page.inner_text("#lab-compare")
        assert "saliency · chelsea" in captions and "grad_cam · chelsea" in captions and "grad_cam · coffee" in captions
        page.wait_for_function("[...document.querySelectorAll('#lab-compare img.result')].every((i) => i.complete && i.naturalWidth > 0)")
        screenshot(page, "web-lab-1400-compare")
        page.set_viewport_size({"width": 800, "height": 900})
        page.click(".lab-to-compare")
        screenshot(page, "web-lab-800-compare")
        page.set_viewport_size({"width": 1400, "height": 900})
        # history: the first result back, with its image and technique
        page.click("#lab-history .lab-hist:last-child")
        page.wait_for_function("document.getElementById('lab-current-name').textContent === 'chelsea'")
        assert page.eval_on_selector("#lab-technique", "s => s.value") == "saliency"
        assert page.inner_text("#lab-results h3").startswith("Saliency")
        assert "technique=saliency" in page.url and "image=chelsea" in page.url
        # the session keeps results by URL, without their inline images
        stored = page.evaluate("sessionStorage.getItem('convlens-lab-history')")
        assert "/api/results/" in stored and "data:image" not in stored
        # unpin from the compare view
        page.click("#lab-compare .lab-compare-card:first-child .lab-unpin")
        assert cards.count() == 2
        # the history survives a reload (this session)
        page.reload()
        page.wait_for_selector("#lab-top5 table", timeout=60000)
        assert page.locator("#lab-history .lab-hist").count() == 3 and cards.count() == 2
        # the model switch: another top-5, and the run uses the other model
        page.select_option("#lab-model", "resnet18")
        page.wait_for_function("(t) => document.querySelector('#lab-top5 table') && "
                               "document.querySelector('#lab-top5 table').innerText !== t", arg=top_mobilenet, timeout=60000)
        page.select_option("#lab-technique", "saliency")
        _run(page, 3)
        assert "resnet18" in page.inner_text("#lab-results .lab-caption")
        assert page.js_errors == []


def test_not_found_page_and_favicon(server, chromium_page):
    import httpx
    with chromium_page(1400, 900) as page:
        failed = []
        page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
        page.on("console", lambda m: failed.append(m.text) if m.type == "error" else None)
        _open(page, server + "/lab")
        page.wait_for_timeout(300)
        assert failed == []                                   # no favicon 404 (nor any other)
        assert page.evaluate("document.querySelector('link[rel=icon]').href").endswith("/static/favicon.svg")
        r = page.goto(server + "/no/such/page")
        assert r.status == 404 and "Page not found" in page.inner_text("h1")
        assert "/no/such/page" in page.inner_text("#notfound-what")
        screenshot(page, "web-lab-404")
        page.click("#notfound-home")
        page.wait_for_selector("#lab-top5 table", timeout=60000)
        assert page.url.startswith(server + "/lab")
    assert httpx.get(server + "/favicon.ico").headers["content-type"].startswith("image/svg+xml")
    assert httpx.get(server + "/no/such/page").json()["error"].startswith("no page '/no'")   # scripts still get JSON


def test_serve_banner_names_the_url_to_open(monkeypatch, capsys):
    import uvicorn

    from convlens.cli.main import run
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)
    assert run(["serve", "--port", "8123", "--host", "0.0.0.0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("warning: listening on 0.0.0.0")
    assert lines[1] == "convlens explorer: open http://127.0.0.1:8123/lab in a browser", lines
    assert "http://127.0.0.1:8123/projector" in lines[2] and lines[3].endswith("Ctrl-C to stop")


@pytest.mark.slow
def test_the_map_on_screen_gets_its_report_card(server, chromium_page):
    """Issue 22, item 5: after a Grad-CAM map, "how faithful is this map?" runs the report card with it as
    the focus; the card names its rank among the methods, and the curves are drawn."""
    with chromium_page(1400, 900) as page:
        _open(page, f"{server}/lab?image=chelsea&technique=grad_cam")
        page.click("#lab-run")
        page.wait_for_function(DONE, timeout=120000)
        page.click("#lab-judge")
        page.wait_for_function("document.getElementById('lab-technique').value === 'evaluate'")
        page.wait_for_selector("#lab-results .lab-rank", timeout=300000)
        text = page.inner_text("#lab-results .lab-rank")
        assert re.match(r"grad_cam ranks [1-5] of 5 on deletion", text), text
        assert page.evaluate(RESULTS_DRAWN, 1)
        screenshot(page, "web-lab-report-card")
        assert not page.js_errors
