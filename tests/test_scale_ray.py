"""Issue 14, Ray engine: the Ray store equals the local store, the distributed top-k equals the
single-process top-k. Ray runs in local mode (num_cpus=2) in one session for the module, shut down
at the end. One end-to-end test runs by default; the rest are marked slow."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import convlens

ray = pytest.importorskip("ray")

LAYER = "layer2"


@pytest.fixture(scope="module")
def ray_local():
    from convlens.scale import ray_session
    with ray_session(num_cpus=2) as r:  # started here, shut down when the module ends
        yield r
    assert not ray.is_initialized()


@pytest.fixture(scope="module")
def model():
    return convlens.load_model("resnet18", weights=None, seed=0)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """22 JPEGs of assorted sizes in two labelled sub-folders, one unreadable file, one duplicate."""
    root = tmp_path_factory.mktemp("imgs")
    ds = convlens.sample_dataset(21, size=120, seed=3)
    for i in range(21):
        a = (ds[i][0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        d = root / ("cats" if i % 3 else "dogs")
        d.mkdir(exist_ok=True)
        Image.fromarray(a).resize((120 + 8 * (i % 4), 100)).save(d / f"{i:03d}.jpg", quality=90)
    (root / "cats" / "broken.jpg").write_bytes(b"not an image")
    (root / "dogs" / "zz-copy.jpg").write_bytes((root / "dogs" / "000.jpg").read_bytes())
    return root


def _same_store(a, b):
    pa_, pb = a.column("path"), b.column("path")
    oa, ob = np.argsort(pa_), np.argsort(pb)
    assert [pa_[i] for i in oa] == [pb[i] for i in ob]
    np.testing.assert_allclose(a.vectors()[oa], b.vectors()[ob], atol=1e-5, rtol=0)
    for col in ("item", "hash", "width", "height", "label", "thumbnail"):
        ca, cb = a.column(col), b.column(col)
        assert [ca[i] for i in oa] == [cb[i] for i in ob], col
    for key in ("model", "weights", "layer", "pooling", "preprocessing", "dim", "dtype", "count", "items_done", "total"):
        assert a.manifest[key] == b.manifest[key], key
    assert [s["count"] for s in a.manifest["shards"]] == [s["count"] for s in b.manifest["shards"]]
    strip = lambda s: [(x["item"], x["path"], x["reason"]) for x in s]  # noqa: E731
    assert strip(a.manifest["skipped"]) == strip(b.manifest["skipped"])
    assert a.report().duplicates == b.report().duplicates


def test_ray_store_and_topk_equal_the_local_ones(ray_local, model, folder, tmp_path):
    from convlens.scale import embed_images_ray, top_activations_ray
    local = convlens.embed_images(model, folder, out=tmp_path / "local", batch_size=4, shard_size=8, workers=0,
                                  size=112, threads=1)
    rs = embed_images_ray(model, folder, out=tmp_path / "ray", batch_size=4, shard_size=8, size=112, workers=2)
    assert len(rs) == 22 and len(rs.manifest["skipped"]) == 1 and rs.manifest["engine"]["actors"] == 2
    assert len(rs.manifest["shards"]) >= 3  # several shards, committed at group boundaries
    _same_store(local, rs)
    # every other command works on the result unchanged: neighbours of the duplicate file = its original
    dup = rs.column("path").index(str(folder / "dogs" / "zz-copy.jpg"))
    nb = rs.neighbors(dup, k=1)
    assert rs.column("path")[int(nb.indices[0, 0])].endswith("dogs/000.jpg") and nb.scores[0, 0] > 0.99999

    files = convlens.list_images(folder)
    files = [f for f in files if f.name != "broken.jpg"]
    chans = [0, 7, 31, 64]
    ref = convlens.top_activations(model, files, LAYER, chans, k=5, batch_size=4, threads=1)
    top = top_activations_ray(model, files, LAYER, chans, k=5, batch_size=3, workers=2)  # other batch boundaries
    assert top.n_images == ref.n_images == len(files) and top.map_size == ref.map_size
    assert torch.equal(top.image_index, ref.image_index) and torch.equal(top.positions, ref.positions)
    torch.testing.assert_close(top.values, ref.values, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_ray_reads_a_uri_and_resumes_a_local_store(ray_local, model, folder, tmp_path):
    from convlens.embed import EmbeddingStore
    from convlens.scale import embed_images_ray
    local = convlens.embed_images(model, folder, out=tmp_path / "local", batch_size=4, shard_size=8, workers=0,
                                  size=112, threads=1)
    uri = embed_images_ray(model, "file://" + str(folder), out=tmp_path / "uri", batch_size=4, shard_size=8,
                           size=112, workers=1, threads=2)
    assert uri.column("path")[0] == "file://" + str(convlens.list_images(folder)[0])
    assert uri.labels() == local.labels()
    np.testing.assert_allclose(uri.vectors(), local.vectors(), atol=1e-5, rtol=0)
    # a local run interrupted (Ctrl-C) after 8 items, finished by Ray: the same store as the uninterrupted one
    def stop(done, total):
        if done >= 8:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        convlens.embed_images(model, folder, out=tmp_path / "mix", batch_size=4, shard_size=8, workers=0, size=112,
                              progress=stop)
    assert EmbeddingStore.open(tmp_path / "mix").manifest["items_done"] == 8
    mixed = embed_images_ray(model, folder, out=tmp_path / "mix", batch_size=4, shard_size=8, size=112, workers=2)
    _same_store(local, EmbeddingStore.open(mixed.path))


@pytest.mark.slow
def test_ray_patches_per_image_equal_local_and_cli(ray_local, model, folder, tmp_path, capsys):
    from convlens.cli import run
    from convlens.scale import max_activating_patches_ray
    files = [f for f in convlens.list_images(folder) if f.name != "broken.jpg"]
    sub = tmp_path / "ok"
    sub.mkdir()
    for f in files:
        (sub / f"{f.parent.name}-{f.name}").write_bytes(f.read_bytes())
    ref = convlens.max_activating_patches(model, convlens.list_images(sub), LAYER, [3, 9], k=4, per_image=True,
                                          batch_size=4)
    p = max_activating_patches_ray(model, sub, LAYER, [3, 9], k=4, per_image=True, batch_size=5, workers=2)
    assert torch.equal(p.top.image_index, ref.top.image_index) and torch.equal(p.crops, ref.crops)
    assert p.names == ref.names
    out = tmp_path / "p.png"
    assert run(["patches", str(sub), "--model", "resnet18", "--weights", "none", "--layer", LAYER, "--channels", "3,9",
                "--k", "4", "--engine", "ray", "--workers", "2", "-o", str(out)]) == 0
    assert "top-4 over 22 images" in capsys.readouterr().out and out.exists()


@pytest.mark.slow
def test_embed_cli_on_ray_then_neighbors(ray_local, folder, tmp_path, capsys):
    from convlens.cli import run
    from convlens.embed import EmbeddingStore
    out = tmp_path / "cli.emb"
    assert run(["embed", "file://" + str(folder), "--out", str(out), "--model", "resnet18", "--weights", "none",
                "--batch-size", "4", "--shard-size", "8", "--engine", "ray", "--workers", "2"]) == 0
    assert "1 unreadable item(s) skipped, 1 duplicate group(s)" in capsys.readouterr().out
    s = EmbeddingStore.open(out)
    assert len(s) == 22 and s.manifest["engine"]["name"] == "ray" and s.labels().count("dogs") == 8
    assert run(["neighbors", str(out), "--index", "0", "--k", "3", "--exact"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "query 0:" and len(lines) == 4
