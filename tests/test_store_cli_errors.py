"""Bad values for every command of the embedding family (issue 19, items 4 and 12): each gives
one line on stderr naming the rule or the fix, a non-zero exit, no traceback, no raw Python
exception, and leaves no file behind (the whole temporary tree is compared before and after)."""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convlens.embed import EmbeddingStore


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-errors")
    rng = np.random.default_rng(0)
    thumbs = [Image.fromarray((rng.uniform(size=(16, 16, 3)) * 255).astype(np.uint8)) for _ in range(12)]
    EmbeddingStore.from_vectors(root / "s.emb", rng.normal(size=(12, 8)), thumbnails=thumbs,
                                paths=[f"/nowhere/{i}.png" for i in range(12)], info={"model": "mobilenet_v2"})
    EmbeddingStore.from_vectors(root / "two.emb", rng.normal(size=(2, 8)), thumbnails=thumbs[:2])
    EmbeddingStore.from_vectors(root / "one.emb", rng.normal(size=(1, 8)), thumbnails=thumbs[:1])
    EmbeddingStore.from_vectors(root / "bare.emb", rng.normal(size=(12, 8)))  # no thumbnails
    cut = EmbeddingStore.from_vectors(root / "cut.emb", rng.normal(size=(12, 8)), shard_size=6)
    f = cut.path / "vectors-00001.npy"
    f.write_bytes(f.read_bytes()[:-9])
    photos = root / "photos"
    photos.mkdir()
    for i in range(3):
        thumbs[i].save(photos / f"p{i}.png")
    user = root / "user"
    user.mkdir()
    (user / "report.json").write_text("{}")
    return root


