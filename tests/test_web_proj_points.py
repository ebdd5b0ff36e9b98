"""Issue 23 in the projector, as a user sees it: points identified (stored path and label, search,
isolate), a 3-D map that draws and rotates, the neighbour list recovering after a map change or a
failed request, and the URL restoring every part of the view after a reload."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("fastapi")

import convlens  # noqa: E402
from convlens.embed import EmbeddingStore  # noqa: E402
from convlens.embed.colours import colour_codes  # noqa: E402
from convlens.web import create_app  # noqa: E402

from web_helpers import api_client, chromium_page, live_server, screenshot, wait_job  # noqa: E402

N = 36


@pytest.fixture(scope="module")
def store_path(tmp_path_factory, offline_model):
    """36 images of the bundled sample set, embedded from its spec (``samples:36``): no labels passed."""
    root = tmp_path_factory.mktemp("proj23")
    return convlens.embed_images(offline_model, "samples:36", out=root / "samples", size=64, threads=1).path


def _app(store_path, model, data_dir):
    a = create_app(store=store_path, data_dir=data_dir, threads=1)
    state = a.state.convlens
    state._models[(state.model_name, state.weights)] = model
    return a


@pytest.fixture
def app(store_path, offline_model, tmp_path):
    return _app(store_path, offline_model, tmp_path)


@pytest.fixture(scope="module")
def url(store_path, offline_model, tmp_path_factory):
    with live_server(_app(store_path, offline_model, tmp_path_factory.mktemp("proj23-data"))) as u:
        yield u


def test_a_sample_set_store_records_each_images_source_photo_as_its_label(store_path):
    """Every label was "(none)": stores of the sample set were written without labels. The set now
    names each image's source photo (``SampleDataset.labels``) and the store records it."""
    store = EmbeddingStore.open(store_path)
    ds = convlens.sample_dataset(N)
    assert store.labels() == [n.split()[0] for n in ds.names]   # "chelsea crop 40px@(..)" -> chelsea
    assert store.column("path") == ds.names
    assert "(none)" not in colour_codes(store, "label").categories


def test_point_search_row_image_and_3d_coordinates_over_http(app, store_path):
    store = EmbeddingStore.open(store_path)
    labels, paths = store.labels(), store.column("path")
    with api_client(app) as c:
        p = c.get("/api/projector/point", params={"i": 5}).json()
        assert p["label"] == labels[5] and p["path"] == paths[5]
        r = c.get("/api/projector/search", params={"q": "FLOWER"}).json()
        want = [i for i in range(N) if "flower" in paths[i].lower() or "flower" in (labels[i] or "").lower()]
        assert r["indices"] == want and r["count"] == len(want) >= 2
        assert c.get("/api/projector/search", params={"q": "#7"}).json()["indices"] == [7]
        assert c.get("/api/projector/search", params={"q": "no such thing"}).json()["count"] == 0
        assert c.get("/api/projector/point", params={"i": N}).status_code == 400
        # a row as an image for the other views: the stored thumbnail (a sample crop is no file)
        up = c.post("/api/projector/as-image", json={"i": 3}).json()
        assert up["source"] == "thumbnail"
        from PIL import Image
        import io
        got = np.asarray(Image.open(io.BytesIO(c.get(up["url"]).content)).convert("RGB"))
        np.testing.assert_array_equal(got, np.asarray(store.thumbnail(3)))
        # a 3-D PCA map: 12 bytes a point, its first two axes the 2-D map's; saved beside the 2-D one
        for dims in (2, 3):
            j = wait_job(c, c.post("/api/projector/project", json={"method": "pca", "dims": dims}).json()["job"])
            assert j["status"] == "done", j
        xyz = np.frombuffer(c.get("/api/projector/coords.bin", params={"method": "pca", "dims": 3}).content, "<f4").reshape(-1, 3)
        xy = np.frombuffer(c.get("/api/projector/coords.bin", params={"method": "pca"}).content, "<f4").reshape(-1, 2)
        np.testing.assert_allclose(xyz[:, :2], xy, atol=1e-5)
        ref = convlens.project(store, "pca", dims=3, cache=False).coords
        np.testing.assert_allclose(xyz, ref, atol=1e-5)
        assert c.get("/api/projector/coords.bin", params={"method": "pca", "dims": 4}).status_code == 422
        # neighbours in the 3-D map: L2 over the three axes
        nb = c.get("/api/projector/neighbors", params={"i": 0, "k": 5, "space": "map", "method": "pca", "dims": 3}).json()
        d = np.linalg.norm(xyz.astype(np.float64) - xyz[0], axis=1)
        d[0] = np.inf
        assert [n["index"] for n in nb["neighbors"]] == np.argsort(d, kind="stable")[:5].tolist()
        assert nb["neighbors"][0]["path"] == paths[nb["neighbors"][0]["index"]]


