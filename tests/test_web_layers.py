"""The layer browser's API: catalogue and stage layers, activation grid (values vs Probe), unit info,
filters, guided backprop, patches job and feature visualization job (vs the library calls), bad input."""
from __future__ import annotations

import io
import time

import numpy as np
import pytest
import torch

pytest.importorskip("fastapi")
from web_helpers import api_client  # noqa: E402
from PIL import Image  # noqa: E402

import convlens  # noqa: E402
from convlens.images import fit, sample_image, to_uint8  # noqa: E402
from convlens.probe import Probe  # noqa: E402
from convlens.web import create_app  # noqa: E402
from web_helpers import wait_job  # noqa: E402
from convlens.web.routes.core import png_bytes  # noqa: E402
from convlens.web.routes.layers import atlas_layout, unit_filters_figure  # noqa: E402

N, K = 24, 6   # a small patch search keeps the default run short


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    data = tmp_path_factory.mktemp("web-layers")
    folder = data / "images" / "mine"
    folder.mkdir(parents=True)
    for name in ("chelsea", "coffee", "astronaut", "rocket"):
        Image.fromarray(to_uint8(sample_image(name))).save(folder / f"{name}.png")
    with api_client(create_app(threads=1, data_dir=data)) as c:
        yield c


wait = wait_job


def cancel_after(client, url, done, timeout=60.0) -> dict:
    """POST ``url``, wait until the job has done ``done`` steps, cancel it, return the finished job."""
    job_id = client.post(url).json()["job"]
    t0 = time.time()
    while client.get(f"/api/jobs/{job_id}").json()["done"] < done and time.time() - t0 < timeout:
        time.sleep(0.05)
    client.delete(f"/api/jobs/{job_id}")
    return wait(client, job_id)


def decode(r) -> np.ndarray:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))


def probe(model, layer, image="chelsea"):
    img = fit(sample_image(image) if isinstance(image, str) else image, model.input_size)
    with Probe(model, layer, detach=True) as p, torch.inference_mode():
        p.run(img)
        return p[layer][0].float()


def test_catalogue_lists_conv_layers_and_stages(client, offline_model):
    cat = client.get("/api/layers").json()
    want = [li.name for li in offline_model.layers() if len(li.shape) == 3]
    assert [li["name"] for li in cat["layers"]] == want
    assert cat["stages"] == ["features.1", "features.3", "features.6", "features.13", "features.18"]
    assert cat["default"] == "features.6"
    ch = {li["name"]: li["channels"] for li in cat["layers"]}
    assert ch["features.6"] == 32 and ch["features.18"] == 1280


