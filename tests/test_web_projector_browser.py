"""The projector and the word panel in headless chromium (no GPU): pixels actually drawn by WebGL and
by the Canvas2D fallback, a click listing the library's neighbours with their scores, why-similar,
zoom fetching atlases on demand, lasso selection, PNG/CSV export; the word panel's layout."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")

from convlens.embed import EmbeddingStore  # noqa: E402
from convlens.web import create_app  # noqa: E402

from test_web_projector import N_RAW, stores  # noqa: E402,F401  (the module's store fixture)
from web_helpers import chromium_page, live_server, screenshot  # noqa: E402


@pytest.fixture(scope="module")
def url(stores, offline_model):  # noqa: F811
    app = create_app(store=stores["photos"], data_dir=stores["data"], threads=1)
    state = app.state.convlens
    state._models[(state.model_name, state.weights)] = offline_model
    with live_server(app) as u:
        yield u


def _open(page, url, query=""):
    page.goto(f"{url}/projector{query}")
    page.wait_for_function("window.CLProjector && CLProjector.ready", timeout=60000)
    page.wait_for_function("CLProjector.allThumbsLoaded()", timeout=60000)


def _stage_box(page):
    return page.locator("[data-testid=projector-stage]").bounding_box()


def test_projector_draws_and_a_click_lists_the_librarys_neighbours(url, stores):  # noqa: F811
    store = EmbeddingStore.open(stores["photos"])
    with chromium_page() as page:
        _open(page, url, "?store=photos")
        kind = page.evaluate("CLProjector.renderer.kind")
        assert kind in ("webgl", "webgl+2d", "canvas2d")
        assert page.evaluate("CLProjector.thumbsDrawn") == 40
        assert page.evaluate("CLProjector.drawnPixels()") > 20000  # 40 thumbnails of ~60 px drawn
        # click exactly on a point: the hit test picks the nearest centre (ties: the highest row)
        i = 39
        x, y = page.evaluate(f"CLProjector.toScreen({i})")
        assert page.evaluate(f"CLProjector.pixelAt({x}, {y})") != [255, 255, 255]
        box = _stage_box(page)
        page.mouse.click(box["x"] + x, box["y"] + y)
        page.wait_for_function(f"CLProjector.focus === {i} && document.querySelectorAll('.nbrow').length === 10")
        rows = page.locator(".nbrow")
        shown = [(int(rows.nth(k).get_attribute("data-index")), float(rows.nth(k).get_attribute("data-score")))
                 for k in range(rows.count())]
        nb = store.neighbors(i, k=10)
        assert [a for a, _ in shown] == nb.indices[0].tolist()
        np.testing.assert_allclose([s for _, s in shown], nb.scores[0], atol=1e-6)
        assert f"cosine {nb.scores[0][0]:.4f}" in rows.nth(0).text_content()
        # the switch to neighbours in the 2-D map
        page.locator("input[name=space][value=map]").check()
        page.wait_for_function("CLProjector.neighbors && CLProjector.neighbors.space === 'map'")
        xy = np.frombuffer(page.request.get(f"{url}/api/projector/coords.bin?store=photos&method=pca").body(), "<f4").reshape(-1, 2)
        d = np.linalg.norm(xy.astype(np.float64) - xy[i], axis=1)
        d[i] = np.inf
        got = page.evaluate("CLProjector.neighbors.neighbors.map(n => n.index)")
        assert got == np.argsort(d, kind="stable")[:10].tolist()
        # why similar: a job on the server, then its figure
        page.locator(".nb button").first.click()
        page.wait_for_function("(() => { const im = document.querySelector('[data-testid=why-image]');"
                               " return im && im.complete && im.naturalWidth > 0; })()", timeout=60000)
        # hover shows the image
        x2, y2 = page.evaluate("CLProjector.toScreen(3)")
        page.mouse.move(box["x"] + x2, box["y"] + y2)
        page.wait_for_function("document.querySelector('.tip').style.display === 'block' && "
                               "document.querySelector('.tip img').naturalWidth > 0")
        screenshot(page, f"web-projector-{kind}")
        assert page.js_errors == []


def test_canvas2d_fallback_draws_what_webgl_draws(url):
    """auto (WebGL; points on a 2D canvas underneath when WebGL is software), pure WebGL, Canvas2D."""
    counts = {}
    with chromium_page() as page:
        for renderer in ("", "webgl", "canvas2d"):
            _open(page, url, f"?store=photos&colour=&renderer={renderer}")
            kind = page.evaluate("CLProjector.renderer.kind")
            counts[kind] = page.evaluate("CLProjector.drawnPixels()")
            for i in (0, 20, 39):
                x, y = page.evaluate(f"CLProjector.toScreen({i})")
                assert page.evaluate(f"CLProjector.pixelAt({x}, {y})") != [255, 255, 255], (kind, i)
        screenshot(page, "web-projector-canvas2d-fallback")
        assert page.js_errors == []
    assert "canvas2d" in counts and counts["canvas2d"] > 20000
    for kind in ("webgl", "webgl+2d"):  # same thumbnails at the same places: about the same number of pixels
        if kind in counts:
            assert abs(counts[kind] - counts["canvas2d"]) < 0.1 * counts["canvas2d"], counts


def test_zoom_fetches_only_the_visible_atlases_and_lasso_selects_the_points_inside(url):
    with chromium_page() as page:
        atlases = []
        page.on("request", lambda r: atlases.append(r.url) if "atlas.png" in r.url else None)
        _open(page, url, "?store=raw&colour=")
        assert sorted(u.split("&atlas=")[1].split("&")[0] for u in atlases) == ["0", "1"]  # 300 points: both
        assert page.evaluate("CLProjector.thumbsDrawn") == N_RAW
        # centre point 5 at a zoom where only it is visible: the sharper 64 px atlas is fetched for
        # point 5's atlas only
        a5 = page.evaluate("Math.floor(CLProjector.slot[5] / 256)")
        box = _stage_box(page)
        atlases.clear()
        page.evaluate("""(() => { const P = CLProjector, v = P.view, i = 5;
            v.scale = v.base * 400; v.tx = P.W / 2 - P.world[2 * i] * v.scale; v.ty = P.H / 2 - P.world[2 * i + 1] * v.scale;
            P.requestDraw(); })()""")
        page.wait_for_function("CLProjector.visible >= 1 && CLProjector.visible < 5 && CLProjector.fetching === 0 "
                               f"&& [...CLProjector.loaded.keys()].includes('64:{a5}')")
        assert atlases and all(f"&atlas={a5}&" in u and "cell=64" in u for u in atlases), atlases
        page.locator("button", has_text="Reset view").click()
        # a real wheel event zooms in around the cursor
        box = _stage_box(page)
        s0 = page.evaluate("CLProjector.view.scale")
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.wheel(0, -400)
        page.wait_for_function(f"CLProjector.view.scale > {s0} * 1.5")
        # a mouse drag pans by exactly the drag (the drawing moves with a CSS shift, then is redrawn centred)
        page.locator("button", has_text="Reset view").click()
        tx0, ty0 = page.evaluate("[CLProjector.view.tx, CLProjector.view.ty]")
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(cx, cy)
        page.mouse.down()
        page.mouse.move(cx + 60, cy + 30, steps=6)
        page.mouse.up()
        tx1, ty1 = page.evaluate("[CLProjector.view.tx, CLProjector.view.ty]")
        dpr = page.evaluate("CLProjector.dpr")
        assert abs(tx1 - tx0 - 60 * dpr) < 1e-6 and abs(ty1 - ty0 - 30 * dpr) < 1e-6
        page.wait_for_function("document.querySelector('[data-testid=projector-canvas]').style.transform === ''")
        x, y = page.evaluate("CLProjector.toScreen(0)")
        assert page.evaluate(f"CLProjector.pixelAt({x}, {y})") != [255, 255, 255]
        # lasso: drag a rectangle over the left half of the view
        page.locator("button", has_text="Reset view").click()
        page.locator("input[name=mode][value=lasso]").check()
        page.wait_for_timeout(100)
        xs = np.array(page.evaluate(f"[...Array({N_RAW}).keys()].map(i => CLProjector.toScreen(i))"))
        w, h = box["width"], box["height"]
        x0, x1, y0, y1 = 5, w / 2, 5, h - 5
        inside = int(np.sum((xs[:, 0] > x0) & (xs[:, 0] < x1) & (xs[:, 1] > y0) & (xs[:, 1] < y1)))
        assert 0 < inside < N_RAW
        page.mouse.move(box["x"] + x0, box["y"] + y0)
        page.mouse.down()
        for px, py in ((x1, y0), (x1, y1), (x0, y1), (x0, y0 + 1)):
            page.mouse.move(box["x"] + px, box["y"] + py, steps=4)
        page.mouse.up()
        page.wait_for_selector("[data-testid=selection-count]")
        assert page.locator("[data-testid=selection-count]").text_content().startswith(f"{inside} selected")
        assert page.evaluate("CLProjector.selection.length") == inside
        screenshot(page, "web-projector-lasso")
        assert page.js_errors == []


def test_png_and_csv_export(url, tmp_path):
    with chromium_page() as page:
        _open(page, url, "?store=photos")
        with page.expect_download() as dl:
            page.locator("a", has_text="view (PNG)").click()
        path = tmp_path / "view.png"
        dl.value.save_as(path)
        img = np.asarray(Image.open(path).convert("RGB"))
        w, h = page.evaluate("[CLProjector.W, CLProjector.H]")
        assert img.shape == (h, w, 3) and (img != 255).any(axis=2).sum() > 20000
        href = page.locator("a", has_text="coordinates (CSV)").get_attribute("href")
        text = page.request.get(url + href).text()
        xy = np.frombuffer(page.request.get(url + href.replace("coords.csv", "coords.bin")).body(), "<f4").reshape(-1, 2)
        import csv
        rows = list(csv.DictReader(io.StringIO(text)))
        np.testing.assert_array_equal(np.array([[float(r["x"]), float(r["y"])] for r in rows], np.float32), xy)
        assert page.js_errors == []


def test_words_panel_shows_the_lecture_layout(url):
    from convlens.embed import words
    with chromium_page() as page:
        page.goto(f"{url}/words?q=麻辣烫&q=馄饨&topk=5&vocab=food")
        page.wait_for_function("(document.querySelector('[data-testid=words-out]')?.textContent || '').includes('——')",
                               timeout=60000)  # null-safe: the panel may not be built yet
        shown = page.locator("[data-testid=words-out]").text_content()
        wv = words.encode_vocab(words.FOOD_VOCAB)
        assert shown == words.format_neighbors(words.neighbors(["麻辣烫", "馄饨"], wv, topk=5))
        # a suggestion chip adds a query and runs again
        page.locator(".chips button").first.click()
        first = wv.keys[0]
        page.wait_for_function(f"(document.querySelector('[data-testid=words-out]')?.textContent || '').includes('{first} ——')")
        screenshot(page, "web-words")
        assert page.js_errors == []


def test_a_bookmarked_tsne_view_is_computed_on_the_server_with_its_parameters(url, stores):  # noqa: F811
    with chromium_page() as page:
        page.goto(f"{url}/projector?store=photos&method=tsne&seed=7&perplexity=5&n_iter=80")
        page.wait_for_function("CLProjector.params && CLProjector.params.method === 'tsne'", timeout=120000)
        assert page.input_value("input[name=perplexity]") == "5" and page.is_visible("input[name=perplexity]")
        params = page.evaluate("CLProjector.params.params")
        assert params["seed"] == 7 and params["perplexity"] == 5 and params["n_iter"] == 80
        assert "method=tsne" in page.url and "seed=7" in page.url and "perplexity=5" in page.url
        assert '"seed": 7' in page.locator("pre.params").text_content()
        shown = np.array(page.evaluate("Array.from(CLProjector.xy)"), np.float32).reshape(-1, 2)
        saved = EmbeddingStore.open(stores["photos"]).load_array("projection-tsne")
        np.testing.assert_array_equal(shown, saved)
        page.wait_for_function("CLProjector.allThumbsLoaded()", timeout=60000)
        assert page.evaluate("CLProjector.drawnPixels()") > 20000
        # the method menu switches maps (PCA again: from the server's cache)
        page.select_option("select[name=method]", "pca")
        page.wait_for_function("CLProjector.params.method === 'pca'", timeout=60000)
        assert "method=pca" in page.url
        assert page.js_errors == []