def _ready(page):
    page.wait_for_function("window.CLProjector && CLProjector.ready", timeout=60000)


def _drawn_at(page, i):
    x, y = page.evaluate(f"CLProjector.toScreen({i})")
    return page.evaluate(f"CLProjector.pixelAt({x}, {y})") != [255, 255, 255]


@pytest.mark.slow
def test_points_are_identified_searched_isolated_and_the_url_restores_the_view(url, store_path):
    store = EmbeddingStore.open(store_path)
    labels, paths = store.labels(), store.column("path")
    flowers = [i for i in range(N) if "flower" in paths[i].lower()]
    with chromium_page(1400, 900) as page:
        page.goto(f"{url}/projector?colour=")
        _ready(page)
        # a click shows the point's stored path and label
        box = page.locator("[data-testid=projector-stage]").bounding_box()
        x, y = page.evaluate("CLProjector.toScreen(4)")
        page.mouse.click(box["x"] + x, box["y"] + y)
        page.wait_for_function("document.querySelector('[data-testid=point-label]') && CLProjector.focus === 4")
        assert page.text_content("[data-testid=point-label]") == labels[4]
        assert page.text_content("[data-testid=point-path]") == paths[4]
        page.wait_for_function("document.querySelectorAll('.nbrow').length === 10")
        # search by name: the matches become the selection
        page.fill("[data-testid=search]", "flower")
        page.press("[data-testid=search]", "Enter")
        page.wait_for_function(f"CLProjector.selection && CLProjector.selection.length === {len(flowers)}")
        assert page.evaluate("CLProjector.selection") == flowers
        assert page.text_content("[data-testid=selection-count]").startswith(f"{len(flowers)} matches of “flower”")
        # isolate: only the selection is drawn, and only it can be picked
        other = next(i for i in range(N) if i not in flowers)
        assert _drawn_at(page, other)
        page.click("[data-testid=isolate]")
        page.wait_for_function("CLProjector.isolate")
        page.evaluate("CLProjector.requestDraw()")
        page.wait_for_timeout(100)
        for i in flowers:
            assert _drawn_at(page, i), i
        page.click("button:has-text('Reset view')")   # the whole map again, still isolated
        page.wait_for_timeout(100)
        pos = np.array(page.evaluate(f"[...Array({N}).keys()].map(i => CLProjector.toScreen(i))"))
        half = page.evaluate("CLProjector.thumbsDrawn ? CLProjector.thumbPx / CLProjector.dpr / 2 : 8") + 3
        w, h = page.evaluate("[CLProjector.W / CLProjector.dpr, CLProjector.H / CLProjector.dpr]")
        far = [i for i in range(N) if i not in flowers and min(np.abs(pos[i] - pos[j]).max() for j in flowers) > 2 * half
               and 0 < pos[i][0] < w and 0 < pos[i][1] < h]
        assert far and not any(_drawn_at(page, i) for i in far)
        # zoom and colour, then reload: the URL restores all of it
        page.evaluate("CLProjector.zoom(1.7)")
        page.select_option("select[name=colour]", "label")
        page.wait_for_function("location.search.includes('view=') && location.search.includes('iso=1')")
        before = page.evaluate("({v: CLProjector.view, focus: CLProjector.focus, sel: CLProjector.selection, "
                               "colour: document.querySelector('select[name=colour]').value})")
        assert "q=flower" in page.url and "point=4" in page.url
        page.wait_for_function(f"document.title.startsWith('#4 {labels[4]}')")
        page.wait_for_timeout(300)
        screenshot(page, "web-proj23-isolate-1400")
        page.reload()
        _ready(page)
        page.wait_for_function("document.querySelectorAll('.nbrow').length === 10")
        after = page.evaluate("({v: CLProjector.view, focus: CLProjector.focus, sel: CLProjector.selection, "
                              "colour: document.querySelector('select[name=colour]').value})")
        assert after["focus"] == 4 and after["sel"] == before["sel"] and after["colour"] == "label"
        for k in ("scale", "tx", "ty"):
            assert abs(after["v"][k] - before["v"][k]) < 1e-2 * abs(before["v"]["scale"]), (k, before, after)
        assert page.evaluate("CLProjector.isolate") and page.input_value("[data-testid=search]") == "flower"
        assert page.text_content("[data-testid=point-path]") == paths[4]
        assert page.js_errors == []