@pytest.mark.parametrize("layer", ["features.6", "features.2.conv.0"])
def test_activation_stats_equal_probe(client, offline_model, layer):
    s = client.get(f"/api/layers/{layer}/activations?image=chelsea").json()
    a = probe(offline_model, layer)
    assert s["channels"] == a.shape[0] and s["size"] == list(a.shape[1:])
    np.testing.assert_allclose(s["max"], a.flatten(1).amax(1).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(s["mean"], a.flatten(1).mean(1).numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(s["active"], (a > 0).flatten(1).float().mean(1).numpy(), atol=1e-3)
    assert s["strongest"][0] == int(a.flatten(1).mean(1).argmax())
    assert s["signed"] == bool((a < 0).any())


def test_activation_grid_tiles_are_the_channel_maps(client, offline_model):
    """Tile c of the atlas (row c // cols, column c % cols) is channel c on the layer's scale."""
    from convlens.inspect.activations import layer_scale
    layer = "features.18"  # 1280 maps of 7x7 after ReLU6: non-negative, grey tiles, nearest upscaling
    s = client.get(f"/api/layers/{layer}/activations?image=chelsea").json()
    png = decode(client.get(f"/api/layers/{layer}/activations.png?image=chelsea"))
    a = probe(offline_model, layer)
    L = s["layout"]
    assert L == atlas_layout(*a.shape) and png.shape[:2] == (L["height"], L["width"])
    assert not s["signed"]
    want = (a / layer_scale(a)).clamp(0, 1) * 255
    t = L["tile"]
    for c in [0, 1, 37, 500, 1279]:
        r, q = divmod(c, L["cols"])
        y0, x0 = L["pad"] + r * (t + L["pad"]), L["pad"] + q * (t + L["pad"])
        for (i, j) in [(0, 0), (3, 3), (6, 2), (2, 5)]:
            y, x = y0 + int((i + 0.5) * t / 7), x0 + int((j + 0.5) * t / 7)
            assert abs(int(png[y, x, 0]) - float(want[c, i, j])) <= 1.01, (c, i, j)


def test_activations_of_an_upload_id(client, offline_model):
    state = client.app.state.convlens
    img = sample_image("coffee")
    Image.fromarray(to_uint8(img)).save(state.folder("uploads") / "0123456789abcdef.png")
    s = client.get("/api/layers/features.3/activations?image=0123456789abcdef").json()
    a = probe(offline_model, "features.3", convlens.load_image(state.folder("uploads") / "0123456789abcdef.png"))
    np.testing.assert_allclose(s["max"], a.flatten(1).amax(1).numpy(), rtol=1e-5, atol=1e-5)


def test_unit_info(client, offline_model):
    u = client.get("/api/layers/features.6/channels/5?image=chelsea").json()
    a = probe(offline_model, "features.6")[5]
    assert u["max"] == pytest.approx(float(a.max()), abs=1e-5)
    y, x = u["argmax"]
    assert float(a[y, x]) == pytest.approx(float(a.max()), abs=1e-6)
    assert u["conv"]["name"] == "features.6.conv.2" and u["conv"]["kernel"] == [1, 1]
    w = offline_model.module("features.6.conv.2").weight[5].flatten(1).norm(dim=1)
    top = u["conv"]["strongest_inputs"]
    assert top[0]["input"] == int(w.argmax()) and top[0]["norm"] == pytest.approx(float(w.max()), abs=1e-5)
    assert u["receptive_field"]["size"] == list(convlens.receptive_field(offline_model, "features.6").size)
    assert u["urls"]["page"] == "/layers/features.6/5?image=chelsea"


def test_filters_first_layer_rgb_and_deeper_grid(client, offline_model):
    fig, boxes = unit_filters_figure(offline_model, "features.0", 7)   # the block -> its conv features.0.0
    png = decode(client.get("/api/layers/features.0/channels/7/filters.png"))
    assert np.array_equal(png, np.asarray(fig.convert("RGB")))
    w = offline_model.module("features.0.0").weight[7].float()
    want = (0.5 + w / (2 * w.abs().max())) * 255                   # (3, 3, 3): R, G, B kernels
    x, y, tw, th = boxes[0]
    for i in range(3):
        for j in range(3):
            px = png[y + int((i + 0.5) * th / 3), x + int((j + 0.5) * tw / 3)]
            assert np.abs(px - want[:, i, j].numpy()).max() <= 1.01
    # a depthwise conv: one 3x3 kernel; a pointwise block output: one tile per input channel
    fig, boxes = unit_filters_figure(offline_model, "features.2.conv.1", 4)
    assert len([b for b in boxes if b]) == 1
    fig, boxes = unit_filters_figure(offline_model, "features.6", 3)
    assert len([b for b in boxes if b]) == offline_model.module("features.6.conv.2").in_channels


def test_guided_backprop_equals_library(client, offline_model):
    r = client.get("/api/layers/features.6/channels/3/guided.png?image=chelsea")
    a = convlens.guided_backprop(offline_model, fit(sample_image("chelsea"), offline_model.input_size),
                                 layer="features.6", channel=3)
    want = np.asarray(a.overlay(0, "rgb", label="guided backprop: features.6 channel 3 (sum)").convert("RGB"))
    got = decode(r)  # decoded pixels, not PNG bytes (those depend on the thread count and zlib)
    assert got.shape == want.shape
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 2   # rounding of the last grey level
    assert float(a.attributions.abs().sum()) > 0


def test_channel_map_png(client):
    png = decode(client.get("/api/layers/features.6/channels/3/map.png?image=chelsea"))
    assert png.shape[0] >= 224 and png.std() > 10


def test_patches_job_equals_library(client, offline_model):
    r = client.post(f"/api/layers/features.6/patches?n={N}&k={K}")
    job = wait(client, r.json()["job"])
    assert job["status"] == "done" and job["result"]["n_images"] == N and job["result"]["complete"]
    again = client.post(f"/api/layers/features.6/patches?n={N}&k={K}").json()
    assert again["job"] == job["id"]                                  # cached by key
    ds = convlens.sample_dataset(N)
    for c in (1, 21):
        want = convlens.max_activating_patches(offline_model, ds, "features.6", [c], k=K)
        got = client.get(f"/api/layers/features.6/channels/{c}/patches?n={N}&k={K}").json()
        assert [p["image_index"] for p in got["patches"]] == want.top.image_index[0].tolist()
        assert [p["position"] for p in got["patches"]] == want.top.positions[0].tolist()
        np.testing.assert_allclose([p["value"] for p in got["patches"]], want.top.values[0].numpy(), rtol=1e-5)
        assert got["patches"][0]["image"] == ds.name(int(want.top.image_index[0, 0]))
        png = client.get(f"/api/layers/features.6/channels/{c}/patches.png?n={N}&k={K}")
        want_px = np.asarray(want.render().convert("RGB")).astype(int)
        assert np.abs(decode(png).astype(int) - want_px).max() <= 2   # decoded pixels, not PNG bytes


def test_patches_over_a_named_folder(client, offline_model, monkeypatch):
    monkeypatch.delenv("CONVLENS_IMAGES", raising=False)
    srcs = [s["name"] for s in client.get("/api/layers/sources").json()]
    assert srcs == ["samples", "mine"]
    job = wait(client, client.post("/api/layers/features.3/patches?source=mine&k=3").json()["job"])
    assert job["status"] == "done" and job["result"]["n_images"] == 4
    folder = client.app.state.convlens.data_dir / "images" / "mine"
    want = convlens.max_activating_patches(offline_model, folder, "features.3", [2], k=3)
    got = client.get("/api/layers/features.3/channels/2/patches?source=mine&k=3").json()
    assert [p["image"] for p in got["patches"]] == [want.names[int(i)] for i in want.top.image_index[0]]
    np.testing.assert_allclose([p["value"] for p in got["patches"]], want.top.values[0].numpy(), rtol=1e-5)


def test_visualization_job_streams_previews_and_equals_library(client, offline_model):
    q = "steps=6&size=64&seed=0"
    job = wait(client, client.post(f"/api/layers/features.6/channels/3/visualize?{q}").json()["job"])
    assert job["status"] == "done" and job["has_preview"] and job["done"] == 6
    got = decode(client.get(job["result"]["image"]))
    v = convlens.visualize_channel(offline_model, "features.6", 3, steps=6, size=64, seed=0)
    assert np.abs(got.astype(int) - to_uint8(v.images[0]).astype(int)).max() <= 1
    assert job["result"]["score"] == pytest.approx(float(v.scores[0]), rel=1e-3)


def test_visualization_cancel_keeps_the_best_so_far(client):
    job = cancel_after(client, "/api/layers/features.3/channels/1/visualize?steps=2000&size=64", 3)
    assert job["status"] == "cancelled" and 0 < job["result"]["steps"] < 2000
    assert decode(client.get(job["result"]["image"])).std() > 1


TRAVERSAL = ["../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "....//etc", "/etc/passwd"]


@pytest.mark.parametrize("bad", TRAVERSAL)
def test_traversal_in_every_name(client, bad):
    for method, url in [("get", f"/api/layers/{bad}/activations.png"),
                        ("get", f"/api/layers/{bad}/channels/0/filters.png"),
                        ("get", f"/api/layers/features.6/activations?image={bad}"),
                        ("get", f"/api/layers/features.6/channels/0/guided.png?image={bad}"),
                        ("post", f"/api/layers/features.6/patches?source={bad}"),
                        ("get", f"/api/layers/features.6/channels/0/patches.png?source={bad}"),
                        ("get", f"/api/layers?model={bad}")]:
        r = getattr(client, method)(url)
        assert r.status_code in (400, 404, 422), (url, r.status_code)
        assert "root:" not in r.text and r.json()["error"], url


@pytest.mark.parametrize("url,status,words", [
    ("/api/layers/nosuch/activations", 400, "unknown layer 'nosuch'"),
    ("/api/layers/classifier.1/activations.png", 400, "not (C, H, W)"),
    ("/api/layers/features.6/channels/32", 400, "out of range 0..31"),
    ("/api/layers/features.6/channels/-1/filters.png", 400, "out of range"),
    ("/api/layers/features.6/channels/x", 422, "channel"),
    ("/api/layers/features.6/activations?image=nosuch", 400, "unknown image"),
    ("/api/layers/features.6/activations.png?scale=bogus", 422, "scale"),
    ("/api/layers?model=resnet18", 400, "this server serves: mobilenet_v2"),
    ("/api/layers/features.6/activations?model=nosuchnet", 400, "unknown model"),
    ("/api/layers/features.6/channels/0/patches?n=7", 404, "POST /api/layers/features.6/patches"),
    ("/api/layers/features.6/channels/0/visualization.png?steps=3", 404, "POST /api/layers/features.6/channels/0/visualize"),
])
def test_bad_input_names_the_fix(client, url, status, words):
    r = client.get(url)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]


def test_bad_job_parameters(client):
    assert client.post("/api/layers/features.6/patches?n=0").status_code == 422
    assert client.post("/api/layers/features.6/patches?source=nosuch").json()["error"].startswith("unknown image source")
    assert client.post("/api/layers/features.6/channels/0/visualize?steps=0").status_code == 422
    assert client.post("/api/layers/features.6/channels/0/visualize?preset=bogus").status_code == 422
    assert "out of range" in client.post("/api/layers/features.6/channels/99/visualize").json()["error"]


def test_symlinked_image_folder_is_not_a_source(client, tmp_path, monkeypatch):
    monkeypatch.delenv("CONVLENS_IMAGES", raising=False)
    outside = tmp_path / "outside"
    outside.mkdir()
    Image.fromarray(to_uint8(sample_image("rocket"))).save(outside / "r.png")
    link = client.app.state.convlens.data_dir / "images" / "escape"
    link.symlink_to(outside)
    try:
        assert "escape" not in [s["name"] for s in client.get("/api/layers/sources").json()]
        r = client.post("/api/layers/features.6/patches?source=escape")
        assert r.status_code == 400 and "unknown image source" in r.json()["error"]
    finally:
        link.unlink()


def test_openapi_documents_every_layers_endpoint(client):
    paths = client.get("/openapi.json").json()["paths"]
    mine = {p: v for p, v in paths.items() if p.startswith("/api/layers")}
    assert len(mine) >= 11
    for p, ops in mine.items():
        for op in ops.values():
            assert op.get("description") or op.get("summary"), p


def test_the_model_is_not_changed(client, offline_model):
    """The browser works on the server's model itself: no hooks are left on it, nothing unfrozen."""
    m = client.app.state.convlens.model()
    client.get("/api/layers/features.6/channels/3/guided.png?image=coffee")
    assert all(not mod._forward_hooks for mod in m.modules())
    assert not any(p.requires_grad for p in m.parameters())


def test_requests_beside_a_job_on_the_shared_model(client, offline_model):
    """A feature-visualization job (its Probe(stop=True) in a job thread) and activation / guided
    requests (their probes in request threads) on the one shared model: each gets its own values."""
    m = client.app.state.convlens.model()
    q = "steps=120&size=64&seed=1"   # long enough to run through all the requests below
    job_id = client.post(f"/api/layers/features.6/channels/5/visualize?{q}").json()["job"]
    for image in ("chelsea", "coffee", "astronaut", "rocket"):
        for layer in ("features.4", "features.10"):   # layers no other test caches
            s = client.get(f"/api/layers/{layer}/activations?image={image}").json()
            np.testing.assert_allclose(s["max"], probe(offline_model, layer, image).flatten(1).amax(1).numpy(),
                                       rtol=1e-5, atol=1e-5)
    got = decode(client.get("/api/layers/features.10/channels/2/guided.png?image=rocket"))
    a = convlens.guided_backprop(offline_model, fit(sample_image("rocket"), offline_model.input_size),
                                 layer="features.10", channel=2)
    want = np.asarray(Image.open(io.BytesIO(png_bytes(a.overlay(0, "rgb", label="guided backprop: features.10 "
                                                                 "channel 2 (sum)")))).convert("RGB"))
    assert np.abs(got.astype(int) - want.astype(int)).mean() < 0.5   # rounding only (float32 ReLU ties)
    job = wait(client, job_id)
    assert job["status"] == "done" and job["done"] == 120
    with convlens.thread_budget(client.app.state.convlens.threads):  # the job's budget: 120 ascent steps
        v = convlens.visualize_channel(offline_model, "features.6", 5, steps=120, size=64, seed=1)  # amplify
    assert job["result"]["score"] == pytest.approx(float(v.scores[0]), rel=1e-3)   # thread-count rounding
    assert np.abs(decode(client.get(job["result"]["image"])).astype(int) - to_uint8(v.images[0]).astype(int)).max() <= 1
    assert all(not mod._forward_hooks for mod in m.modules())


@pytest.fixture(scope="module")
def resnet_client():
    with api_client(create_app(model="resnet18", weights="none", threads=1)) as c:
        yield c


def test_any_model_resnet18(resnet_client):
    c = resnet_client
    cat = c.get("/api/layers").json()
    assert cat["stages"] == ["relu", "layer1", "layer2", "layer3", "layer4"] and cat["default"] == "layer2"
    m = c.app.state.convlens.model()
    s = c.get("/api/layers/layer2/activations?image=astronaut").json()
    a = probe(m, "layer2", "astronaut")
    np.testing.assert_allclose(s["max"], a.flatten(1).amax(1).numpy(), rtol=1e-5, atol=1e-5)
    u = c.get("/api/layers/layer2/channels/9").json()
    assert u["conv"]["name"] == "layer2.1.conv2" and u["channels"] == 128
    fig, _ = unit_filters_figure(m, "conv1", 0)
    assert np.array_equal(decode(c.get("/api/layers/conv1/channels/0/filters.png")), np.asarray(fig.convert("RGB")))
    assert decode(c.get("/api/layers/layer3/channels/4/guided.png?image=astronaut")).std() > 1
    assert c.get("/api/layers/features.6/activations").json()["error"].startswith("unknown layer 'features.6'")


def test_stage_layers_and_producing_conv_found_from_any_model():
    from convlens.inspect.stages import default_layer, producing_conv, stage_layers
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),            # 16x16
                              torch.nn.Conv2d(4, 6, 3, stride=2, padding=1), torch.nn.ReLU(),  # 8x8
                              torch.nn.Conv2d(6, 8, 3, stride=2, padding=1), torch.nn.ReLU(),  # 4x4
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 3))
    m = convlens.Model.wrap(net, input_size=16, classes=["a", "b", "c"])
    assert stage_layers(m) == ["1", "3", "5"] and default_layer(m) == "3"   # the ReLU ending each resolution
    assert [producing_conv(m, s) for s in stage_layers(m)] == ["0", "2", "4"]
    a = convlens.load_model("alexnet", weights=None)
    assert stage_layers(a) == ["features.1", "features.4", "features.11", "features.12"]
    assert producing_conv(a, "features.11") == "features.10"


