"""Embedding store, extraction (resume after SIGKILL, skip list, duplicates), search, grid, export."""
from __future__ import annotations

import io
import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import convlens
from convlens.embed import ArrayStore, EmbeddingStore, exact_search
from convlens.errors import ConvlensError

from helpers import Snapshot, tiny_convnet

ROOT = Path(__file__).resolve().parents[1]


def _brute(x, q, k, metric, exclude=None):
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    if metric == "cosine":
        s = (q64 / np.linalg.norm(q64, axis=1, keepdims=True)) @ (x64 / np.linalg.norm(x64, axis=1, keepdims=True)).T
    else:
        s = -np.sqrt(((q64[:, None, :] - x64[None]) ** 2).sum(-1))
    if exclude is not None:
        s[np.arange(len(q)), exclude] = -np.inf
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(s, order, 1) * (1 if metric == "cosine" else -1)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_exact_search_equals_brute_force_across_shards_and_blocks(tmp_path, metric):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(700, 24)).astype(np.float32) * rng.uniform(0.5, 3, size=(700, 1)).astype(np.float32)
    store = EmbeddingStore.from_vectors(tmp_path / "s", x, shard_size=128)  # 6 shards
    assert len(store._shards()) == 6
    q = rng.normal(size=(37, 24)).astype(np.float32)
    bi, bs = _brute(x, q, 10, metric)
    for blk in (50, 4096):  # blocks smaller and larger than a shard
        i, s = exact_search(store, q, 10, metric, block_rows=blk, query_chunk=16)
        np.testing.assert_array_equal(i, bi)
        np.testing.assert_allclose(s, bs, rtol=0, atol=2e-5)
    # store rows as queries leave themselves out
    rows = [3, 200, 699]
    nb = store.neighbors(rows, k=5, metric=metric)
    bi, bs = _brute(x, x[rows], 5, metric, exclude=rows)
    np.testing.assert_array_equal(nb.indices, bi)
    assert all(r not in nb.indices[j] for j, r in enumerate(rows))
    if metric == "cosine":
        assert (nb.scores <= 1 + 1e-6).all() and (nb.scores >= -1 - 1e-6).all()
        assert (np.diff(nb.scores, axis=1) <= 1e-7).all()  # similarity: descending
    else:
        assert (np.diff(nb.scores, axis=1) >= -1e-6).all()  # distance: ascending
    # the memory-mapped shards are read-only and stay raw (never normalized in place)
    np.testing.assert_array_equal(store.vectors(), x)


def test_block_topk_equals_torch_topk_and_wide_blocks_search_exactly(tmp_path):
    from convlens.embed.search import block_topk
    g = torch.Generator().manual_seed(0)
    s = torch.randn(50, 64 * 64, generator=g)
    s[3, :] = s[3, :].abs() * -1  # one row all negative; one row with its top entries in one chunk
    s[7, 128:138] = 10 + torch.arange(10.0)
    s[9, 100] = float("-inf")
    v, i = block_topk(s, 10)
    tv, ti = torch.topk(s, 10, dim=1)
    torch.testing.assert_close(v, tv, rtol=0, atol=0)
    torch.testing.assert_close(i, ti, rtol=0, atol=0)
    assert i[7].tolist() == list(range(137, 127, -1))
    # a store searched with blocks wide enough for the chunked top-k, queries fewer and more than dim
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6000, 16)).astype(np.float32) * rng.uniform(0.5, 3, size=(6000, 1)).astype(np.float32)
    store = EmbeddingStore.from_vectors(tmp_path / "w", x, shard_size=4000)
    for nq in (5, 40):
        q = rng.normal(size=(nq, 16)).astype(np.float32)
        for metric in ("cosine", "l2"):
            bi, bs = _brute(x, q, 10, metric)
            i, sc = exact_search(store, q, 10, metric, block_rows=3072)
            np.testing.assert_array_equal(i, bi)
            np.testing.assert_allclose(sc, bs, rtol=0, atol=2e-5)