def test_the_neighbour_list_recovers_after_a_map_change_and_a_failed_request_shows_its_error(url):
    with chromium_page() as page:
        page.goto(f"{url}/projector?point=2&space=map")
        _ready(page)
        page.wait_for_function("document.querySelectorAll('.nbrow').length === 10")
        pca = page.evaluate("CLProjector.neighbors.neighbors.map(n => n.index)")
        page.select_option("select[name=method]", "tsne")
        page.wait_for_function("CLProjector.params.method === 'tsne'", timeout=120000)
        page.wait_for_function("CLProjector.neighbors && document.querySelectorAll('.nbrow').length === 10")
        assert "…" not in page.text_content("[data-testid=neighbors]")
        xy = np.array(page.evaluate("Array.from(CLProjector.xy)"), np.float64).reshape(-1, 2)
        d = np.linalg.norm(xy - xy[2], axis=1)
        d[2] = np.inf
        tsne = page.evaluate("CLProjector.neighbors.neighbors.map(n => n.index)")
        assert tsne == np.argsort(d, kind="stable")[:10].tolist() and tsne != pca
        # a request that fails: its "…" gives way to the error
        page.route("**/api/projector/neighbors*", lambda r: r.fulfill(status=500, content_type="application/json",
                                                                       body='{"error": "internal error: boom"}'))
        page.fill("input[name=k]", "5")
        page.dispatch_event("input[name=k]", "change")
        page.wait_for_selector("[data-testid=neighbors-error]")
        assert "boom" in page.text_content("[data-testid=neighbors]")
        assert "…" not in page.text_content("[data-testid=neighbors]")
        assert page.js_errors == []