def test_image_folder_given_at_server_start(client, tmp_path, monkeypatch):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("china", "flower"):
        Image.fromarray(to_uint8(sample_image(name))).save(photos / f"{name}.jpg")
    monkeypatch.setenv("CONVLENS_IMAGES", str(photos))
    srcs = {s["name"]: s["description"] for s in client.get("/api/layers/sources").json()}
    assert srcs["photos"] == "2 images"
    job = wait(client, client.post("/api/layers/features.1/patches?source=photos&k=2").json()["job"])
    assert job["status"] == "done" and job["result"]["n_images"] == 2
    got = client.get("/api/layers/features.1/channels/0/patches?source=photos&k=2").json()
    assert {p["image"] for p in got["patches"]} <= {"china.jpg", "flower.jpg"}


def test_patches_cancel_keeps_the_images_seen(client, offline_model):
    job = cancel_after(client, "/api/layers/features.3/patches?n=2000&k=4", 32)
    seen = job["result"]["n_images"]
    assert job["status"] == "cancelled" and not job["result"]["complete"] and 0 < seen < 2000
    got = client.get("/api/layers/features.3/channels/5/patches?n=2000&k=4").json()
    want = convlens.top_activations(offline_model, convlens.sample_dataset(2000)[:seen], "features.3", [5], k=4)
    assert got["n_images"] == seen
    np.testing.assert_allclose([p["value"] for p in got["patches"]], want.values[0].numpy(), rtol=1e-5)


def test_visualize_offers_every_preset_of_vizconfig(client):
    """The layer browser's visualize route takes VizConfig's presets (maco included), not a copy of them."""
    import typing

    from convlens.recipes import VizConfig
    want = list(typing.get_args(typing.get_type_hints(VizConfig)["preset"]))
    api = client.get("/openapi.json").json()
    found = [p for path, ops in api["paths"].items() if path.endswith("/visualize") for op in ops.values()
             for p in op.get("parameters", []) if p["name"] == "preset"]
    assert found and all(p["schema"].get("enum") == want for p in found), found
    assert "maco" in want