def test_ann_index_recall_and_update(tmp_path):
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(50, 32))
    x = (centres[rng.integers(0, 50, 4000)] + 0.3 * rng.normal(size=(4000, 32))).astype(np.float32)
    store = EmbeddingStore.from_vectors(tmp_path / "s", x[:3000], shard_size=1000)
    ann = store.build_index(threads=1)
    assert ann.recall_at_10 >= 0.95
    q = (centres[rng.integers(0, 50, 200)] + 0.3 * rng.normal(size=(200, 32))).astype(np.float32)  # held out
    ex, _ = exact_search(store, q, 10)
    from convlens.embed.search import load_index, recall_at_k
    assert recall_at_k(ann.search(q, 10)[0], ex) >= 0.95
    # new shards are added to the saved index when it is loaded again
    ident = {k: store.manifest[k] for k in ("model", "weights", "layer", "pooling", "preprocessing", "dim", "dtype", "version")}
    s2 = EmbeddingStore.create_or_resume(tmp_path / "s", ident)
    s2.commit_shard(x[3000:], {"item": list(range(3000, 4000)), "path": [""] * 1000, "hash": [f"n{i}" for i in range(1000)],
                               "width": [0] * 1000, "height": [0] * 1000, "label": [None] * 1000,
                               "thumbnail": [None] * 1000}, 4000, [])
    ann2 = load_index(EmbeddingStore.open(tmp_path / "s"))
    assert ann2.index.ntotal == 4000
    nb = EmbeddingStore.open(tmp_path / "s").neighbors(3500, k=10, index=True)
    assert not nb.exact and 3500 not in nb.indices[0]
    assert recall_at_k(nb.indices, exact_search(s2, x[3500:3501], 11)[0][:, 1:]) >= 0.8


def _write_images(folder: Path, n: int = 26):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(n):
        sub = folder / ("a" if i % 2 else "b")
        sub.mkdir(exist_ok=True)
        a = (rng.uniform(size=(20 + i, 30, 3)) * 255).astype(np.uint8)
        Image.fromarray(a).save(sub / f"img{i:02d}.png")
    (folder / "b" / "img99_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (folder / "a" / "img98_copy.png").write_bytes((folder / "a" / "img01.png").read_bytes())


SCRIPT = textwrap.dedent("""
    import sys, time, torch
    sys.path.insert(0, {tests!r})
    import convlens
    from helpers import tiny_convnet
    torch.set_num_threads(1)
    m = convlens.Model.wrap(tiny_convnet(), input_size=16)
    def slow(done, total):
        time.sleep(0.25)
    convlens.embed_images(m, {src!r}, out={out!r}, batch_size=2, shard_size=4, workers=0, threads=1, progress=slow)
""")


def test_extraction_killed_mid_run_resumes_to_the_same_store(tmp_path):
    src = tmp_path / "imgs"
    _write_images(src)
    m = convlens.Model.wrap(tiny_convnet(), input_size=16)
    snap = Snapshot(m.net)
    ref = convlens.embed_images(m, src, out=tmp_path / "ref", batch_size=2, shard_size=4, workers=0, threads=1)
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT.format(tests=str(ROOT / "tests"), src=str(src), out=str(out))],
                            env=env)
    try:
        t0 = time.time()
        while time.time() - t0 < 60:
            mf = out / "manifest.json"
            if mf.exists() and len(json.loads(mf.read_text())["shards"]) >= 2:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    part = EmbeddingStore.open(out)
    assert 0 < part.manifest["items_done"] < ref.manifest["items_done"], "the kill must land mid-run"
    resumed = convlens.embed_images(m, src, out=out, batch_size=2, shard_size=4, workers=0, threads=1)
    assert len(resumed) == len(ref) == 27  # 28 files, one unreadable
    np.testing.assert_array_equal(resumed.vectors(), ref.vectors())  # bit-equal
    assert resumed.metadata().equals(ref.metadata())
    rep = resumed.report()
    assert [Path(s["path"]).name for s in rep.skipped] == ["img99_broken.png"]
    paths = resumed.column("path")
    dup = [sorted(Path(paths[i]).name for i in g) for g in rep.duplicates]
    assert dup == [["img01.png", "img98_copy.png"]]
    assert set(resumed.labels()) == {"a", "b"}
    snap.assert_unchanged()
    # the vectors are the pooled layer output of the decoded images, and readable with numpy alone
    v0 = np.load(out / "vectors-00000.npy")
    np.testing.assert_array_equal(v0, resumed.vectors(0, len(v0)))
    x = torch.from_numpy(np.stack([convlens.embed.extract.decode_file(p, (16, 16))["rgb"] for p in paths[:3]])
                         ).permute(0, 3, 1, 2).float() / 255
    with convlens.Probe(m, resumed.manifest["layer"], detach=True) as pr:
        pr.run(x)
        want = pr[resumed.manifest["layer"]].flatten(1)
    np.testing.assert_allclose(resumed.vectors(0, 3), want.numpy(), rtol=1e-5, atol=1e-6)
    # a second run on a finished store does nothing; a different layer is a clear error
    again = convlens.embed_images(m, src, out=out, batch_size=2, shard_size=4, workers=0, threads=1)
    assert len(again.manifest["shards"]) == len(resumed.manifest["shards"])
    with pytest.raises(ConvlensError, match="made differently.*layer"):
        convlens.embed_images(m, src, "0", out=out, workers=0)