def test_the_3d_map_draws_rotates_picks_and_restores_its_camera(url):
    with chromium_page(1400, 900) as page:
        page.goto(f"{url}/projector?dims=3&method=pca")
        _ready(page)
        assert page.evaluate("CLProjector.dims") == 3 and page.is_visible("[data-testid=projector-canvas-3d]")
        n0 = page.evaluate("CLProjector.drawnPixels()")
        assert n0 > N * 9   # every point a few px square, plus the axes
        scr0 = np.array(page.evaluate("Array.from(CLProjector.scr)")).reshape(-1, 2)
        screenshot(page, "web-proj23-3d-1400")
        box = page.locator("[data-testid=projector-stage]").bounding_box()
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(cx, cy)
        page.mouse.down()
        page.mouse.move(cx + 120, cy + 40, steps=6)
        page.mouse.up()
        page.wait_for_timeout(100)
        scr1 = np.array(page.evaluate("Array.from(CLProjector.scr)")).reshape(-1, 2)
        assert np.abs(scr1 - scr0).max() > 20           # the points moved on screen
        assert page.evaluate("CLProjector.drawnPixels()") > N * 9
        cam = page.evaluate("CLProjector.cam")
        assert abs(cam["yaw"] - 0.6 - 120 * 0.008) < 1e-6 and abs(cam["pitch"] - 0.35 - 40 * 0.008) < 1e-6
        # the projected positions are the camera's perspective of the 3-D coordinates
        i = 7
        x, y = page.evaluate(f"CLProjector.toScreen({i})")
        page.mouse.click(box["x"] + x, box["y"] + y)
        page.wait_for_function("CLProjector.focus !== null && document.querySelectorAll('.nbrow').length === 10")
        picked = page.evaluate("CLProjector.focus")
        px, py = page.evaluate(f"CLProjector.toScreen({picked})")
        assert abs(px - x) < 8 and abs(py - y) < 8
        page.wait_for_function("location.search.includes('cam=')")
        screenshot(page, "web-proj23-3d-rotated-1400")
        page.reload()
        _ready(page)
        assert page.evaluate("CLProjector.cam") == pytest.approx(cam, abs=1e-3)
        assert page.evaluate("CLProjector.focus") == picked
        page.set_viewport_size({"width": 800, "height": 900})
        page.wait_for_timeout(300)
        screenshot(page, "web-proj23-3d-800")
        assert page.js_errors == []


def test_neighbours_of_an_outside_image_duplicates_and_a_new_store_over_http(app, store_path, offline_model):
    from convlens.embed.query import embed_query_images
    store = EmbeddingStore.open(store_path)
    with api_client(app) as c:
        r = c.get("/api/projector/image-neighbors", params={"image": "coffee", "k": 5}).json()
        vec = embed_query_images(store, [convlens.sample_image("coffee")], offline_model)
        nb = store.neighbors(vec, k=5)
        assert [n["index"] for n in r["neighbors"]] == nb.indices[0].tolist()
        np.testing.assert_allclose([n["score"] for n in r["neighbors"]], nb.scores[0], atol=1e-5)
        assert r["neighbors"][0]["path"] == "coffee whole"      # the store's own copy of the photo comes first
        d = c.get("/api/projector/duplicates", params={"threshold": 0.5}).json()
        assert [(p["a"], p["b"]) for p in d["pairs"]] == [(a, b) for a, b, _ in store.near_duplicates(0.5)]
        assert d["rows"] == sorted({x for p in d["pairs"] for x in (p["a"], p["b"])})
        # a new store from two samples, as a job; then listed, with the names and labels given
        job = wait_job(c, c.post("/api/projector/embed", json={"name": "mine", "images": ["chelsea", "coffee"],
                                                               "labels": ["cat", "cup"]}).json()["job"])
        assert job["status"] == "done" and job["result"]["count"] == 2
        mine = EmbeddingStore.open(app.state.convlens.data_dir / "stores" / "mine")
        assert mine.column("path") == ["chelsea", "coffee"] and mine.labels() == ["cat", "cup"]
        want = embed_query_images(mine, [convlens.sample_image("chelsea")], offline_model)[0]   # as the library embeds it
        np.testing.assert_allclose(mine.vectors(0, 1)[0], want, rtol=1e-4, atol=1e-5)
        assert "mine" in [s["name"] for s in c.get("/api/projector/stores").json()["stores"]]
        assert c.post("/api/projector/embed", json={"name": "mine", "images": ["chelsea"]}).status_code == 400
        assert c.post("/api/projector/embed", json={"name": "../x", "images": ["chelsea"]}).status_code == 400
        assert c.post("/api/projector/embed", json={"name": "y", "images": ["nope"]}).status_code == 400


