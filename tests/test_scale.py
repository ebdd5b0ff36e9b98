"""Issue 14 without Ray: the exact top-k merge across workers, the IVF-PQ / chunked / memory-mapped
index and its recall, the CLI, the actor-pool plan and the missing-extra hint."""
from __future__ import annotations

import builtins

import numpy as np
import pytest
import torch

from convlens.cli import run
from convlens.embed import EmbeddingStore, build_index
from convlens.embed.search import exact_search, load_index, recall_at_k
from convlens.errors import ConvlensError
from convlens.scale.index import auto_kind, synthetic_vectors


# --- top-k merged across workers ----------------------------------------------------------------

@pytest.mark.parametrize("per_image", [False, True])
def test_topk_merged_from_shuffled_worker_batches_equals_one_sorted_pass(per_image):
    """Small integer activations (many ties): per-batch candidates merged in a random order, as
    workers return them, equal the brute-force ranking (value desc, then stream position)."""
    from convlens.inspect.topk import TopActivations, batch_candidates, merge_candidates
    g = torch.Generator().manual_seed(0)
    N, C, H, W, k = 23, 5, 3, 4, 6
    a = torch.randint(0, 4, (N, C, H, W), generator=g).float()
    chans = [0, 2, 4]
    idx = torch.tensor(chans)
    batches = [list(range(i, min(N, i + 4))) for i in range(0, N, 4)]
    order = torch.randperm(len(batches), generator=g).tolist()
    st = TopActivations.empty("l", chans, k, per_image)
    for b in order:
        items = torch.tensor(batches[b])
        v, key, hw = batch_candidates(a[items], "l", idx, False, items, k, per_image)
        merge_candidates(st, v, key, hw, max(st.n_images, int(items.max()) + 1))
    assert st.n_images == N
    for r, c in enumerate(chans):
        if per_image:
            flat = a[:, c].reshape(N, -1)
            best = flat.argmax(1)  # first max in row-major order
            cand = [(float(flat[i, best[i]]), i * H * W + int(best[i])) for i in range(N)]
        else:
            cand = [(float(a[i, c].flatten()[p]), i * H * W + p) for i in range(N) for p in range(H * W)]
        want = sorted(cand, key=lambda t: (-t[0], t[1]))[:k]
        got = [(float(st.values[r, j]), int(st.image_index[r, j]) * H * W + int(st.positions[r, j, 0]) * W
                + int(st.positions[r, j, 1])) for j in range(k)]
        assert got == want


# --- the index ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vec_store(tmp_path_factory):
    v = synthetic_vectors(6000, 64, intrinsic=12, centres=60, seed=1)
    return EmbeddingStore.from_vectors(tmp_path_factory.mktemp("vs") / "s", v, shard_size=1500)


@pytest.mark.parametrize("kind", ["ivfpq", "ivf"])
def test_chunked_index_equals_one_shot_index(vec_store, tmp_path, kind):
    q = synthetic_vectors(50, 64, intrinsic=12, centres=60, seed=1, start=10 ** 6)
    a = build_index(vec_store, kind=kind, chunk_rows=700, save=False, threads=1, rerank=4)
    b = build_index(vec_store, kind=kind, chunk_rows=10 ** 6, save=False, threads=1, rerank=4)
    assert a.index.ntotal == b.index.ntotal == len(vec_store)
    assert a.params["effort"] == b.params["effort"] and a.recall_at_10 == b.recall_at_10
    ia, sa = a.search(q, 10)
    ib, sb = b.search(q, 10)
    assert np.array_equal(ia, ib) and np.array_equal(sa, sb)


def test_ivfpq_recall_reranked_scores_and_memory_map(vec_store):
    ann = build_index(vec_store, kind="ivfpq", threads=1, target_recall=0.95)
    assert ann.kind == "ivfpq" and ann.params["m"] == 8 and ann.recall_at_10 >= 0.95
    # the build-time figure holds on fresh outside queries
    q = synthetic_vectors(200, 64, intrinsic=12, centres=60, seed=1, start=10 ** 7)
    ex_i, ex_s = exact_search(vec_store, q, 10)
    ai, as_ = ann.search(q, 10)
    assert recall_at_k(ai, ex_i) >= 0.93
    # re-ranked scores are the exact cosines of the returned rows
    v = vec_store.take(ai[0])
    cos = v @ q[0] / np.linalg.norm(v, axis=1) / np.linalg.norm(q[0])
    np.testing.assert_allclose(as_[0], cos, atol=1e-5)
    assert np.all(np.diff(as_, axis=1) <= 1e-7)
    # memory-mapped at query time, same answers
    m = load_index(EmbeddingStore.open(vec_store.path))
    assert m.mmapped and m.params["effort"] == ann.params["effort"]
    mi, ms = m.search(q, 10)
    assert np.array_equal(mi, ai) and np.allclose(ms, as_)
    # mmap=False reads it into RAM (what update() needs: a mapped index is read-only)
    assert not load_index(EmbeddingStore.open(vec_store.path), mmap=False).mmapped


