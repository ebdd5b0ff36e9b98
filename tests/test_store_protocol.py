"""The store protocol (embed/vectors.py: StoreReader, MetadataReader, StoreWriterProtocol) is what the
algorithms read: the folder store, the in-memory ArrayStore and a new backend written here as one
small class all give the same exact search, neighbours, kNN graph and PCA map as numpy."""
from __future__ import annotations

import numpy as np
import pytest

from convlens.embed import ArrayStore, EmbeddingStore, exact_search, knn_graph, project
from convlens.embed.search import neighbors
from convlens.embed.vectors import MetadataReader, StoreReader, StoreWriterProtocol, VectorStore, as_store


class ShardedArrays:
    """A new backend in one class: rows kept in uneven in-memory shards (a stand-in for a remote or
    database store); only the StoreReader members, nothing imported from the facade."""

    def __init__(self, parts):
        self.parts = [np.asarray(p, np.float32) for p in parts]
        self.manifest = {"metric": "cosine", "projections": {}}
        self.path = None
        self.saved = {}

    def __len__(self):
        return sum(len(p) for p in self.parts)

    @property
    def dim(self):
        return self.parts[0].shape[1]

    def blocks(self, rows=65536):
        start = 0
        for p in self.parts:
            for i in range(0, len(p), rows):
                b = p[i:i + rows]
                yield start + i, b, np.linalg.norm(b.astype(np.float64), axis=1).astype(np.float32)
            start += len(p)

    def vectors(self, start=0, stop=None):
        return np.concatenate(self.parts)[start:stop].copy()

    def take(self, indices):
        return np.concatenate(self.parts)[np.asarray(indices, np.int64)]

    def norms(self):
        return np.linalg.norm(np.concatenate(self.parts).astype(np.float64), axis=1).astype(np.float32)

    def save_array(self, name, array, info):
        self.saved[name] = array

    def load_array(self, name, info=None):
        return None


def _data(n=60, d=12, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def _numpy_knn(x, q, k, metric):
    if metric == "cosine":
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        s = qn @ xn.T
        i = np.argsort(-s, axis=1, kind="stable")[:, :k]
    else:
        s = np.sqrt(((q[:, None] - x[None]) ** 2).sum(-1))
        i = np.argsort(s, axis=1, kind="stable")[:, :k]
    return i, np.take_along_axis(s, i, 1)


def test_every_store_kind_implements_the_protocol(tmp_path):
    x = _data()
    folder = EmbeddingStore.from_vectors(tmp_path / "s", x, shard_size=25)
    for s in (folder, VectorStore.open(tmp_path / "s")):
        assert isinstance(s, StoreReader) and isinstance(s, MetadataReader) and isinstance(s, StoreWriterProtocol)
    arr = ArrayStore(x)
    assert isinstance(arr, StoreReader) and not isinstance(arr, StoreWriterProtocol)
    new = ShardedArrays([x[:7], x[7:40], x[40:]])
    assert isinstance(new, StoreReader) and not isinstance(new, MetadataReader)
    assert as_store(new) is new and isinstance(as_store(x), ArrayStore)  # an array is wrapped, a backend kept
    assert not isinstance(x, StoreReader)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_a_new_backend_in_one_class_answers_like_numpy_and_the_folder_store(tmp_path, metric):
    x = _data()
    q = _data(5, seed=1)
    new = ShardedArrays([x[:7], x[7:40], x[40:]])
    folder = EmbeddingStore.from_vectors(tmp_path / "s", x, shard_size=25)
    want_i, want_s = _numpy_knn(x, q, 4, metric)
    for store in (new, folder, ArrayStore(x)):
        i, s = exact_search(store, q, 4, metric, threads=1)
        np.testing.assert_array_equal(i, want_i)
        np.testing.assert_allclose(s, want_s, rtol=1e-5, atol=1e-5)
    nb = neighbors(new, [3, 50], k=3, metric=metric, threads=1)  # rows of the store, themselves excluded
    ref_i, _ = _numpy_knn(x, x[[3, 50]], 4, metric)
    np.testing.assert_array_equal(nb.indices, ref_i[:, 1:])
    gi, gs = knn_graph(new, k=3, metric=metric, threads=1)
    fi, fs = knn_graph(folder, k=3, metric=metric, threads=1, cache=False)
    np.testing.assert_array_equal(gi, fi)
    np.testing.assert_allclose(gs, fs, rtol=1e-5, atol=1e-6)


def test_pca_map_of_a_new_backend_equals_sklearn():
    from sklearn.decomposition import PCA
    x = _data(80, 10)
    p = project(ShardedArrays([x[:33], x[33:]]), "pca", metric="l2", threads=1)  # l2: no row normalization
    ref = PCA(2).fit_transform(x.astype(np.float64))
    for c in range(2):  # a principal axis is defined up to its sign
        sign = np.sign(np.dot(p.coords[:, c], ref[:, c]))
        np.testing.assert_allclose(sign * p.coords[:, c], ref[:, c], rtol=1e-3, atol=1e-3)


def test_reuse_metadata_only_when_the_shards_are_the_same(tmp_path):
    """The public replacement of web's ``store._meta = old._meta``: a reopened store takes the table
    already read only when its manifest lists the same shards."""
    x = _data(30, 4)
    EmbeddingStore.from_vectors(tmp_path / "s", x, paths=[f"p{i}" for i in range(30)], shard_size=10)
    old = EmbeddingStore.open(tmp_path / "s")
    new = EmbeddingStore.open(tmp_path / "s")
    assert not new.reuse_metadata(old)  # nothing read yet
    table = old.metadata()
    assert new.reuse_metadata(old) and new.metadata() is table and new.column("path")[29] == "p29"
    grown = EmbeddingStore.from_vectors(tmp_path / "t", _data(31, 4), shard_size=10)
    assert not grown.reuse_metadata(old)