def test_the_data_panel_finds_an_images_neighbours_and_embeds_uploads_into_a_new_store(url, tmp_path):
    from PIL import Image
    files = []
    for k, colour in enumerate([(200, 40, 40), (40, 40, 200)]):
        files.append(tmp_path / f"u{k}.png")
        Image.new("RGB", (90, 70), colour).save(files[-1])
    with chromium_page(1400, 900) as page:
        page.goto(f"{url}/projector")
        page.evaluate("sessionStorage.setItem('convlens.current', JSON.stringify({image: 'coffee'}))")
        page.reload()
        _ready(page)
        page.click("[data-testid=current-neighbors]")
        page.wait_for_function("document.querySelectorAll('[data-testid=image-neighbors] .nbrow').length === 10", timeout=60000)
        assert page.evaluate("CLProjector.selection.length") == 10
        assert "coffee whole" in page.text_content("[data-testid=image-neighbors]")
        page.click("[data-testid=find-duplicates]")
        page.wait_for_selector("[data-testid=duplicates]")
        page.set_input_files("[data-testid=embed-upload]", [str(f) for f in files])
        page.fill("[data-testid=embed-name]", "uploads2")
        page.click("[data-testid=embed-run]")
        page.wait_for_url("**/projector?store=uploads2**", timeout=120000)
        _ready(page)
        assert page.evaluate("CLProjector.n") == 2 and page.evaluate("CLProjector.store") == "uploads2"
        assert page.js_errors == []


def test_grid_image_projector_export_and_index_over_http(app, store_path):
    import io
    import zipfile
    from PIL import Image
    from convlens.embed.maps import grid_assign, grid_image
    store = EmbeddingStore.open(store_path)
    with api_client(app) as c:
        assert c.get("/api/projector/grid.png", params={"method": "pca", "seed": 99}).status_code == 409   # no such map yet
        assert wait_job(c, c.post("/api/projector/project", json={"method": "pca"}).json()["job"])["status"] == "done"
        got = np.asarray(Image.open(io.BytesIO(c.get("/api/projector/grid.png", params={"method": "pca", "tile": 16}).content)).convert("RGB"))
        want = np.asarray(grid_image(grid_assign(convlens.project(store, "pca").coords), store.thumbnails(), 16).convert("RGB"))
        np.testing.assert_array_equal(got, want)
        z = zipfile.ZipFile(io.BytesIO(c.get("/api/projector/export.zip").content))
        assert {"tensors.tsv", "metadata.tsv", "sprite.png"} <= set(z.namelist())
        rows = np.loadtxt(io.StringIO(z.read("tensors.tsv").decode()), delimiter="\t", dtype=np.float32)
        np.testing.assert_allclose(rows, store.vectors(0, len(store)), rtol=1e-6, atol=1e-6)
        j = wait_job(c, c.post("/api/projector/index", json={"kind": "hnsw"}).json()["job"])
        assert j["status"] == "done", j
        assert j["result"]["kind"] == "hnsw" and j["result"]["rows"] == N


def test_a_3d_tsne_keeps_clusters_apart_and_is_saved_beside_the_2d_map(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 8
    x = np.concatenate([c + rng.normal(size=(20, 16)) for c in centres]).astype(np.float32)
    labels = np.repeat(np.arange(3), 20)
    store = EmbeddingStore.from_vectors(tmp_path / "s", x)
    flat = convlens.project(store, "tsne", n_iter=100)
    cube = convlens.project(store, "tsne", n_iter=100, dims=3)
    assert flat.coords.shape == (60, 2) and cube.coords.shape == (60, 3) and cube.params["gradient"] == "bh"
    d = np.linalg.norm(cube.coords[:, None] - cube.coords[None], axis=2)
    np.fill_diagonal(d, np.inf)
    assert (labels[d.argmin(1)] == labels).all()                     # every point's nearest is of its cluster
    again = EmbeddingStore.open(tmp_path / "s")                       # both saved, each with its parameters
    np.testing.assert_array_equal(again.load_array("projection-tsne"), flat.coords)
    np.testing.assert_array_equal(again.load_array("projection-tsne-3d"), cube.coords)
    assert convlens.project(again, "tsne", n_iter=100, dims=3).seconds == 0.0   # the saved 3-D map is reused