def test_extraction_with_decoding_threads_or_processes_equals_inline(tmp_path):
    src = tmp_path / "imgs"
    _write_images(src, 8)
    m = convlens.Model.wrap(tiny_convnet(), input_size=16)
    a = convlens.embed_images(m, src, out=tmp_path / "a", batch_size=4, workers=0, threads=1)
    assert a.manifest["backend"] == "torch"  # a small job does not export
    for decoder in ("threads", "processes"):
        b = convlens.embed_images(m, src, out=tmp_path / decoder, batch_size=3, workers=2, threads=1, decoder=decoder)
        assert len(b) == len(a) == 9  # 10 files, one unreadable
        np.testing.assert_allclose(b.vectors(), a.vectors(), rtol=1e-5, atol=1e-6)  # other batches: rounding
        assert b.metadata().equals(a.metadata())
        assert [s["path"] for s in b.report().skipped] == [s["path"] for s in a.report().skipped]
    b = convlens.embed_images(m, src, out=tmp_path / "b", batch_size=4, workers=2, threads=1)
    np.testing.assert_array_equal(a.vectors(), b.vectors())
    assert a.metadata().equals(b.metadata())
    # a path query is embedded exactly as the store's files were
    p = a.column("path")[2]
    nb = a.neighbors(p, k=1, model=m, metric="l2")
    assert nb.indices[0, 0] == 2 and nb.scores[0, 0] < 1e-5


def test_default_layer_is_the_classifier_input():
    from convlens.embed.extract import default_layer
    assert default_layer(convlens.load_model("alexnet", weights=None)) == "classifier.5"  # FC7 after ReLU
    assert default_layer(convlens.load_model("resnet18", weights=None)) == "avgpool"
    assert default_layer(convlens.load_model("mobilenet_v2", weights=None)) == "classifier.0"


def test_grid_assignment_is_an_optimal_permutation():
    from convlens.embed import grid_assign
    rng = np.random.default_rng(0)
    pts = rng.uniform(size=(6, 2))
    g = grid_assign(pts, 2, 3)
    assert sorted(g.cells.tolist()) == list(range(6))
    # optimal: no permutation has a lower total squared displacement
    c = (pts - pts.min(0)) / (pts.max(0) - pts.min(0))
    centres = np.array([[(col + 0.5) / 3, 1 - (r + 0.5) / 2] for r in range(2) for col in range(3)])
    best = min(sum(((c[i] - centres[p[i]]) ** 2).sum() for i in range(6)) for p in itertools.permutations(range(6)))
    assert g.cost == pytest.approx(best, rel=1e-9)
    # rectangular (empty cells), any N, and the chunked path: every point its own cell
    for n, kw in ((50, {}), (47, {"rows": 5, "cols": 12}), (500, {"chunk": 120})):
        g = grid_assign(rng.normal(size=(n, 2)), **kw)
        assert len(set(g.cells.tolist())) == n and g.cells.max() < g.rows * g.cols
    g = grid_assign(rng.normal(size=(400, 2)), 20, 20, chunk=100)
    assert sorted(g.cells.tolist()) == list(range(400))


