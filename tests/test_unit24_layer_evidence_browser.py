"""The unit view in headless chromium: once a feature visualization has finished, the synthetic image and
the channel's natural patches appear side by side with the plausibility score (the value the API gives)
and its one-line explanation; screenshot under tests/artifacts/."""
from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
from convlens.web import create_app  # noqa: E402
from web_helpers import chromium_page, live_server, screenshot  # noqa: E402

DRAWN = "(sel) => { const i = document.querySelector(sel); return !!i && i.complete && i.naturalWidth > 0; }"


@pytest.mark.slow   # a patch pass, a visualization and the score in a real browser: about 20 s here
def test_unit_view_shows_the_score_beside_the_exemplars():
    with live_server(create_app(threads=1)) as url, chromium_page(1280, 1400) as page:
        page.goto(f"{url}/layers/features.10/7?image=chelsea&n=16&k=5")
        page.wait_for_function(DRAWN, arg="#unit-patches", timeout=120_000)
        page.fill("input[type=number]", "12")
        page.click("#viz-start")
        page.wait_for_function(DRAWN, arg="#unit-evidence", timeout=120_000)
        card = page.locator("#unit-evidence-card")
        score = card.locator("[data-testid=unit-evidence-score]")
        assert score.is_visible() and card.locator("#unit-evidence").is_visible()
        api = page.evaluate("fetch(document.querySelector('#unit-evidence').src.replace('evidence.png', 'evidence'))"
                            ".then(r => r.json())")
        text = score.inner_text()
        assert f"plausibility {api['plausibility']:.3f}" in text and f"among themselves {api['reference']:.3f}" in text
        assert f"the {api['exemplars']} patches" in text and api["exemplars"] == 5
        assert "representation (features.18.2" in card.locator("[data-testid=unit-evidence-explain]").inner_text()
        # the score sits right above the figure (viz + patches in one row), in the same card
        s, f = score.bounding_box(), card.locator("#unit-evidence").bounding_box()
        assert 0 <= f["y"] - (s["y"] + s["height"]) < 80
        nat = page.evaluate("[document.querySelector('#unit-evidence').naturalWidth, "
                            "document.querySelector('#unit-evidence').naturalHeight]")
        assert nat[0] > 4 * nat[1]                                         # one row: the viz, then 5 patches
        card.scroll_into_view_if_needed()
        screenshot(page, "web-layers-unit-evidence")
        assert page.js_errors == []
