"""Checks of meaning on the offline MobileNetV2: t-SNE of digits, neighbours of crops, why-similar."""
from __future__ import annotations

import numpy as np
import torch

import convlens
from convlens.embed.extract import digits_images


def test_tsne_of_digits_through_the_cnn_is_trustworthy(offline_model, tmp_path):
    imgs, labels = digits_images(500, side=64)
    store = convlens.embed_images(offline_model, imgs, out=tmp_path / "d", labels=labels, size=64, threads=1)
    assert store.manifest["layer"] == "classifier.0" and store.dim == 1280
    p = convlens.project(store, "tsne", seed=0, reproducible=True)
    tw = convlens.trustworthiness(store, p.coords, k=5)
    assert tw >= 0.9, tw
    # reproducible mode: the same seed on one thread gives the same map
    q = convlens.project(store, "tsne", seed=0, reproducible=True, cache=False)
    np.testing.assert_array_equal(p.coords, q.coords)
    # the map keeps the classes as well as the features do (5-NN label accuracy; chance is 0.1;
    # ImageNet features of 8x8 digits reach ~0.7)
    from sklearn.neighbors import KNeighborsClassifier
    lab = np.array(labels)
    x = store.vectors() / store.norms()[:, None]
    acc_x = KNeighborsClassifier(5).fit(x[::2], lab[::2]).score(x[1::2], lab[1::2])
    acc = KNeighborsClassifier(5).fit(p.coords[::2], lab[::2]).score(p.coords[1::2], lab[1::2])
    assert acc_x > 0.5 and acc >= acc_x - 0.1, (acc, acc_x)


def test_feature_neighbours_find_the_same_photo_more_often_than_pixel_neighbours(offline_model, tmp_path):
    from convlens.embed import ArrayStore, exact_search
    from convlens.embed.maps import pixel_vectors
    ds = convlens.sample_dataset(120, size=128)
    store = convlens.embed_images(offline_model, ds, out=tmp_path / "s", size=128, threads=1)
    src = np.array([n.split()[0] for n in ds.names])
    rows = np.arange(len(src))
    feat = store.neighbors(list(rows), k=3).indices
    px = ArrayStore(pixel_vectors(store, 32))
    pix = exact_search(px, px.take(rows), 3, "l2", rows)[0]
    f_rate = float(np.mean(src[feat] == src[:, None]))
    p_rate = float(np.mean(src[pix] == src[:, None]))
    assert f_rate > 0.6 and f_rate > p_rate + 0.1, (f_rate, p_rate)


def test_why_similar_of_an_image_with_itself_lies_on_the_object(offline_model):
    m = offline_model
    cat = convlens.sample_image("chelsea", 224)
    canvas = torch.full((1, 3, 224, 448), 0.5)
    canvas[..., :224] = cat  # the cat on the left half, flat grey on the right
    w = convlens.why_similar(m, canvas, canvas, layer=None)
    a = w.a.upsampled()[0]
    assert torch.isfinite(a).all() and w.cosine > 0.9999
    pos = a.clamp_min(0)
    left = float(pos[:, :224].sum() / pos.sum())
    assert left > 0.8, left
    # Grad-CAM of the cosine at a pooled layer decomposes it exactly over positions
    assert abs(w.a.info["map_sum"] - w.a.info["objective"]) < 1e-4
    snap_ok = convlens.why_similar(m, cat, convlens.sample_image("coffee", 224))
    assert snap_ok.cosine < 0.9 and abs(snap_ok.a.info["map_sum"] - snap_ok.cosine) < 1e-4


def test_umap_of_the_digits_preserves_neighbourhoods_and_classes(tmp_path):
    # raw 8x8 digits (64-d pixels): umap-learn itself reaches trustworthiness@5 0.990 and 5-NN label
    # accuracy 0.987 on them (measured); ours runs it on the store's cached exact kNN graph
    from sklearn.datasets import load_digits
    from sklearn.manifold import trustworthiness
    from sklearn.neighbors import KNeighborsClassifier
    from convlens.embed import EmbeddingStore
    d = load_digits()
    x, lab = d.data.astype(np.float32), d.target
    store = EmbeddingStore.from_vectors(tmp_path / "digits", x)
    p = convlens.project(store, "umap", metric="l2", seed=0, threads=1)
    assert p.coords.shape == (len(x), 2) and np.isfinite(p.coords).all()
    assert trustworthiness(x, p.coords, n_neighbors=5) >= 0.97
    acc = KNeighborsClassifier(5).fit(p.coords[::2], lab[::2]).score(p.coords[1::2], lab[1::2])
    assert acc >= 0.95, acc
    assert any(k.startswith("knn-l2") for k in store.manifest["projections"])  # the graph it used, cached
    # the same seed gives the same map (a fresh computation, not the saved one)
    q = convlens.project(store, "umap", metric="l2", seed=0, threads=1, cache=False)
    np.testing.assert_array_equal(p.coords, q.coords)
    # cosine (the stores' default metric): unit vectors, still a faithful map
    c = convlens.project(store, "umap", seed=0, threads=1)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert trustworthiness(xn, c.coords, n_neighbors=5) >= 0.97