def test_projector_export_files_and_line_counts(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 5)).astype(np.float32)
    thumbs = [Image.new("RGB", (16, 16), (i * 8, 0, 0)) for i in range(30)]
    labels = [f"c{i % 3}" for i in range(30)]
    paths = [f"dir/im\t{i}.png" for i in range(30)]
    store = EmbeddingStore.from_vectors(tmp_path / "s", x, labels=labels, paths=paths, thumbnails=thumbs)
    r = convlens.export_projector(store, tmp_path / "p")
    files = {f: (tmp_path / "p" / f) for f in ("tensors.tsv", "metadata.tsv", "sprite.png", "projector_config.pbtxt")}
    assert all(p.exists() for p in files.values())
    t = files["tensors.tsv"].read_text().splitlines()
    assert len(t) == 30 and all(len(line.split("\t")) == 5 for line in t)
    np.testing.assert_allclose(np.array([[float(v) for v in line.split("\t")] for line in t]), x, rtol=1e-6)
    meta = files["metadata.tsv"].read_text().splitlines()
    assert len(meta) == 31 and meta[0] == "label\tpath"  # several columns: one header line
    assert meta[1] == "c0\tdir/im 0.png"  # tabs inside values escaped
    sprite = Image.open(files["sprite.png"])
    assert sprite.size == (6 * 16, 6 * 16) and sprite.size[0] <= 8192
    cfg = files["projector_config.pbtxt"].read_text()
    assert 'tensor_path: "tensors.tsv"' in cfg and "single_image_dim: 16" in cfg and 'metadata_path: "metadata.tsv"' in cfg
    # one column: no header; above the cap: a stratified sample, said in the result
    r = convlens.export_projector(store, tmp_path / "q", columns=("label",), max_points=12, sprite=False)
    meta = (tmp_path / "q" / "metadata.tsv").read_text().splitlines()
    assert r["sampled"] and r["rows"] == 12 == len(meta) and sorted(set(meta)) == ["c0", "c1", "c2"]
    assert {m: meta.count(m) for m in set(meta)} == {"c0": 4, "c1": 4, "c2": 4}
    assert len((tmp_path / "q" / "tensors.tsv").read_text().splitlines()) == 12


def test_pca_matches_sklearn_and_projection_is_saved(tmp_path):
    from sklearn.decomposition import PCA
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8)).astype(np.float32) @ rng.normal(size=(8, 8)).astype(np.float32)
    store = EmbeddingStore.from_vectors(tmp_path / "s", x, shard_size=64)
    p = convlens.project(store, "pca", metric="l2")
    ref = PCA(2).fit_transform(x.astype(np.float64))
    for j in range(2):
        np.testing.assert_allclose(np.abs(p.coords[:, j]), np.abs(ref[:, j]), rtol=1e-4, atol=1e-4)
    again = convlens.project(EmbeddingStore.open(tmp_path / "s"), "pca", metric="l2")
    assert again.seconds == 0.0 and np.array_equal(again.coords, p.coords)  # read back from the store
    other = convlens.project(EmbeddingStore.open(tmp_path / "s"), "pca", metric="cosine")  # other parameters
    assert other.seconds > 0 and not np.allclose(np.abs(other.coords), np.abs(p.coords))
    table = p.save_csv(tmp_path / "xy.csv", store)
    assert table.num_rows == 200 and (tmp_path / "xy.csv").read_text().splitlines()[0].startswith('"index","x","y"')


def test_near_duplicates_from_the_knn_graph(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 16)).astype(np.float32)
    x[10] = x[3] * 2.0 + 1e-3  # same direction: cosine ~1
    store = EmbeddingStore.from_vectors(tmp_path / "s", x)
    pairs = store.near_duplicates(0.99)
    assert [(a, b) for a, b, _ in pairs] == [(3, 10)] and pairs[0][2] > 0.999
    assert any(n.startswith("knn-cosine") for n in store.manifest["projections"])  # cached graph


def test_tsne_large_n_recipe_runs_and_keeps_clusters():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 20)) * 4
    lab = rng.integers(0, 4, 600)
    x = (centres[lab] + rng.normal(size=(600, 20))).astype(np.float32)
    p = convlens.project(ArrayStore(x), "tsne", metric="l2", large=300, sample=200, n_iter=250)
    assert p.params["recipe"].startswith("large-N")
    from sklearn.neighbors import KNeighborsClassifier
    acc = KNeighborsClassifier(5).fit(p.coords[::2], lab[::2]).score(p.coords[1::2], lab[1::2])
    assert acc > 0.95


def test_small_tsne_maps_are_spread_and_keep_two_clusters():
    """20 points (openTSNE's own "auto" learning rate, 20 / 12, collapsed this map to one point)."""
    from sklearn.metrics import silhouette_score
    rng = np.random.default_rng(0)
    lab = np.arange(20) % 2
    x = (rng.normal(size=(2, 64))[lab] * 3 + rng.normal(size=(20, 64))).astype(np.float32)
    p = convlens.project(x, "tsne", seed=0)
    assert p.coords.std(0).min() > 1.0  # spread, not a point
    assert silhouette_score(p.coords, lab) > 0.8  # the two clusters stay apart
    nn = np.argsort(((p.coords[:, None] - p.coords[None]) ** 2).sum(-1), 1)[:, 1]
    assert (lab[nn] == lab).all()  # every point's nearest map neighbour is in its cluster


