"""The layer browser in headless chromium: the grid is drawn, a click opens the unit view at its own
URL, filters / guided backprop / patches / feature visualization appear; a unit URL opened directly
(a bookmark) renders the same view; screenshots are saved under tests/artifacts/."""
from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
from convlens.web import create_app  # noqa: E402
from web_helpers import chromium_page, live_server, screenshot  # noqa: E402

DRAWN = "(sel) => { const i = document.querySelector(sel); return !!i && i.complete && i.naturalWidth > 0; }"


@pytest.fixture(scope="module")
def url():
    with live_server(create_app(threads=1)) as u:
        yield u


def drawn(page, sel, timeout=90_000):
    page.wait_for_function(DRAWN, arg=sel, timeout=timeout)
    return page.evaluate(f"document.querySelector('{sel}').naturalWidth")


def test_grid_click_unit_view(url):
    with chromium_page(1280, 1000) as page:
        page.goto(f"{url}/layers?image=chelsea&n=24&k=6")
        assert drawn(page, "#layers-grid") > 300
        assert "/layers/features.6?" in page.url                      # the default layer lands in the URL
        page.wait_for_function("[...document.querySelectorAll('.lb-samples img, img.lb-input')].every((i) => i.complete && i.naturalWidth > 0)")
        layout = page.evaluate("fetch('/api/layers/features.6/activations?image=chelsea').then(r => r.json())")
        L = layout["layout"]
        screenshot(page, "web-layers-grid")
        # click the centre of tile 9 (row 1, column 2 of 7): the unit view of channel 9 opens
        box = page.locator("#layers-grid").bounding_box()
        f = box["width"] / L["width"]
        r, q = divmod(9, L["cols"])
        x = (L["pad"] + q * (L["tile"] + L["pad"]) + L["tile"] / 2) * f
        y = (L["pad"] + r * (L["tile"] + L["pad"]) + L["tile"] / 2) * f
        page.mouse.move(box["x"] + x, box["y"] + y)
        assert "channel 9:" in page.locator(".lb-tip").inner_text()
        page.mouse.click(box["x"] + x, box["y"] + y)
        page.wait_for_url("**/layers/features.6/9?image=chelsea&n=24&k=6")
        assert page.locator("#unit-title").inner_text() == "features.6 · channel 9"
        for sel in ("#unit-filters", "#unit-guided", "#unit-map"):
            assert drawn(page, sel) > 100, sel
        assert drawn(page, "#unit-patches", 180_000) > 300              # the patch job ran and its figure loaded
        page.check("text=strongest position only")                     # guided backprop of the strongest unit
        page.wait_for_function("document.querySelector('#unit-guided') && document.querySelector('#unit-guided').src.endsWith('unit=max')")
        assert drawn(page, "#unit-guided") > 100
        page.uncheck("text=strongest position only")
        page.wait_for_function("document.querySelector('#unit-guided') && document.querySelector('#unit-guided').src.endsWith('unit=sum')")
        assert drawn(page, "#unit-guided") > 100
        page.fill("input[type=number]", "24")
        page.click("#viz-start")
        assert drawn(page, "#unit-viz", 120_000) > 0                    # a preview (then the result) is shown
        page.wait_for_function("document.body.innerText.includes('done: 24 steps')", timeout=120_000)
        page.evaluate("window.scrollTo(0, 0)")
        screenshot(page, "web-layers-unit")
        page.go_back()                                                  # history works: back to the grid
        page.wait_for_url("**/layers/features.6?image=chelsea&n=24&k=6")
        assert drawn(page, "#layers-grid") > 300
        assert page.js_errors == []


def test_bookmarked_unit_url_and_layer_switch(url):
    with chromium_page(1280, 900) as page:
        page.goto(f"{url}/layers/features.0/5?image=coffee")           # a bookmark: first-layer RGB filter
        assert drawn(page, "#unit-filters") > 100 and drawn(page, "#unit-guided") > 100
        assert "On coffee" in page.locator(".lb-stats").inner_text()
        page.goto(f"{url}/layers/features.13?image=coffee")
        assert drawn(page, "#layers-grid") > 300
        page.select_option("#grid-scale", "channel")                    # each map to its own max
        page.wait_for_function("document.querySelector('#layers-grid').src.endsWith('scale=channel')")
        assert drawn(page, "#layers-grid") > 300
        page.select_option("#layer-select", "features.3")               # the layer picker navigates
        page.wait_for_url("**/layers/features.3?image=coffee")
        assert drawn(page, "#layers-grid") > 300
        page.goto(f"{url}/layers/nosuch/0")                             # a bad bookmark says what to do
        page.wait_for_selector(".error")
        assert "unknown layer 'nosuch'" in page.locator(".error").inner_text()
        assert page.js_errors == []
