"""Adversarial family: the lecture's linear walkthrough, FGSM / PGD against torchattacks (float64),
eps parsing and errors, the caller's model untouched, the robustness report, weight mixing."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision

import convlens
from convlens.adversarial.base import parse_eps, parse_eps_list
from convlens.errors import ConvlensError
from convlens.models.imagenet import IMAGENET_MEAN, IMAGENET_STD

from helpers import Snapshot, tiny_convnet


# --- the linear walkthrough ------------------------------------------------------------------------------
def test_linear_walkthrough_lecture_numbers():
    w = convlens.linear_walkthrough()
    assert w.x_adv.tolist() == [1.5, -1.5, 3.5, -2.5, 2.5, 1.5, 1.5, -3.5, 4.5, 1.5]
    assert abs(w.score - (-3)) < 1e-4 and abs(w.p - 0.0474) < 1e-4
    assert abs(w.score_adv - 2) < 1e-4 and abs(w.p_adv - 0.8808) < 1e-4
    assert w.p == pytest.approx(1 / (1 + math.exp(3))) and w.p_adv == pytest.approx(1 / (1 + math.exp(-2)))
    text = w.text()
    # every one of the ten terms of the second sum, including the +2.5 the slide drops
    assert "-1.5 + 1.5 + 3.5 + 2.5 + 2.5 - 1.5 + 1.5 - 3.5 - 4.5 + 1.5 = 2" in text
    assert "-2 + 1 + 3 + 2 + 2 - 2 + 1 - 4 - 5 + 1 = -3" in text
    assert "1/(1+e^3) = 0.0474" in text and "1/(1+e^-2) = 0.8808" in text
    assert sum("slide" in line for line in text.splitlines()) == 1  # the one-line correction


def test_linear_walkthrough_other_numbers_and_errors():
    w = convlens.linear_walkthrough([1, 2], [3, -4], b=1.0, eps=0.25)
    assert w.x_adv.tolist() == [1.25, 1.75] and w.score == pytest.approx(3 - 8 + 1)
    assert w.score_adv == pytest.approx(w.score + 0.25 * 7)  # eps * ||w||_1
    assert "slide" not in w.text()
    with pytest.raises(ConvlensError):
        convlens.linear_walkthrough([1, 2, 3], [1, 2])


def test_dimension_study_is_3_over_l1_norm():
    d = convlens.dimension_study(dims=(10, 1000), seeds=2)
    assert d.eps_sign == pytest.approx([0.3, 0.003])          # w = +-1: ||w||_1 = d
    assert d.eps_sign_088 == pytest.approx([0.5, 0.005])      # the lecture's eps for d = 10
    want = []
    for seed in range(2):  # the same draws, by hand: x, then w = +-1, then w ~ N(0, 1/d)
        rng = np.random.default_rng(seed)
        rng.normal(size=10)
        rng.choice([-1.0, 1.0], size=10)
        want.append(3 / np.abs(rng.normal(size=10) / math.sqrt(10)).sum())
    assert d.eps_gauss[0] == pytest.approx(np.mean(want))
    assert d.eps_gauss[1] < d.eps_gauss[0] / 5                 # ~ 1/sqrt(d)


# --- eps parsing and errors -------------------------------------------------------------------------------
def test_parse_eps():
    assert parse_eps("2/255") == pytest.approx(2 / 255)
    assert parse_eps(" 0.5 ") == 0.5 and parse_eps(0) == 0.0 and parse_eps("1e-3") == 1e-3
    assert parse_eps_list("0,1/255, 2/255") == pytest.approx([0, 1 / 255, 2 / 255])
    assert parse_eps("3", unit=False) == 3.0
    for bad in ("-1/255", "-0.1", "2", "abc", "1/0x", "", "nan", "1/0", "0/0"):
        with pytest.raises(ConvlensError) as e:
            parse_eps(bad)
        assert "\n" not in str(e.value)


# --- torchattacks parity (float64, seeded resnet18 with its normalization) --------------------------------
@pytest.fixture(scope="module")
def resnet64():
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None)
    g = torch.Generator().manual_seed(1)
    for m in net.modules():  # non-trivial batch-norm statistics, so folding them matters
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
            m.weight.data.copy_(0.5 + torch.rand(m.num_features, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(m.num_features, generator=g))
    net.eval()
    snap = Snapshot(net)
    model = convlens.Model.wrap(net, input_size=64).double()  # float64 wrapper (see the brief: buffers)
    ref = torch.nn.Sequential(torchvision.transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
                              __import__("copy").deepcopy(net).double()).eval()
    x = torch.rand(2, 3, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    return model, ref, x, snap


def _check_bounds(r, x, eps, norm):
    assert float(r.images.min()) >= 0 and float(r.images.max()) <= 1
    if norm == "inf":
        assert float(r.linf.max()) <= eps + 1e-12
    else:
        assert float(r.l2.max()) <= eps + 1e-9


def test_fgsm_equals_torchattacks(resnet64):
    import torchattacks
    model, ref, x, snap = resnet64
    lab = model(x).argmax(-1)
    for eps in (8 / 255,):
        r = convlens.fgsm(model, x, eps)
        a = torchattacks.FGSM(ref, eps=eps)(x, lab)
        assert float((r.images - a).abs().max()) < 1e-6
        _check_bounds(r, x, eps, "inf")
        assert torch.equal(r.label, lab)
    tgt = torch.tensor([1, 2])
    r = convlens.fgsm(model, x, 8 / 255, target=tgt)
    atk = torchattacks.FGSM(ref, eps=8 / 255)
    atk.set_mode_targeted_by_label(quiet=True)
    assert float((r.images - atk(x, tgt)).abs().max()) < 1e-6
    snap.assert_unchanged()


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_pgd_equals_torchattacks(resnet64, norm):
    import torchattacks
    model, ref, x, snap = resnet64
    lab = model(x).argmax(-1)
    eps, step = (8 / 255, 2 / 255) if norm == "inf" else (0.5, 0.1)
    cls = torchattacks.PGD if norm == "inf" else torchattacks.PGDL2
    for target in (None, torch.tensor([5, 6])):
        r = convlens.pgd(model, x, eps, step=step, steps=3, norm=norm, random_start=False, early_stop=False,
                         target=target)
        atk = cls(ref, eps=eps, alpha=step, steps=3, random_start=False)
        if target is not None:
            atk.set_mode_targeted_by_label(quiet=True)
        a = atk(x, lab if target is None else target)
        assert float((r.images - a).abs().max()) < 1e-6
        _check_bounds(r, x, eps, norm)
        assert r.steps.tolist() == [3, 3]
    snap.assert_unchanged()


def test_pgd_early_stop_matches_the_full_run_until_fooled():
    """An image that is fooled leaves the batch: its result is the full run's image at that step."""
    torch.manual_seed(0)
    m = convlens.Model.wrap(tiny_convnet(classes=4), input_size=16).double()
    x = torch.rand(6, 3, 16, 16, dtype=torch.float64)
    es = convlens.pgd(m, x, 0.3, step=0.02, steps=20, random_start=False, early_stop=True)
    assert int(es.fooled.sum()) >= 3 and int(es.steps.min()) < 20
    for i in range(6):  # rerun image i alone for exactly its step count, without early stopping
        k = int(es.steps[i])
        ref = convlens.pgd(m, x[i:i + 1], 0.3, step=0.02, steps=max(k, 1), random_start=False, early_stop=False,
                           label=es.label[i:i + 1])
        want = ref.images if k > 0 else x[i:i + 1]
        assert torch.allclose(es.images[i:i + 1], want, atol=1e-12)
        assert bool(es.pred_after[i] != es.label[i]) == bool(es.fooled[i])
        assert bool(es.fooled[i]) or k == 20