def test_umap_without_umap_learn_says_how_to_install():
    pytest.importorskip("numpy")
    try:
        import umap  # noqa: F401
        pytest.skip("umap-learn is installed")
    except ImportError:
        pass
    with pytest.raises(ConvlensError, match=r"pip install convlens\[umap\]"):
        convlens.project(np.random.rand(20, 4), "umap")


def test_cli_embed_neighbors_project_export_why(tmp_path, capsys):
    from convlens.cli.main import run
    src = tmp_path / "imgs"
    _write_images(src, 12)
    out = tmp_path / "s.emb"
    assert run(["embed", str(src), "--out", str(out), "--weights", "none", "--workers", "0", "--batch-size", "8",
                "--exact-decode", "--backend", "torch"]) == 0
    text = capsys.readouterr().out
    assert "1 unreadable item(s) skipped, 1 duplicate group(s)" in text and "img99_broken.png" in text
    store = EmbeddingStore.open(out)
    assert len(store) == 13
    assert store.manifest["backend"] == "torch" and "full size" in store.manifest["preprocessing"]["resize"]
    assert run(["neighbors", str(out), "--index", "1", "--k", "3", "-o", str(tmp_path / "nn.png")]) == 0
    lines = capsys.readouterr().out.splitlines()
    nb = store.neighbors(1, k=3)
    assert [int(line.split("#")[1].split()[0]) for line in lines[1:4]] == nb.indices[0].tolist()
    assert Image.open(tmp_path / "nn.png").size[0] > 4 * 96
    assert run(["project", str(out), "--method", "pca", "-o", str(tmp_path / "map.png"), "--grid",
                str(tmp_path / "grid.png"), "--csv", str(tmp_path / "xy.parquet")]) == 0
    assert (tmp_path / "grid.png").exists() and (tmp_path / "xy.parquet").exists()
    assert run(["export-projector", str(out), str(tmp_path / "proj")]) == 0
    assert len((tmp_path / "proj" / "tensors.tsv").read_text().splitlines()) == 13
    assert run(["similar-why", str(out), "--index", "0", "-o", str(tmp_path / "why.png")]) == 0
    assert Image.open(tmp_path / "why.png").size[0] > 400
    assert run(["neighbors", str(out), "--index", "99"]) == 1
    assert "out of range" in capsys.readouterr().err


def test_ctrl_c_commits_finished_batches_and_float16_shards(tmp_path):
    src = tmp_path / "imgs"
    _write_images(src, 10)
    m = convlens.Model.wrap(tiny_convnet(), input_size=16)
    ref = convlens.embed_images(m, src, out=tmp_path / "ref", batch_size=2, shard_size=100, workers=0, threads=1)

    def stop(done, total):
        if done >= 6:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        convlens.embed_images(m, src, out=tmp_path / "s", batch_size=2, shard_size=100, workers=0, threads=1,
                              progress=stop)
    part = EmbeddingStore.open(tmp_path / "s")
    assert part.manifest["items_done"] == 6 and len(part) == 6  # the finished batches were kept
    done = convlens.embed_images(m, src, out=tmp_path / "s", batch_size=2, shard_size=100, workers=0, threads=1)
    np.testing.assert_array_equal(done.vectors(), ref.vectors())
    half = convlens.embed_images(m, src, out=tmp_path / "h", batch_size=2, workers=0, threads=1, dtype="float16")
    assert np.load(tmp_path / "h" / "vectors-00000.npy").dtype == np.float16
    np.testing.assert_allclose(half.vectors(), ref.vectors(), rtol=2e-3, atol=1e-4)
    np.testing.assert_allclose(half.norms(), np.linalg.norm(half.vectors().astype(np.float64), axis=1), rtol=1e-6)


