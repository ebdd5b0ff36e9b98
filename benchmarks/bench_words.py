"""Word neighbours over cnsyn's 129,691 Chinese words x 75: queries/s vs gensim's ``most_similar``.

Both rank the same float32 unit vectors (a gensim ``KeyedVectors`` built from our matrix); ours runs a
batch of queries as one matrix product (``words.neighbors``), gensim one query at a time, as its API
does. Target >= 1x. Alternated 3 times after a warm-up, the fastest of each.
"""
from __future__ import annotations

from .common import Row, alternated


def run(quick: bool = False) -> list[Row]:
    from gensim.models import KeyedVectors

    from convlens.embed import words
    wv = words.load_pretrained("zh")
    kv = KeyedVectors(wv.vectors.shape[1])
    kv.add_vectors(wv.keys, wv.vectors)
    kv.fill_norms()
    n = 50 if quick else 500
    queries = wv.keys[1000:1000 + n]
    ours, peer = alternated(lambda: words.neighbors(queries, wv, 10),
                            lambda: [kv.most_similar(q, topn=10) for q in queries], 3, stat="min")
    return [Row(f"word neighbours, top-10 over 129,691 x 75 ({n} queries)", n / ours, n / peer,
                "queries/s", "gensim most_similar", ">= 1x")]