def test_ctrl_c_keeps_the_steps_done():
    m = convlens.Model.wrap(tiny_convnet(), input_size=16)
    x = torch.rand(2, 3, 16, 16)

    def stop_after_two(done, total):
        if done == 2:
            raise KeyboardInterrupt
    r = convlens.pgd(m, x, 0.2, step=0.01, steps=10, random_start=False, early_stop=False, progress=stop_after_two)
    full2 = convlens.pgd(m, x, 0.2, step=0.01, steps=2, random_start=False, early_stop=False)
    assert r.info["interrupted"] and r.steps.tolist() == [2, 2]
    assert torch.allclose(r.images, full2.images)


def test_random_start_is_seeded_and_inside_the_ball():
    m = convlens.Model.wrap(tiny_convnet(), input_size=16)
    x = torch.rand(2, 3, 16, 16)
    a = convlens.pgd(m, x, "4/255", steps=2, seed=3, early_stop=False)
    b = convlens.pgd(m, x, "4/255", steps=2, seed=3, early_stop=False)
    c = convlens.pgd(m, x, "4/255", steps=2, seed=4, early_stop=False)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert float(a.linf.max()) <= 4 / 255 + 1e-6
    l2 = convlens.pgd(m, x, 0.3, norm="2", steps=2, seed=3, early_stop=False)
    assert float(l2.l2.max()) <= 0.3 + 1e-5


def test_errors_are_one_line():
    m = convlens.Model.wrap(tiny_convnet(), input_size=16, classes=["cat", "dog", "fox"])
    x = torch.rand(1, 3, 16, 16)
    cases = [lambda: convlens.fgsm(m, x, -0.1), lambda: convlens.fgsm(m, x, 2.0), lambda: convlens.fgsm(m, x, "two"),
             lambda: convlens.fgsm(m, x, 0.1, target="goldfish"), lambda: convlens.pgd(m, x, 0.1, norm="1"),
             lambda: convlens.fool(m, x, "wolf"), lambda: convlens.fgsm(m, x, 0.1, label="cat", target="dog"),
             lambda: convlens.pgd(m, x, "1/255", steps=0)]
    for case in cases:
        with pytest.raises(ConvlensError) as e:
            case()
        assert "\n" not in str(e.value)
    with pytest.raises(ConvlensError, match="closest"):
        convlens.fgsm(m, x, 0.1, target="do")


