"""Million-scale search, as it was importable from here: the FAISS code has one owner,
``convlens.embed.index`` (every kind, ``auto``, PQ shapes, mmap, re-ranking, ``build_large_index`` and
the benchmark's ``synthetic_vectors``); ``scale/`` keeps only the Ray engine. Its names stay
importable from here (``convlens.scale.build_large_index``...).
"""
# the FAISS index's names, importable from here as before
from ..embed.index import (AUTO_HNSW_MAX_ROWS, AUTO_HNSW_RAM_FRACTION, KINDS, auto_kind, build_index,  # noqa: F401
                           build_large_index, hnsw_bytes, ivfpq_index, mmap_flag, physical_memory, pq_shape, rerank,
                           synthetic_vectors)
