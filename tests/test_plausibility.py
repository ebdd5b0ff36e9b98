"""Natural evidence beside a visualization: exemplars, plausibility (cosine similarity in the model's
representation, checked against a hand computation) and its ranking on the offline MobileNetV2."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import convlens
from convlens.recipes.evidence import penultimate_layer, plausibility, pooled_features
from helpers import tiny_convnet


def test_plausibility_is_the_mean_cosine_of_pooled_features():
    m = convlens.Model.wrap(tiny_convnet(), input_size=16, classes=["a", "b", "c"])
    g = torch.Generator().manual_seed(0)
    imgs, ex = torch.rand(2, 3, 16, 16, generator=g), torch.rand(3, 3, 16, 16, generator=g)
    assert penultimate_layer(m) == "5"                     # the last (C, H, W) output: the GAP, (6, 1, 1)
    s, ref = plausibility(m, imgs, ex)
    fi = pooled_features(m, imgs, "4")
    fe = pooled_features(m, ex, "4")
    cos = torch.tensor([[float(F.cosine_similarity(fi[i], fe[j], dim=0)) for j in range(3)] for i in range(2)])
    assert s.tolist() == pytest.approx(cos.mean(1).tolist(), abs=1e-6)
    pairs = [float(F.cosine_similarity(fe[a], fe[b], dim=0)) for a in range(3) for b in range(3) if a != b]
    assert ref == pytest.approx(sum(pairs) / 6, abs=1e-6)
    with pytest.raises(convlens.ConvlensError, match="at least 2"):
        plausibility(m, imgs, ex[:1])


def test_pooled_features_are_the_layers_spatial_mean(offline_model):
    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    a = convlens.layer_activations(offline_model, x, "features.6")
    assert torch.allclose(pooled_features(offline_model, x, "features.6"), a.mean((2, 3)), atol=1e-5)


def test_plausibility_ranks_a_visualization_above_noise_and_another_class(offline_model):
    """Strawberry's exemplars (the top-4 of foolbox's 20 ImageNet photos by the strawberry logit): the
    strawberry visualization is closer to them than uniform noise and than a jeep visualization."""
    m = offline_model
    v = convlens.visualize_class(m, ["strawberry", "jeep"], size=96, steps=48)
    e = v.evidence(m, "imagenet20", k=4, transfer=())
    assert e.exemplar_names[0][0].endswith("_949.jpg")   # the strawberry photo is its class's top exemplar
    assert e.exemplar_names[1][0].endswith("_609.jpg")   # a jeep photo is the jeep's
    strawberry, jeep = e.plausibility.tolist()
    assert strawberry > e.noise[0] + 0.1
    # the jeep visualization scored against the strawberry exemplars:
    s, _ = plausibility(m, v.images[1:], e.exemplars[0], e.layer)
    assert strawberry > float(s[0]) + 0.05
    assert e.figure().size[0] > 0 and len(e.text()) == 2