def test_result_summary_and_render():
    m = convlens.Model.wrap(tiny_convnet(), input_size=16, classes=["cat", "dog", "fox"])
    x = torch.rand(2, 3, 16, 16)
    r = convlens.fgsm(m, x, "8/255", target="fox")
    assert r.target.tolist() == [2, 2] and r.label is None
    with torch.no_grad():
        p = m(r.images).softmax(-1)
    assert torch.allclose(r.prob_after, p.max(-1).values, atol=1e-5)
    assert torch.allclose(r.target_prob_after, p[:, 2], atol=1e-5)
    assert torch.allclose(r.perturbation, r.images - x)
    assert torch.allclose(r.linf, (r.images - x).flatten(1).abs().amax(1))
    assert "target fox" in r.summary()
    img = r.render(0, height=64)
    assert img.width > 4 * 64


def test_after_values_are_the_attacked_models_and_computed_once():
    """The forward pass for the "after" values runs when they are first read, through the model as attacked."""
    torch.manual_seed(0)
    m = convlens.Model.wrap(tiny_convnet(classes=4), input_size=16)
    x = torch.rand(3, 3, 16, 16)
    for r in (convlens.fgsm(m, x, 0.2), convlens.pgd(m, x, 0.2, steps=3, early_stop=False)):
        assert callable(r.after)  # nothing ran yet for images that did not stop early
        with torch.no_grad():
            want = m(r.images)
        with torch.no_grad():  # the caller changes the model afterwards: the result does not follow
            for q in m.parameters():
                q.add_(1.0)
        assert torch.allclose(r.adv_logits, want, atol=1e-5) and not callable(r.after)
        assert torch.equal(r.pred_after, want.argmax(-1))
        assert torch.equal(r.fooled, want.argmax(-1) != r.label)
        with torch.no_grad():
            for q in m.parameters():
                q.sub_(1.0)


def test_twin_built_inside_inference_mode_still_gives_gradients():
    """batched_forward builds the shared folded twin inside inference_mode; the attacks reuse it."""
    from convlens.drivers.forward import inference_twin
    m = convlens.Model.wrap(tiny_convnet(classes=4), input_size=16)
    x = torch.rand(2, 3, 16, 16)
    with torch.inference_mode():
        inference_twin(m)
    ours = convlens.fgsm(m, x, 0.1)
    m2 = convlens.Model.wrap(tiny_convnet(classes=4), input_size=16)
    m2.load_state_dict(m.state_dict())
    assert torch.equal(ours.images, convlens.fgsm(m2, x, 0.1).images)


# --- robustness -----------------------------------------------------------------------------------------------
def test_robustness_counts_agreement():
    torch.manual_seed(0)
    m = convlens.Model.wrap(tiny_convnet(classes=4), input_size=16)
    x = torch.rand(10, 3, 16, 16)
    r = convlens.robustness(m, x, "0,0.05,0.3", attack="fgsm", batch_size=4)
    assert r.accuracy[0] == 1.0 and r.fooling_rate[0] == 0.0
    clean = m(x).argmax(-1)
    adv = convlens.fgsm(m, x, 0.3).images
    want = float((m(adv).argmax(-1) == clean).float().mean())
    assert r.accuracy[2] == pytest.approx(want)
    assert r.fooling_rate[2] == pytest.approx(1 - want)
    p = convlens.robustness(m, x, [0.3], attack="pgd", steps=5)
    assert p.fooling_rate[0] >= r.fooling_rate[2] - 1e-9  # iterating is at least as strong here
    assert "fooling rate" in r.text()
    assert r.plot(others=[p]).width > 100


# --- weight mixing (linear) ------------------------------------------------------------------------------------
def test_linear_digits_and_mixing():
    clf = convlens.train_linear_digits()
    assert clf.test_accuracy > 0.93
    X = clf.x_test
    # the classifier is linear softmax: probabilities from W, b by hand
    p = torch.softmax(X[:5] @ clf.W.T + clf.b, -1)
    assert torch.allclose(clf.probs(X[:5]), p)
    src = int(clf.y_test[0])
    tgt = (src + 3) % 10
    m = convlens.mix_linear(clf, X[0], tgt, confidence=0.9)
    assert m.probs_after[tgt] >= 0.9 - 1e-9 and m.probs_before[tgt] < 0.5
    w = clf.W[tgt] / clf.W[tgt].abs().max()
    assert torch.allclose(m.mixed, (X[0] + m.alpha * w).clamp(0, 1))
    smaller = convlens.mix_linear(clf, X[0], tgt, alpha=m.alpha * 0.98)
    assert smaller.probs_after[tgt] < 0.9  # alpha is the smallest that reaches 0.9
