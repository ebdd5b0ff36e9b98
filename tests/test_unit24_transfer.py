"""EfficientNet-Lite0 offline (the second transfer judge): it reads the labelled ImageNet photos, and
``natural_evidence``'s default transfer asks both EfficientNet-Lites, each probability equal to that
model's own softmax computed independently."""
from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import convlens
from convlens.recipes.evidence import DEFAULT_TRANSFER
from helpers import tiny_convnet


def _foolbox_photos():
    import importlib.util
    root = Path(importlib.util.find_spec("foolbox").submodule_search_locations[0]) / "data"
    return sorted(root.glob("imagenet_*.jpg"))


@pytest.fixture(scope="module")
def lite0():
    return convlens.load_model("efficientnet_lite0")


def test_efficientnet_lite0_reads_the_labelled_photos(lite0):
    """Measured: 17/20 top-1 on foolbox's ImageNet photos (lite2 and MobileNetV2: 18/20); the cat and the coffee."""
    assert lite0.input_size == (224, 224) and len(lite0.classes) == 1000 and lite0.name == "efficientnet_lite0"
    files = _foolbox_photos()
    assert len(files) == 20
    labels = [int(re.search(r"imagenet_\d+_(\d+)", f.name).group(1)) for f in files]
    x = torch.cat([convlens.fit(convlens.load_image(f), 512) for f in files])
    pred = [p[0].index for p in convlens.predict(lite0, x, topk=1)]
    assert sum(i == t for i, t in zip(pred, labels)) >= 16
    (pc,), (pe,) = convlens.predict(lite0, convlens.sample_image("chelsea")), convlens.predict(lite0, convlens.sample_image("coffee"))
    assert pc[0].label == "Egyptian cat"                              # measured 0.39 (tiger cat 0.32)
    assert pe[0].label == "espresso" and pe[0].prob > 0.8             # measured 0.94


def test_default_transfer_asks_two_other_models(offline_model):
    """Two real photos stand in for visualizations of their classes: both judges read them as their class,
    with the probability each model's own softmax gives (computed here through ``predict``)."""
    assert DEFAULT_TRANSFER == ("efficientnet_lite2", "efficientnet_lite0")
    files = {int(re.search(r"imagenet_\d+_(\d+)", f.name).group(1)): f for f in _foolbox_photos()}
    classes = [949, 251]                                              # strawberry, dalmatian
    x = torch.cat([convlens.fit(convlens.load_image(files[c]), 224) for c in classes])
    viz = SimpleNamespace(images=x, labels=["strawberry", "dalmatian"], unit={"kind": "class", "index": classes})
    e = convlens.natural_evidence(offline_model, viz, "imagenet20", k=2)
    assert list(e.transfer) == list(DEFAULT_TRANSFER) == list(e.transfer_top1)
    for name in DEFAULT_TRANSFER:
        other = convlens.load_model(name)
        preds = convlens.predict(other, x, topk=1000)
        hand = [next(p.prob for p in preds[i] if p.index == c) for i, c in enumerate(classes)]
        assert e.transfer[name].tolist() == pytest.approx(hand, abs=1e-4), name
        assert e.transfer_top1[name].tolist() == [preds[i][0].index == c for i, c in enumerate(classes)]
        assert e.transfer_top1[name].all(), name                      # real photos transfer
    assert all(f"{n} p=" in e.text()[0] for n in DEFAULT_TRANSFER)


def test_a_model_is_never_its_own_transfer_judge(monkeypatch):
    import convlens.recipes.evidence as ev
    asked = []
    monkeypatch.setattr(ev, "transferability", lambda model, images, classes, others: (asked.append(list(others)), ({}, {}))[1])
    m = convlens.Model.wrap(tiny_convnet(), input_size=16, classes=["a", "b", "c"], name="efficientnet_lite2")
    viz = SimpleNamespace(images=torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)), labels=["a"],
                          unit={"kind": "class", "index": [0]})
    convlens.natural_evidence(m, viz, "samples:4", k=2)
    convlens.natural_evidence(m, viz, "samples:4", k=2,
                              transfer=("efficientnet_lite2",))
    assert asked == [["efficientnet_lite0"], ["efficientnet_lite2"]]        # an explicit list is taken as given
