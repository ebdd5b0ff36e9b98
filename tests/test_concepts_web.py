"""The explorer's concepts panel: the job equals the library call on the same images, its PNGs are the
result's own figures, bad input is one JSON line; the page in headless chromium (slow)."""
from __future__ import annotations

import io
from collections import Counter

import numpy as np
import pytest
import torch

pytest.importorskip("fastapi")
from PIL import Image  # noqa: E402
from web_helpers import api_client, wait_job  # noqa: E402

import convlens  # noqa: E402
from convlens.images import labelled_photos, load_image  # noqa: E402
from convlens.web import create_app  # noqa: E402

LAYER = "features.18"
Q = f"layer={LAYER}&source=gcompris&n=32&concepts=3&crops=4&designs=4&images=4"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with api_client(create_app(threads=1, data_dir=tmp_path_factory.mktemp("web-concepts"))) as c:
        yield c


def decode(r) -> np.ndarray:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB")).astype(np.float32)


@pytest.fixture(scope="module")
def job(client):
    r = client.post(f"/api/concepts?{Q}")
    assert r.status_code == 200, r.text
    return wait_job(client, r.json()["job"], timeout=300)


@pytest.mark.slow
def test_concepts_job_equals_the_library_call(client, job):
    assert job["status"] == "done", job
    r = job["result"]
    assert r["complete"] and r["n"] == 3 and r["layer"] == LAYER
    # the images the job used: the first 32 GCompris photos the model assigns to its most common class
    m = convlens.load_model()
    x = torch.cat([load_image(p, m.input_size) for p in labelled_photos("gcompris").paths[:32]])
    with torch.no_grad():
        pred = m(x).argmax(1).tolist()
    cls = Counter(pred).most_common(1)[0][0]
    assert r["class_index"] == cls and r["classes"][0]["index"] == cls
    mine = x[torch.tensor(pred) == cls]
    assert r["n_images"] == len(mine) >= 2
    c = convlens.concepts(m, mine, LAYER, cls, n=3, crops=4, designs=4, importance_images=4, top=8)
    np.testing.assert_allclose(r["sobol"], c.sobol.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(r["gxi"], c.gxi.numpy(), rtol=1e-3, atol=1e-6)
    assert abs(r["nmf_error"] - c.error) < 1e-5
    # the PNGs: concept 0's crops and its map on the cat are the result's own figures
    key = r["key"]
    crops = decode(client.get(f"/api/concepts/{key}/0/crops.png"))
    want = np.asarray(convlens.grid(list(c.crops(0, 72)), ncol=4, pad=2).convert("RGB"), np.float32)
    assert crops.shape == want.shape and np.abs(crops - want).mean() < 2
    got = decode(client.get(f"/api/concepts/{key}/0/map.png?image=chelsea"))
    want = np.asarray(c.heatmap(convlens.sample_image("chelsea"), 0).resize((224, 224)).convert("RGB"), np.float32)
    assert got.shape == want.shape and np.abs(got - want).mean() < 2
    assert decode(client.get(f"/api/concepts/{key}/plot.png")).std() > 10
    own = decode(client.get(f"/api/concepts/{key}/0/map.png?image=class:1"))
    want = np.asarray(c.heatmap(mine[1:2], 0).resize((224, 224)).convert("RGB"), np.float32)
    assert np.abs(own - want).mean() < 2
    assert decode(client.get(f"/api/concepts/{key}/images/0.png")).shape == (96, 96, 3)
    assert client.get(f"/api/concepts/{key}/0/map.png?image=class:99").status_code == 400
    # the same request again is the cached job (instant)
    again = client.post(f"/api/concepts?{Q}").json()
    assert wait_job(client, again["job"])["result"]["key"] == key


@pytest.mark.parametrize("url,status", [
    ("/api/concepts?layer=features.99&source=imagenet20", 400),
    ("/api/concepts?layer=features.18&source=imagenet20&target=nosuchclass", 400),
    ("/api/concepts?layer=features.18&source=nosuchfolder", 400),
    ("/api/concepts?layer=features.18&concepts=0", 422),
])
def test_bad_requests_are_one_line(client, url, status):
    r = client.post(url)
    assert r.status_code == status, r.text
    msg = r.json()["error"]
    assert "\n" not in msg and msg


@pytest.mark.slow
def test_unknown_result_and_concept(client, job):
    r = client.get("/api/concepts/0123456789abcdef01234567/0/crops.png")
    assert r.status_code == 404 and "POST /api/concepts" in r.json()["error"]
    r = client.get(f"/api/concepts/{job['result']['key']}/7/crops.png")
    assert r.status_code == 400 and "out of range" in r.json()["error"]


@pytest.mark.slow
def test_concepts_panel_in_chromium(tmp_path):
    """The page: the job runs from the URL, the summary names the class, every concept card shows its
    map and crops (loaded images), and clicking one of the class's images draws the maps on it."""
    from web_helpers import chromium_page, live_server, screenshot
    app = create_app(threads=1, data_dir=tmp_path)
    with live_server(app) as base, chromium_page(1400, 1000) as page:
        page.goto(f"{base}/concepts?layer=features.18&source=gcompris&image=chelsea&concepts=3")
        page.wait_for_selector("#cc-summary", timeout=600000)
        assert "'palace'" in page.inner_text("h3")
        loaded = ("Array.from(document.querySelectorAll('img.cc-map, img.cc-crops'))"
                  ".every(i => i.complete && i.naturalWidth > 0)")
        page.wait_for_function(loaded, timeout=120000)
        assert page.locator("img.cc-map").count() == 3 and page.locator("img.cc-crops").count() == 3
        page.locator(".thumbs.cc-samples img[alt='class image 1']").click()
        page.wait_for_function("location.search.includes('class%3A1')", timeout=30000)
        page.wait_for_selector("#cc-summary", timeout=120000)
        page.wait_for_function(loaded, timeout=120000)
        assert "class%3A1" in page.locator("img.cc-map").first.get_attribute("src")
        assert page.js_errors == []
        screenshot(page, "concepts-panel")
