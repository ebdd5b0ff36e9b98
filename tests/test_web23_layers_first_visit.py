"""Issue 23, item 7: the layer browser's first visit. A progress bar is on screen while the unit is
computed, then the cards; the patch pass runs on onnxruntime (its values equal torch's) and can run
over the server's store thumbnails, read from the store at their own size."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi")
import convlens  # noqa: E402
from convlens.embed import EmbeddingStore  # noqa: E402
from convlens.web import create_app  # noqa: E402
from web_helpers import api_client, chromium_page, live_server, screenshot, wait_job  # noqa: E402

DRAWN = "(sel) => { const i = document.querySelector(sel); return !!i && i.complete && i.naturalWidth > 0; }"
N_STORE = 6


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store of 6 sample photos' 96 px thumbnails (vectors random: the pass reads only thumbnails)."""
    root = tmp_path_factory.mktemp("web23")
    ds = convlens.sample_dataset(N_STORE, size=96)
    thumbs = [Image.fromarray((ds[i][0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)) for i in range(N_STORE)]
    vecs = np.random.default_rng(0).normal(size=(N_STORE, 8)).astype(np.float32)
    return EmbeddingStore.from_vectors(root / "thumbs", vecs, thumbnails=thumbs).path


@pytest.fixture
def app(store, offline_model, tmp_path_factory):
    """A fresh server per test (a server's job pool ends with it)."""
    a = create_app(store=store, data_dir=tmp_path_factory.mktemp("data"), threads=1)
    st = a.state.convlens
    st._models[(st.model_name, st.weights)] = offline_model   # load the default model once
    return a


def test_patch_pass_over_the_store_thumbnails_equals_torch_on_them(app, store, monkeypatch, tmp_path):
    monkeypatch.setenv("CONVLENS_CACHE", str(tmp_path / "cache"))
    with api_client(app) as c:
        assert "store" in [s["name"] for s in c.get("/api/layers/sources").json()]
        j = wait_job(c, c.post(f"/api/layers/features.3/patches?source=store&n={N_STORE}&k=2").json()["job"], 180)
        assert j["status"] == "done" and j["result"]["n_images"] == N_STORE, j
        rows = c.get(f"/api/layers/features.3/channels/5/patches?source=store&n={N_STORE}&k=2").json()["patches"]
    # the same pass by hand, in torch, over the thumbnails as the store gives them (96 px, not resized)
    s = EmbeddingStore.open(store)
    x = torch.stack([torch.from_numpy(np.asarray(s.thumbnail(i), dtype=np.float32) / 255).permute(2, 0, 1)
                     for i in range(N_STORE)])
    assert x.shape[-1] == 96
    want = convlens.top_activations(app.state.convlens.model(), x, "features.3", [5], 2, size=None, backend="torch")
    assert [r["image_index"] for r in rows] == want.image_index[0].tolist()
    assert [r["position"] for r in rows] == want.positions[0].tolist()
    np.testing.assert_allclose([r["value"] for r in rows], want.values[0].numpy(), rtol=1e-4)
    assert all(max(r["box"]) <= 96 for r in rows)                  # boxes lie in the 96 px thumbnails


def test_store_source_refused_in_one_line_without_a_store(offline_model):
    a = create_app(threads=1)
    st = a.state.convlens
    st._models[(st.model_name, st.weights)] = offline_model
    with api_client(a) as c:
        assert "store" not in [s["name"] for s in c.get("/api/layers/sources").json()]
        r = c.post("/api/layers/features.3/patches?source=store&n=4&k=2")
        assert r.status_code == 400 and "--store" in r.json()["error"], r.text


def test_first_visit_shows_a_progress_bar_then_the_cards(app, monkeypatch, tmp_path):
    monkeypatch.setenv("CONVLENS_CACHE", str(tmp_path / "cache"))
    held = []
    with live_server(app) as url, chromium_page(1400, 900) as page:
        # hold the unit's first request so the bar can be seen deterministically, then let it through
        page.route("**/api/layers/features.3/channels/2?*", lambda route: held.append(route))
        page.goto(f"{url}/layers/features.3/2?image=chelsea&n=8&k=3")
        page.wait_for_function("() => [...document.querySelectorAll('[data-testid=layers-loading]')]"
                               ".some((p) => p.innerText.includes('computing channel 2 of features.3'))")
        assert page.locator("[data-testid=layers-loading] progress").first.is_visible()
        assert page.locator("#unit-map").count() == 0                # no cards yet
        screenshot(page, "web23-layers-first-visit-loading")
        held[0].continue_()
        for sel in ("#unit-map", "#unit-filters", "#unit-guided"):
            page.wait_for_function(DRAWN, arg=sel, timeout=90_000)
        page.wait_for_function(DRAWN, arg="#unit-patches", timeout=180_000)   # the pass's bar, then its figure
        assert page.locator("[data-testid=layers-loading]").count() == 0     # every bar gone
        screenshot(page, "web23-layers-first-visit")
        assert page.js_errors == []
