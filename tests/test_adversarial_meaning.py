"""Meaning on the offline MobileNetV2: targeted fooling images, unrecognizable images, the deep mix,
and the CLI front door (one-line errors, fractions for eps)."""
from __future__ import annotations

import pytest
import torch

import convlens
from convlens.cli.main import run as cli

from helpers import Snapshot

IMAGES = ["chelsea", "coffee", "astronaut"]
CLASSES = ["goldfish", "ostrich", "toaster"]


@pytest.fixture(scope="module")
def photos(offline_model):
    return torch.cat([convlens.sample_image(n, offline_model.input_size) for n in IMAGES])


def _fool_and_check(model, photos, classes):
    snap = Snapshot(model.net)
    for cls in classes:
        r = convlens.fool(model, photos, cls, confidence=0.99, max_steps=40)
        t = model.class_index(cls)
        with torch.no_grad():
            p = model(r.images).softmax(-1)  # the plain model, not the folded twin
        assert (p.argmax(-1) == t).all() and (p[:, t] >= 0.99).all(), r.summary()
        assert torch.allclose(p[:, t], r.target_prob_after, atol=1e-4)
        assert float(r.linf.max()) < 4 / 255, r.summary()
        assert int(r.steps.max()) <= 40 and bool(r.fooled.all())
        assert float(r.images.min()) >= 0 and float(r.images.max()) <= 1
        print(f"\n{cls}:\n{r.summary()}")  # the figures (pytest -s shows them)
    snap.assert_unchanged()


def test_fool_one_image_three_classes(offline_model, photos):
    """Default run: one image, three classes (the slow test runs 3 x 3)."""
    _fool_and_check(offline_model, photos[:1], CLASSES)


@pytest.mark.slow
def test_fool_three_images_three_classes(offline_model, photos):
    _fool_and_check(offline_model, photos, CLASSES)


def test_fool_gradient_method(offline_model, photos):
    r = convlens.fool(offline_model, photos[:1], "goldfish", method="gradient", max_steps=40)
    assert bool(r.fooled.all()) and float(r.target_prob_after[0]) >= 0.99


def test_unrecognizable_reaches_996(offline_model):
    u = convlens.unrecognizable(offline_model, ["robin", "goldfish"], size=96, start="noise", steps=150)
    with torch.no_grad():
        p = offline_model(u.images).softmax(-1)
    idx = [offline_model.class_index(c) for c in ("robin", "goldfish")]
    assert (p[[0, 1], idx] >= 0.996).all(), u.labels
    assert u.labels[0].startswith("robin 99.")


def test_deep_mix_repeated_beats_one_portion(offline_model, photos):
    one = convlens.mix_gradient(offline_model, photos[:1], "goldfish", ["0", "2/255"])
    many = convlens.mix_gradient(offline_model, photos[:1], "goldfish", ["2/255"], repeats=6)
    assert one.probs_target[1] > 10 * one.probs_target[0]  # the template raises the class
    assert many.probs_target[0] > 0.9 and many.top1[0][0] == "goldfish"
    assert float((one.images[1] - photos[0]).abs().max()) <= 2 / 255 + 1e-6


def test_cli(tmp_path, capsys):
    out = tmp_path / "f.png"
    assert cli(["--threads", "1", "fgsm", "chelsea", "--eps", "2/255", "--target", "goldfish", "-o", str(out)]) == 0
    assert out.exists() and "target goldfish" in capsys.readouterr().out
    assert cli(["linear-demo"]) == 0
    text = capsys.readouterr().out
    assert "= 2" in text and "0.8808" in text and "150,528" in text
    for bad, msg in ((["fgsm", "chelsea", "--eps", "-1/255"], "outside [0, 1]"),
                     (["fgsm", "chelsea", "--eps", "2/25x"], "not a number"),
                     (["pgd", "chelsea", "--eps", "5"], "outside [0, 1]"),
                     (["fool", "chelsea", "--target", "goldfsh"], "unknown class 'goldfsh'")):
        assert cli(bad) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and msg in err, err


def test_universal_perturbation(offline_model):
    ds = convlens.sample_dataset(16, size=96).tensor()
    u = convlens.universal_perturbation(offline_model, ds[:8], "8/255", steps=6, held_out=ds[8:])
    assert float(u.delta.abs().max()) <= 8 / 255 + 1e-7 and u.delta.shape == (1, 3, 96, 96)
    with torch.no_grad():
        clean = offline_model(ds[:8]).argmax(-1)
        adv = offline_model((ds[:8] + u.delta).clamp(0, 1)).argmax(-1)
    assert u.fooling_rate == pytest.approx(float((adv != clean).float().mean()))
    assert u.fooling_rate >= 0.5 and u.held_out_rate is not None  # one change for all images
