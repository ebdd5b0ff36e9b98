"""Issue 23, continuity between views: an image uploaded in the layer browser follows the user through
the nav (to the lab and back, across a view that takes no image), the layer browser's URL keeps layer,
unit, image and grid scale, its tab title names them, and a unit links to the lab with its parameters."""
from __future__ import annotations

import io
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
from convlens.web import create_app  # noqa: E402
from web_helpers import chromium_page, live_server, screenshot  # noqa: E402


@pytest.fixture(scope="module")
def url(offline_model):
    app = create_app(threads=1)
    state = app.state.convlens
    state._models[(state.model_name, state.weights)] = offline_model
    with live_server(app) as u:
        yield u


def _query(href: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlparse(href).query).items()}


@pytest.mark.slow
def test_an_upload_in_the_layer_browser_follows_the_user_across_views(url, tmp_path):
    rgb = np.zeros((80, 96, 3), np.uint8)
    rgb[:, :48] = (220, 30, 30)
    rgb[:, 48:] = (30, 30, 220)
    path = tmp_path / "halves.png"
    Image.fromarray(rgb).save(path)
    with chromium_page(1400, 900) as page:
        page.goto(f"{url}/layers/features.2?image=chelsea&scale=channel")
        page.wait_for_function("document.querySelector('#layers-grid') && document.querySelector('#layers-grid').complete")
        assert page.input_value("#grid-scale") == "channel"
        assert page.title().startswith("features.2 · chelsea")
        page.set_input_files("[data-testid=layers-upload]", str(path))
        page.wait_for_function("!location.search.includes('image=chelsea')")
        image_id = _query(page.url)["image"]
        assert len(image_id) == 16 and "/layers/features.2?" in page.url and "scale=channel" in page.url
        page.wait_for_function("document.querySelector('#layers-grid') && document.querySelector('#layers-grid').naturalWidth > 0")
        shown = page.evaluate("fetch(document.querySelector('img.lb-input').src).then(r => r.arrayBuffer()).then(b => Array.from(new Uint8Array(b)))")
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(bytes(shown))).convert("RGB")), rgb)
        assert page.title().startswith(f"features.2 · {image_id}")
        screenshot(page, "web-proj23-layers-upload-1400")
        # the nav carries it to the lab; from a view without an image (words), back to the layers
        lab = page.get_attribute("#nav a[data-view=lab]", "href")
        assert _query(lab) == {"image": image_id}
        page.click("#nav a[data-view=words]")
        page.wait_for_url("**/words**")
        page.click("#nav a[data-view=layers]")
        page.wait_for_url("**/layers**")
        assert _query(page.url)["image"] == image_id
        page.wait_for_function("document.querySelector('#layers-grid') && document.querySelector('#layers-grid').naturalWidth > 0")
        # a unit: its URL keeps layer, unit and image; it links to the lab with its parameters
        page.goto(f"{url}/layers/features.2/5?image={image_id}")
        page.wait_for_selector("[data-testid=unit-lab-viz]")
        assert page.title().startswith(f"features.2 · channel 5 · {image_id}")
        viz = page.get_attribute("[data-testid=unit-lab-viz]", "href")
        assert urlparse(viz).path == "/lab"
        assert _query(viz) == {"image": image_id, "technique": "channelviz", "layer": "features.2", "channel": "5"}
        page.set_viewport_size({"width": 800, "height": 900})
        screenshot(page, "web-proj23-layers-unit-800")
        assert page.js_errors == []