def _jpegs(folder, n, size=(200, 150)):
    folder.mkdir()
    ds = convlens.sample_dataset(n, size=224, seed=3)
    for i in range(n):
        a = (ds[i][0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        Image.fromarray(a).resize(size, Image.BICUBIC).save(folder / f"{i:02d}.jpg", quality=90)


def test_jpeg_draft_decoding_is_close_to_the_full_decode_and_exact_mode_is_exact(tmp_path):
    from convlens.embed.extract import decode_file
    _jpegs(tmp_path / "j", 6)
    p = sorted((tmp_path / "j").iterdir())
    full = decode_file(str(p[0]), (64, 64), draft=False)
    draft = decode_file(str(p[0]), (64, 64))
    # the exact mode is PIL's full decode, shorter side resized (bilinear, antialiased), centre crop
    im = Image.open(p[0]).convert("RGB")
    im = im.resize((85, 64), Image.BILINEAR)  # 200x150 -> shorter side 64
    np.testing.assert_array_equal(full["rgb"], np.asarray(im)[:, 10:74])
    # draft mode decodes the DCT at 1/2 scale (100x75 >= 64): close to, not equal to, the full decode
    diff = np.abs(full["rgb"].astype(int) - draft["rgb"].astype(int))
    assert 0 < diff.mean() < 3 and diff.max() < 64, (diff.mean(), diff.max())
    assert (full["hash"], full["width"], full["height"]) == (draft["hash"], 200, 150)
    # stores: the two modes are different identities (no resume across them); vectors nearly equal
    m = convlens.Model.wrap(tiny_convnet(), input_size=64)
    a = convlens.embed_images(m, tmp_path / "j", out=tmp_path / "a", workers=0, threads=1)
    b = convlens.embed_images(m, tmp_path / "j", out=tmp_path / "b", workers=0, threads=1, draft=False)
    assert "draft mode" in a.manifest["preprocessing"]["resize"]
    assert "full size" in b.manifest["preprocessing"]["resize"]
    cos = (a.vectors() * b.vectors()).sum(1) / a.norms() / b.norms()
    assert cos.min() > 0.99
    with pytest.raises(ConvlensError, match="made differently.*preprocessing"):
        convlens.embed_images(m, tmp_path / "j", out=tmp_path / "a", workers=0, threads=1, draft=False)


@pytest.mark.skipif(not convlens.drivers.onnx.ort_available(), reason="onnxruntime not installed")
def test_onnxruntime_extraction_is_one_backend_and_resumes_bit_equal(tmp_path):
    from convlens.drivers import onnx
    onnx.clear_memory_cache()  # a new export, checked before the first real batch
    src = tmp_path / "imgs"
    _write_images(src, 10)
    m = convlens.Model.wrap(tiny_convnet(), input_size=16)
    ref = convlens.embed_images(m, src, out=tmp_path / "ref", batch_size=2, workers=0, threads=1,
                                backend="onnxruntime")
    assert ref.manifest["backend"] == "onnxruntime"
    tch = convlens.embed_images(m, src, out=tmp_path / "t", batch_size=2, workers=0, threads=1, backend="torch")
    np.testing.assert_allclose(ref.vectors(), tch.vectors(), rtol=1e-4, atol=1e-6)

    def stop(done, total):
        if done >= 6:
            raise KeyboardInterrupt
    onnx.clear_memory_cache()
    with pytest.raises(KeyboardInterrupt):
        convlens.embed_images(m, src, out=tmp_path / "s", batch_size=2, workers=0, threads=1,
                              backend="onnxruntime", progress=stop)
    onnx.clear_memory_cache()
    # resumed with backend "auto": the store's recorded backend wins
    done = convlens.embed_images(m, src, out=tmp_path / "s", batch_size=2, workers=0, threads=1)
    assert done.manifest["backend"] == "onnxruntime"
    np.testing.assert_array_equal(done.vectors(), ref.vectors())


def test_fast_jpeg_path_matches_pillows_draft_decode(tmp_path):
    """OpenCV's DCT-domain decode equals Pillow's draft decode; torch's uint8 resize is Pillow's
    bilinear to one grey level; EXIF-rotated, grey and CMYK JPEGs take Pillow's path and agree."""
    from PIL import ImageOps
    from convlens.embed.extract import _fast_jpeg, decode_bytes
    ds = convlens.sample_dataset(3, size=448, seed=3)
    a = (ds[0][0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    variants = {}
    for name, im, kw in (("rgb", Image.fromarray(a).resize((640, 480)), {}),
                         ("grey", Image.fromarray(a).resize((500, 700)).convert("L"), {}),
                         ("cmyk", Image.fromarray(a).resize((640, 480)).convert("CMYK"), {})):
        b = io.BytesIO()
        im.save(b, format="JPEG", quality=90, **kw)
        variants[name] = b.getvalue()
    rotated = Image.fromarray(a).resize((640, 480))
    exif = rotated.getexif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    b = io.BytesIO()
    rotated.save(b, format="JPEG", quality=90, exif=exif.tobytes())
    variants["rotated"] = b.getvalue()

    def pillow_draft(data, size=(224, 224)):  # the reference: Pillow's draft decode, EXIF, bilinear, crop
        im = Image.open(io.BytesIO(data))
        im.draft("RGB", (max(size), max(size)))
        im = ImageOps.exif_transpose(im).convert("RGB")
        s = max(size[0] / im.height, size[1] / im.width)
        nh, nw = max(size[0], round(im.height * s)), max(size[1], round(im.width * s))
        im = im.resize((nw, nh), Image.BILINEAR)
        top, left = (nh - size[0]) // 2, (nw - size[1]) // 2
        return np.asarray(im.crop((left, top, left + size[1], top + size[0])))

    for name, data in variants.items():
        im = Image.open(io.BytesIO(data))
        fast = im.mode in ("RGB", "L") and _fast_jpeg(data, im, (224, 224)) is not None  # decode_bytes' choice
        assert fast == (name in ("rgb", "grey")), name  # CMYK and EXIF-rotated JPEGs take Pillow's path
        got = decode_bytes(data, (224, 224))
        ref = pillow_draft(data)
        assert got["ok"] and got["rgb"].shape == (224, 224, 3) and got["rgb"].flags.c_contiguous
        diff = np.abs(got["rgb"].astype(int) - ref.astype(int))
        assert diff.max() <= 1 and diff.mean() < 0.05, (name, diff.max(), diff.mean())
        thumb = Image.open(io.BytesIO(got["thumbnail"]))
        assert thumb.size == (96, 96) and thumb.format == "JPEG"
        # the thumbnail is the crop, small: its mean colour is the crop's
        assert np.abs(np.asarray(thumb.convert("RGB"), float).mean((0, 1)) - got["rgb"].mean((0, 1))).max() < 3
    assert decode_bytes(variants["rotated"], (224, 224))["width"] == 640  # the file's own size


def test_lanes_write_the_same_store_as_one_lane(tmp_path, monkeypatch):
    """Lanes (each thread decodes a whole batch and runs its forward on one thread, onnxruntime) keep
    the stream order: the same shards, vectors bit-equal, metadata, skip list and duplicates as one
    lane; with torch (whose probe hooks allow one pass at a time) lanes fall back to one."""
    src = tmp_path / "imgs"
    _write_images(src)
    m = convlens.Model.wrap(tiny_convnet(), input_size=16)
    one = convlens.embed_images(m, src, out=tmp_path / "one", batch_size=2, shard_size=4, workers=0, threads=1,
                                lanes=1, backend="onnxruntime")
    from convlens.embed import extract
    threads_seen, real_forward_group = set(), extract._forward_group

    def spy(forward, group, kind):  # which threads ran the forwards
        import threading
        threads_seen.add(threading.current_thread().name)
        return real_forward_group(forward, group, kind)
    monkeypatch.setattr(extract, "_forward_group", spy)
    seen = []
    two = convlens.embed_images(m, src, out=tmp_path / "two", batch_size=2, shard_size=4, threads=1, lanes=3,
                                backend="onnxruntime", progress=lambda done, total: seen.append(done))
    assert one.manifest["backend"] == two.manifest["backend"] == "onnxruntime"
    assert len(threads_seen) >= 2 and all(t.startswith("convlens-lane") for t in threads_seen)
    np.testing.assert_array_equal(two.vectors(), one.vectors())
    assert two.metadata().equals(one.metadata())
    assert two.report().skipped == one.report().skipped and two.report().duplicates == one.report().duplicates
    assert [s["count"] for s in two.manifest["shards"]] == [s["count"] for s in one.manifest["shards"]]
    assert seen == sorted(seen) and seen[-1] == 28  # progress in stream order
    tch = convlens.embed_images(m, src, out=tmp_path / "t", batch_size=2, shard_size=4, threads=1, lanes=3,
                                backend="torch")
    np.testing.assert_allclose(tch.vectors(), one.vectors(), rtol=1e-4, atol=1e-6)
