"""Feature accentuation (Hamblin et al. 2024): starts at the seed, raises the target, and the
similarity constraint keeps the features (and the pixels) near the seed's."""
from __future__ import annotations

import pytest
import torch

import convlens
from convlens.recipes.accentuate import middle_layer
from helpers import Snapshot, tiny_convnet


@pytest.fixture
def tiny():
    return convlens.Model.wrap(tiny_convnet(), input_size=16, classes=["a", "b", "c"])


def _seed(n=16):
    return torch.rand(1, 3, n, n, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.1


def test_zero_learning_rate_returns_the_seed(tiny):
    a = convlens.accentuate(tiny, _seed(), "c", steps=3, lr=0.0)
    assert torch.allclose(a.image, a.seed, atol=2e-3)          # the parameterization starts at the photo
    assert a.prob_after == pytest.approx(a.prob_before, abs=1e-3) and a.distance < 1e-4


def test_accentuation_raises_the_target_and_the_constraint_holds_the_features(tiny):
    snap = Snapshot(tiny.net)
    kw = dict(steps=40, lr=0.05, reg_layer="1", transforms="none")   # transforms: see the MobileNet test
    free = convlens.accentuate(tiny, _seed(), "c", weight=0.0, **kw)
    held = convlens.accentuate(tiny, _seed(), "c", weight=5.0, **kw)
    assert free.logit_after > free.logit_before + 0.05
    assert held.logit_after > held.logit_before
    assert held.distance < 0.5 * free.distance
    assert middle_layer(tiny) in [li.name for li in tiny.layers()]
    with pytest.raises(convlens.ConvlensError, match="weight"):
        convlens.accentuate(tiny, _seed(), "c", weight=-1.0)
    with pytest.raises(convlens.ConvlensError):
        convlens.accentuate(tiny, _seed(), "nosuchclass")
    snap.assert_unchanged()


def test_a_photo_made_more_tiger_on_mobilenet(offline_model):
    m = offline_model
    a = convlens.accentuate(m, convlens.sample_image("chelsea"), "tiger", steps=24, size=128)
    assert a.prob_after > a.prob_before + 0.3, (a.prob_before, a.prob_after)
    assert float((a.image - a.seed).abs().mean()) < 0.05          # still the photo
    assert a.figure().size[0] > 0
