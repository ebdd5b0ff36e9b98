"""Concept discovery benchmark (issue 24).

Rows:
  * NMF of 1,000 crops' activations (MobileNetV2 features.18 after ReLU6, mean over positions: a
    (1000, 1280) matrix from random crops of GCompris's labelled photos), rank 10: our HALS in torch
    (``convlens.inspect.nmf``) against scikit-learn's ``NMF`` (coordinate descent, its default, same
    nndsvda initialization, tol 1e-4, at most 400 iterations) on the same float64 matrix, alternated
    runs, best of 3 (target: >= 1x at the same reconstruction error; the second row gives both errors).
    Quick mode: 256 crops.
"""
from __future__ import annotations

import numpy as np
import torch

from .common import Row, alternated


def _crop_matrix(n_crops: int) -> torch.Tensor:
    import convlens
    from convlens.inspect.concepts import _crop_batch, _layer_vectors, _random_crops
    m = convlens.load_model()
    photos = convlens.labelled_photos("gcompris")
    per = 16
    n_img = -(-n_crops // per)
    x = torch.cat([convlens.load_image(p, 224) for p in photos.paths[:: max(1, len(photos) // n_img)][:n_img]])
    boxes = _random_crops(x, per, 0.35, torch.Generator().manual_seed(0))[:n_crops]
    rows = [_layer_vectors(m, "features.18", _crop_batch(x, boxes[i:i + 32], (224, 224))).clamp(min=0).mean(1)
            for i in range(0, len(boxes), 32)]
    return torch.cat(rows).double()


def run(quick: bool) -> list[Row]:
    from sklearn.decomposition import NMF as SkNMF

    from convlens.inspect.nmf import nmf

    torch.set_num_threads(2)
    n = 256 if quick else 1000
    A = _crop_matrix(n)
    An = A.numpy()
    k = 10
    out = {}

    def ours():
        out["ours"] = nmf(A, k, iters=400, tol=1e-4)

    def peer():
        sk = SkNMF(k, init="nndsvda", solver="cd", tol=1e-4, max_iter=400)
        U = sk.fit_transform(An)
        out["sk"] = float(np.linalg.norm(An - U @ sk.components_) / np.linalg.norm(An))

    t_ours, t_sk = alternated(ours, peer, repeat=3, stat="min")
    e_ours, e_sk = out["ours"].error, out["sk"]
    shape = f"{tuple(A.shape)}, rank {k}"
    return [
        Row(f"NMF of {n} crops' activations {shape}", t_ours, t_sk, "s", "sklearn NMF (cd)", ">= 1x",
            higher_is_better=False, note=f"{out['ours'].iterations} HALS sweeps"),
        Row(f"NMF relative error ||A-UW||/||A|| {shape}", e_ours, e_sk, "", "sklearn NMF (cd)", "same (<= 1.01x)",
            higher_is_better=False),
    ]