def test_l2_rerank_returns_distances(vec_store):
    ann = build_index(vec_store, "l2", kind="ivfpq", threads=1, save=False)
    q = vec_store.take([5, 17])
    i, d = ann.search(q + 0.01, 5)
    ref = np.linalg.norm(vec_store.take(i[0]) - (q[0] + 0.01), axis=1)
    np.testing.assert_allclose(d[0], ref, rtol=1e-5)
    assert list(i[:, 0]) == [5, 17]


def test_auto_kind_rule():
    gb = 1024 ** 3
    assert auto_kind(100_000, 512, ram=16 * gb) == "hnsw"       # measured: HNSW answers faster at 100k
    assert auto_kind(1_000_000, 512, ram=64 * gb) == "ivfpq"    # measured: IVF-PQ builds 6x faster at 1M
    assert auto_kind(200_000, 512, ram=1 * gb) == "ivfpq"       # 460 MB of HNSW > a quarter of 1 GB
    with pytest.raises(ConvlensError, match="choose auto, hnsw, ivf, ivfpq"):
        build_index(EmbeddingStore.__new__(EmbeddingStore), kind="lsh")


def test_index_and_neighbors_cli(vec_store, tmp_path, capsys):
    import shutil
    s = tmp_path / "s"
    shutil.copytree(vec_store.path, s)
    for f in s.glob("index-*"):
        f.unlink()
    assert run(["neighbors", str(s), "--index", "3", "--k", "5"]) == 0
    exact_out = capsys.readouterr().out
    assert "index, recall" not in exact_out
    assert run(["index", str(s), "--kind", "ivfpq", "--chunk-rows", "1000", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    rec = float(out.split("recall@10 ")[1].split()[0])
    assert "ivfpq index" in out and "6000 vectors" in out and rec >= 0.95
    assert run(["neighbors", str(s), "--index", "3", "--k", "5"]) == 0
    ann_out = capsys.readouterr().out
    assert "ivfpq index, recall@10" in ann_out
    assert run(["neighbors", str(s), "--index", "3", "--k", "5", "--exact"]) == 0
    assert capsys.readouterr().out == exact_out
    rows = lambda t: [ln.split()[1] for ln in t.splitlines() if ln.strip().startswith(("1 ", "2 "))]  # noqa: E731
    assert rows(ann_out) == rows(exact_out)  # the two nearest agree


# --- Ray plumbing without Ray -----------------------------------------------------------------------

class _FakeRay:
    def __init__(self, cpu, gpu=0):
        self.res = {"CPU": cpu, "GPU": gpu}

    def cluster_resources(self):
        return self.res


def test_actor_pool_plan():
    from convlens.scale.runtime import plan_pool
    assert (plan_pool(_FakeRay(2)).actors, plan_pool(_FakeRay(2)).threads) == (2, 1)
    p = plan_pool(_FakeRay(2), workers=1)
    assert (p.actors, p.threads, p.gpus) == (1, 2, 0)
    p = plan_pool(_FakeRay(16), threads=4)
    assert (p.actors, p.threads) == (4, 4)
    p = plan_pool(_FakeRay(8, gpu=2))
    assert (p.actors, p.threads, p.gpus) == (2, 4, 1.0)  # one model per GPU
    with pytest.raises(ConvlensError, match="need 6 CPUs but the Ray cluster has 2"):
        plan_pool(_FakeRay(2), workers=3, threads=2)


def test_missing_ray_extra_gives_the_install_hint(monkeypatch, tmp_path, capsys):
    real = builtins.__import__

    def no_ray(name, *a, **kw):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'", name="ray")
        return real(name, *a, **kw)
    monkeypatch.setattr(builtins, "__import__", no_ray)
    from convlens.scale.runtime import require_ray
    with pytest.raises(ConvlensError, match=r"pip install 'convlens\[ray\]'"):
        require_ray()
    (tmp_path / "imgs").mkdir()
    from PIL import Image
    Image.new("RGB", (32, 32)).save(tmp_path / "imgs" / "a.png")
    assert run(["embed", str(tmp_path / "imgs"), "--out", str(tmp_path / "s"), "--engine", "ray"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'convlens[ray]'" in err[0]


def test_engine_errors_are_one_line(tmp_path, capsys):
    assert run(["embed", "samples:4", "--out", str(tmp_path / "s"), "--engine", "spark"]) == 1
    assert "unknown engine 'spark'; use local or ray" in capsys.readouterr().err
    from convlens.scale.sources import list_files
    with pytest.raises(ConvlensError, match="the Ray engine reads image files"):
        list_files(torch.rand(2, 3, 8, 8))
    with pytest.raises(ConvlensError, match="no images"):
        (tmp_path / "empty").mkdir()
        list_files("file://" + str(tmp_path / "empty"))