S, P = "{root}/s.emb", "{root}/photos"
CASES = [  # (arguments, what the one line must say)
    (["embed", P, "--out", "{root}/new", "--batch-size", "0"], "batch_size (--batch-size) must be an integer >= 1"),
    (["embed", P, "--out", "{root}/new", "--shard-size", "0"], "shard_size"),
    (["embed", P, "--out", "{root}/new", "--workers", "-1"], "workers"),
    (["embed", P, "--out", "{root}/new", "--threads", "0"], "threads"),
    (["embed", P, "--out", "{root}/new", "--lanes", "0"], "lanes"),
    (["embed", P, "--out", "{root}/new", "--decoder", "gpu"], "decoder must be one of"),
    (["embed", P, "--out", "{root}/new", "--engine", "spark"], "unknown engine"),
    (["embed", "{root}/missing", "--out", "{root}/new"], "is not a folder"),
    (["embed", "samples:abc", "--out", "{root}/new"], "number of images must be an integer"),
    (["embed", "digits:0", "--out", "{root}/new"], "number of images must be an integer >= 1"),
    (["embed", "samples", "--n", "0", "--out", "{root}/new"], "number of images must be an integer >= 1"),
    (["embed", P, "--out", "{root}/user", "--weights", "none"], "not empty and not an embedding store"),
    (["embed", P, "--out", "{root}/user", "--weights", "none", "--overwrite"], "not empty and not an embedding store"),
    (["embed", P, "--out", "{root}/photos/p0.png", "--weights", "none"], "is a file"),
    (["embed", P, "--out", "{root}/new", "--weights", "none", "--dtype", "float64"], "dtype must be float32 or float16"),
    (["embed", P, "--out", "{root}/new", "--weights", "none", "--layer", "nosuch"], "nosuch"),
    (["embed", P, "--out", S, "--weights", "none"], "made differently"),
    (["neighbors", S, "--index", "0", "--k", "0"], "k (--k) must be an integer >= 1"),
    (["neighbors", S, "--index", "0", "--k", "-3"], "k (--k) must be an integer >= 1"),
    (["neighbors", S, "--index", "999"], "index 999 out of range"),
    (["neighbors", S, "--index", "-1"], "index -1 out of range"),
    (["neighbors", S, "--index", "0", "--metric", "hamming"], "unknown metric"),
    (["neighbors", S], "give --index N or --image FILE"),
    (["neighbors", S, "--image", "{root}/missing.png"], "made from vectors"),
    (["neighbors", S, "--index", "0", "--ann"], "no cosine index"),
    (["neighbors", S, "--index", "0", "--k", "abc"], "Invalid value for '--k'"),
    (["neighbors", "{root}/photos", "--index", "0"], "is not an embedding store"),
    (["neighbors", "{root}/one.emb", "--index", "0"], "no neighbours to find"),
    (["neighbors", "{root}/cut.emb", "--index", "0"], "vectors-00001.npy of store"),
    (["project", "{root}/two.emb", "--method", "umap"], "UMAP needs at least 5 vectors"),
    (["project", "{root}/two.emb", "--method", "tsne"], "t-SNE needs at least 4 vectors"),
    (["project", "{root}/one.emb", "--method", "pca"], "PCA needs at least 2 vectors"),
    (["project", S, "--method", "umap"], "pass --n-neighbors 11 or fewer"),
    (["project", S, "--method", "mds"], "unknown projection"),
    (["project", S, "--perplexity", "0"], "--perplexity must be greater than 0"),
    (["project", S, "--perplexity", "nan"], "perplexity"),
    (["project", S, "--n-iter", "-5"], "--n-iter must be at least 1"),
    (["project", S, "--method", "umap", "--n-neighbors", "1"], "n_neighbors (--n-neighbors) must be an integer >= 2"),
    (["project", S, "--metric", "manhattan"], "unknown metric"),
    (["project", S, "--method", "pca", "--tile", "0", "-o", "{root}/map.png"], "--tile must be"),
    (["project", S, "--method", "pca", "--csv", "{root}/coords.txt"], ".csv or .parquet"),
    (["project", "{root}/bare.emb", "--method", "pca", "-o", "{root}/map.png"], "no thumbnails"),
    (["project", "{root}/cut.emb", "--method", "pca"], "truncated"),
    (["export-projector", S, "{root}/user"], "not empty"),
    (["export-projector", S, "{root}/proj", "--max-points", "0"], "max_points (--max-points) must be"),
    (["export-projector", "{root}/bare.emb", "{root}/proj"], "--no-sprite"),
    (["export-projector", S, "{root}/photos/p1.png"], "is a file"),
    (["similar-why", S, "--index", "0", "--neighbor", "999", "-o", "{root}/why.png"], "--neighbor 999 out of range"),
    (["similar-why", S, "--index", "-1", "-o", "{root}/why.png"], "--index -1 out of range"),
    (["similar-why", S, "--index", "0", "--neighbor", "1", "--method", "lime", "-o", "{root}/why.png"], "unknown method"),
    (["index", S, "--kind", "annoy"], "unknown index kind"),
    (["index", S, "--metric", "dot"], "unknown metric"),
    (["index", S, "--target-recall", "0"], "target_recall (--target-recall) must be in (0, 1]"),
    (["index", S, "--kind", "ivf", "--nlist", "100000"], "nlist (--nlist) 100000 exceeds"),
    (["index", S, "--queries", "0"], "sample (--queries) must be an integer >= 1"),
    (["index", S, "--rerank", "0"], "rerank"),
    (["index", "{root}/one.emb"], "an index needs at least 2 vectors"),
    (["index", S, "--kind", "ivfpq", "--pq-m", "3"], "--pq-m 3 must divide the dimension 8"),
    (["duplicates", S, "--threshold", "2"], "threshold (--threshold) is a cosine similarity in [-1, 1]"),
    (["duplicates", "{root}/one.emb"], "at least 2 vectors"),
    (["verify", "{root}/photos"], "is not an embedding store"),
    (["verify", "{root}/cut.emb"], "vectors-00001.npy"),
]


def tree(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


@pytest.mark.filterwarnings("error")  # a warning would be a second line (and is turned into a raw exception here)
@pytest.mark.parametrize("args, says", CASES, ids=[" ".join(a[:2] + a[3:]).replace("{root}/", "") for a, _ in CASES])
def test_bad_value_is_one_line_and_leaves_nothing(place, capsys, monkeypatch, args, says):
    main = importlib.import_module("convlens.cli.main")
    if main.app.registered_commands:  # run() registers every command again on each call
        monkeypatch.setattr(main, "_register_all", lambda: None)
    run = main.run
    before = tree(place)
    capsys.readouterr()
    rc = run([a.format(root=place) for a in args])
    out = capsys.readouterr()
    lines = [ln for ln in out.err.splitlines() if ln.strip()]
    assert rc != 0
    assert len(lines) == 1, out.err
    assert lines[0].startswith("convlens: ") and "Traceback" not in out.err
    assert not re.search(r"error: [A-Z]\w*(Error|Exception|Warning):", lines[0]), f"a raw exception: {lines[0]}"
    assert says in lines[0], lines[0]
    assert "nan" not in out.out.lower()
    assert tree(place) == before, "a file was created, changed or deleted"
