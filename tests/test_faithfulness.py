"""Deletion and insertion curves (Petsiuk et al. 2018), checked by hand on a linear model (issue 22, first part)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import convlens
from helpers import linear_classifier
from convlens.errors import ConvlensError
from convlens.faithfulness import PerturbationCurveConfig, deletion, insertion, pixel_ranks


@pytest.fixture(scope="module")
def linear():
    """A float64 linear classifier on 3x6x6 images (identity normalization), its weights, and two images."""
    return linear_classifier()


def hand_curve(x, w, b, cls, map_, steps, kind):
    """The logit curve written out pixel by pixel: sort by the map (stable), change the first n_k pixels."""
    H, W = map_.shape
    order = sorted(range(H * W), key=lambda p: -float(map_.flatten()[p]))   # Python's sort is stable
    out = []
    for k in range(steps + 1):
        n = int(np.rint(k * H * W / steps))
        img = x.clone() if kind == "deletion" else torch.zeros_like(x)
        for p in order[:n]:
            img[:, p // W, p % W] = 0.0 if kind == "deletion" else x[:, p // W, p % W]
        out.append(float((w[cls] * img).sum() + b[cls]))
    return np.array(out)


@pytest.mark.parametrize("kind", ["deletion", "insertion"])
def test_curves_equal_the_hand_computation(linear, kind):
    m, x, w, b = linear
    maps = torch.rand(2, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    fn = deletion if kind == "deletion" else insertion
    r = fn(m, x, maps, target=1, steps=9, score="logit", baseline="zero", batch_size=7)
    for i in range(2):
        want = hand_curve(x[i], w, b, 1, maps[i], 9, kind)
        assert np.allclose(r.scores[i].numpy(), want, atol=1e-12)
        fr = np.rint(np.arange(10) * 36 / 9) / 36
        auc = np.trapezoid(want, fr) if hasattr(np, "trapezoid") else np.trapz(want, fr)
        assert float(r.auc[i]) == pytest.approx(auc, abs=1e-12)
        full = want[0] if kind == "deletion" else want[-1]
        assert float(r.normalized_auc[i]) == pytest.approx(auc / full, abs=1e-12)
    assert r.fractions[0] == 0 and r.fractions[-1] == 1


def test_the_exact_contribution_map_wins_against_a_random_map(linear):
    """On a linear model with a zero baseline, ranking pixels by their contribution w.x (summed over
    channels) is the optimal deletion order: its AUC is below every other order's, a random map's too;
    and insertion mirrors it."""
    m, x, w, b = linear
    contrib = (w[0] * x).sum(1)                                  # (N, H, W): gradient x input for class 0
    rand = torch.rand(2, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    kw = dict(target=0, steps=36, score="logit", baseline="zero")
    d_exact, d_rand = deletion(m, x, contrib, **kw), deletion(m, x, rand, **kw)
    i_exact, i_rand = insertion(m, x, contrib, **kw), insertion(m, x, rand, **kw)
    assert (d_exact.auc < d_rand.auc).all() and (i_exact.auc > i_rand.auc).all()
    # LeRF reverses it: the least relevant first keeps the score high longest
    assert (deletion(m, x, contrib, order="lerf", **kw).auc > d_exact.auc).all()


def test_pixel_ranks_are_a_stable_order():
    ranks = pixel_ranks(torch.zeros(1, 2, 3))
    assert ranks.tolist() == [[[0, 1, 2], [3, 4, 5]]]           # a constant map: row-major
    ranks = pixel_ranks(torch.tensor([[[0.1, 0.9], [0.5, 0.9]]]))
    assert ranks.tolist() == [[[3, 0], [2, 1]]]                 # ties keep row-major order
    assert pixel_ranks(torch.tensor([[[0.1, 0.9], [0.5, 0.9]]]), "lerf").tolist() == [[[0, 2], [1, 3]]]


def test_on_the_offline_model_the_probability_falls_and_rises(offline_model, cat):
    """MobileNetV2 and Grad-CAM on the cat: deleting the top pixels lowers the cat's probability, inserting
    them into the blur raises it (the curve's ends are the image and the baseline)."""
    cam = convlens.grad_cam(offline_model, cat)
    d = deletion(offline_model, cat, cam, steps=8)
    i = insertion(offline_model, cat, cam, steps=8)
    p = float(offline_model(cat).softmax(-1)[0, cam.target[0]])
    assert float(d.scores[0, 0]) == pytest.approx(p, rel=1e-4) and float(i.scores[0, -1]) == pytest.approx(p, rel=1e-4)
    assert float(d.scores[0, -1]) < 0.05 * p and float(d.auc[0]) < float(i.auc[0])
    img = np.asarray(d.plot([i], ["deletion", "insertion"]))
    assert img.ndim == 3 and img.std() > 10


def test_bad_parameters_are_refused(linear):
    m, x, _, _ = linear
    maps = torch.rand(2, 6, 6, dtype=torch.float64)
    with pytest.raises(ConvlensError, match="steps must be at least 1"):
        deletion(m, x, maps, steps=0)
    with pytest.raises(ConvlensError, match="baseline must be one of blur, zero, grey, mean"):
        insertion(m, x, maps, baseline="black")
    with pytest.raises(ConvlensError, match="unknown parameter 'step' for PerturbationCurveConfig"):
        deletion(m, x, maps, step=3)
    assert PerturbationCurveConfig().steps == 50


# --- maps alone and against a mask: each against its formula on a hand-sized case ---------------------

def test_sparseness_and_complexity_by_hand():
    from convlens.faithfulness import complexity, sparseness
    flat, one = torch.ones(1, 2, 2), torch.tensor([[[0.0, 0.0], [0.0, 5.0]]])
    a = np.sort(np.abs(np.array([3.0, -1.0, 0.0, 2.0]))) + 1e-7           # Gini written out
    n = 4
    gini = sum((2 * (i + 1) - n - 1) * a[i] for i in range(n)) / (n * a.sum())
    assert float(sparseness(torch.tensor([[[3.0, -1.0], [0.0, 2.0]]]))) == pytest.approx(gini, abs=1e-12)
    assert float(sparseness(flat)) == pytest.approx(0.0, abs=1e-12)
    assert float(sparseness(one)) == pytest.approx(0.75, abs=1e-6)          # (n - 1) / n for one pixel
    assert float(complexity(flat)) == pytest.approx(np.log(4), abs=1e-12)
    assert float(complexity(one)) == 0.0
    p = np.array([3.0, 1.0, 0.0, 2.0]) / 6
    assert float(complexity(torch.tensor([[[3.0, -1.0], [0.0, 2.0]]]))) == pytest.approx(
        -sum(q * np.log(q) for q in p if q > 0), abs=1e-12)
    with pytest.raises(ConvlensError, match="all-zero map"):
        complexity(torch.zeros(1, 2, 2))


def test_localisation_by_hand():
    from convlens.faithfulness import pointing_game, relevance_mass, relevance_rank
    maps = torch.tensor([[[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.0, 0.0, -0.5]],
                         [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
    mask = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=torch.bool)
    assert pointing_game(maps, mask).tolist() == [1.0, 0.0]
    assert relevance_mass(maps, mask).tolist() == pytest.approx([1.7 / 2.5, 0.0])
    # K = 2 mask pixels; image 0's two highest |values| are 0.9 and 0.8 (both inside); image 1's are 1.0
    # (outside) and, among the tied zeros, the first row-major one (0, 0), which is inside: 1/2
    assert relevance_rank(maps, mask).tolist() == pytest.approx([1.0, 0.5])
    with pytest.raises(ConvlensError, match="empty object mask"):
        pointing_game(maps, torch.zeros(3, 3, dtype=torch.bool))
    with pytest.raises(ConvlensError, match="does not match"):
        relevance_mass(maps, torch.ones(2, 2, dtype=torch.bool))


def test_random_and_edge_baselines():
    from convlens.faithfulness import edge_map, random_map
    x = torch.zeros(1, 3, 5, 6)
    x[..., 3:] = 1.0                                   # a vertical step between columns 2 and 3
    e = edge_map(x)
    assert e.shape == (1, 5, 6) and float(e[0, 2, 0]) == 0 and float(e[0, 2, 5]) == pytest.approx(0, abs=1e-12)
    assert float(e[0, 2, 2]) == pytest.approx(4.0) and float(e[0, 2, 3]) == pytest.approx(4.0)   # Sobel: 1+2+1
    r1, r2 = random_map(x, seed=1), random_map(x, seed=1)
    assert torch.equal(r1, r2) and not torch.equal(r1, random_map(x, seed=2)) and r1.shape == (1, 5, 6)


def test_grabcut_mask_and_grad_cam_on_the_offline_model(offline_model, cat):
    """Grad-CAM points inside the GrabCut object mask of the cat, and holds more of its mass there than
    a random map does, whose share is the mask's area (measured: 0.308 vs 0.267, mask 26.8 % of pixels)."""
    from convlens.faithfulness import pointing_game, random_map, relevance_mass
    cam = convlens.grad_cam(offline_model, cat)
    cut, _ = convlens.attribution.grabcut_from_saliency(offline_model, cat)
    area = float(cut.mask.double().mean())
    assert float(pointing_game(cam, cut.mask)) == 1.0
    assert float(relevance_mass(cam, cut.mask)) > float(relevance_mass(random_map(cat), cut.mask)) + 0.02
    assert abs(float(relevance_mass(random_map(cat), cut.mask)) - area) < 0.02


# --- parity with Quantus (installed by scripts/setup) ---------------------------------------------

def test_map_metrics_equal_quantus():
    """Each metric equals Quantus 0.6 on the same maps and masks (to 1e-12; complexity 1e-9), with Quantus's ``abs=True,
    normalise=False`` (convlens scores |map|). Where Quantus's defaults differ, the docs say why:
    its relevance mass uses the signed map (shares above 1 happen: 1.39 and 1.83 on these maps), and
    its sparseness divides by the maximum before adding 1e-7 (a 1e-7 difference)."""
    quantus = pytest.importorskip("quantus")
    from convlens.faithfulness import complexity, pointing_game, relevance_mass, relevance_rank, sparseness
    rng = np.random.default_rng(0)
    x = rng.random((3, 3, 8, 8))
    a = rng.standard_normal((3, 1, 8, 8))
    s = np.zeros((3, 1, 8, 8), bool)
    s[:, :, 2:5, 3:7] = True

    class Zero(nn.Module):
        def forward(self, z):
            return torch.zeros(z.shape[0], 2)

    def q(metric):
        return np.array(metric(model=Zero(), x_batch=x, y_batch=np.zeros(3, int), a_batch=a, s_batch=s,
                               device="cpu"), dtype=np.float64)
    kw = dict(abs=True, normalise=False, disable_warnings=True)
    maps, mask = torch.tensor(a), torch.tensor(s[:, 0])
    assert np.allclose(sparseness(maps).numpy(), q(quantus.Sparseness(**kw)), atol=1e-12, rtol=0)
    # Quantus takes log(p + 1e-12): 64 pixels x 1e-12 at most apart
    assert np.allclose(complexity(maps).numpy(), q(quantus.Complexity(**kw)), atol=1e-9, rtol=0)
    assert np.array_equal(pointing_game(maps, mask).numpy(), q(quantus.PointingGame(**kw)))
    assert np.allclose(relevance_mass(maps, mask).numpy(), q(quantus.RelevanceMassAccuracy(**kw)), atol=1e-12)
    assert np.allclose(relevance_rank(maps, mask).numpy(), q(quantus.RelevanceRankAccuracy(**kw)), atol=1e-12)
    signed = q(quantus.RelevanceMassAccuracy(disable_warnings=True))     # Quantus's default: the signed map
    assert signed.max() > 1 and (relevance_mass(maps, mask).numpy() <= 1).all()
