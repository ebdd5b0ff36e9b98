"""The embedding store users open: ``EmbeddingStore``, the facade over ``embed/``.

The folder format, its guarantees and the read/write protocol are in ``vectors`` (``StoreReader``,
``MetadataReader``, ``StoreWriterProtocol``, implemented by ``VectorStore``; docs/embeddings.md, "What
the store guarantees" and "Store protocol"); this class adds the convenient methods that run the
algorithms below it (exact and FAISS search, the kNN graph, near duplicates). The algorithms take any
store with the protocol (a ``VectorStore``, an ``ArrayStore``, a new backend) and never import this
module, as openTSNE's ``TSNEEmbedding`` sits over its neighbour and affinity modules. Above it sits
only ``extract`` (which creates and returns it) and ``explain`` / ``words``.
"""
from __future__ import annotations

from .index import build_index
from .knn import knn_graph, near_duplicates
from .search import neighbors
# the format's names, importable from here as before
from .vectors import (IDENTITY, META_COLUMNS, STORE_FILE_PREFIXES, VERSION, ArrayStore,  # noqa: F401
                      MetadataReader, StoreReader, StoreReport, StoreWriterProtocol, VectorStore, _digest,
                      _file_digest, _meta_schema, as_torch, check_out_folder, digest, file_digest, fsync_write,
                      meta_schema, npy_bytes)
from .vectors import as_store as _as_array_or_store

_fsync_write, _npy_bytes = fsync_write, npy_bytes  # the old private names


class EmbeddingStore(VectorStore):
    """A folder of embedding vectors with metadata, opened read-only by default.

    ``EmbeddingStore.open(path)``; ``len(store)``; ``store.dim``; ``store.manifest``;
    ``store.vectors(i0, i1)`` rows as float32 (memory-mapped shards, copied only for the slice);
    ``store.blocks(rows)`` iterates (start, block, norms) with bounded memory;
    ``store.metadata()`` the Parquet table (pyarrow); ``store.neighbors(...)``, ``store.build_index()``,
    ``store.near_duplicates()``, ``store.knn_graph()`` (``embed/search.py``, ``index.py``, ``knn.py``).
    """

    def neighbors(self, query, k: int = 10, metric: str = "cosine", **kw):
        return neighbors(self, query, k=k, metric=metric, **kw)

    def build_index(self, **kw):
        return build_index(self, **kw)

    def knn_graph(self, k: int = 15, metric: str = "cosine", **kw):
        return knn_graph(self, k=k, metric=metric, **kw)

    def near_duplicates(self, threshold: float = 0.95, **kw):
        return near_duplicates(self, threshold=threshold, **kw)


def as_store(x):
    """An ``EmbeddingStore`` / ``ArrayStore`` as is; a path opens an ``EmbeddingStore``; an array wraps in ``ArrayStore``."""
    return _as_array_or_store(x, EmbeddingStore)
