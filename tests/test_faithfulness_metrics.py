"""The metrics of issue 22 beyond deletion / insertion, each against a hand computation or a known answer:
ROAD's imputation, pixel flipping, region perturbation, faithfulness correlation, sensitivity, infidelity,
MPRT and random logit. Parity with Quantus is in test_faithfulness_quantus.py."""
from __future__ import annotations

import unittest.mock as mock

import numpy as np
import pytest
import torch

import convlens
from helpers import linear_classifier
from convlens.errors import ConvlensError
from convlens.faithfulness import road
from convlens.faithfulness.imputation import NEIGHBOURS, linear_imputation, noisy_linear_imputation


@pytest.fixture(scope="module")
def linear():
    """A float64 linear classifier on 3x6x6 images (identity normalization), its weights, and two images."""
    return linear_classifier()


# --- ROAD: noisy linear imputation ---------------------------------------------------------------------

def test_imputation_of_single_pixels_on_a_5x5_image_by_hand():
    """One removed pixel is the weighted mean of its neighbours: 1/6 direct, 1/12 diagonal (sum 1 inside;
    a corner has 2 direct + 1 diagonal = 5/12, renormalized)."""
    img = np.arange(75, dtype=np.float64).reshape(3, 5, 5) ** 1.5
    removed = np.zeros((5, 5), bool)
    removed[2, 2] = removed[0, 0] = True
    out = linear_imputation(img, removed)
    for c in range(3):
        a = img[c]
        centre = (a[1, 2] + a[3, 2] + a[2, 1] + a[2, 3]) / 6 + (a[1, 1] + a[1, 3] + a[3, 1] + a[3, 3]) / 12
        corner = ((a[0, 1] + a[1, 0]) / 6 + a[1, 1] / 12) / (5 / 12)
        assert out[c, 2, 2] == pytest.approx(centre, abs=1e-12)
        assert out[c, 0, 0] == pytest.approx(corner, abs=1e-12)
    keep = ~removed
    assert np.array_equal(out[:, keep], img[:, keep])


def test_imputation_solves_the_neighbour_equations_on_a_5x5_block():
    """A 3x3 block of removed pixels (coupled unknowns) and a removed border pixel: every removed pixel
    equals the weighted mean of its (imputed or known) neighbours inside the image."""
    rng = np.random.default_rng(0)
    img = rng.random((3, 5, 5))
    removed = np.zeros((5, 5), bool)
    removed[1:4, 1:4] = True
    removed[4, 2] = True
    out = linear_imputation(img, removed)
    for r, c in zip(*np.nonzero(removed)):
        num, den = np.zeros(3), 0.0
        for dr, dc, w in NEIGHBOURS:
            if 0 <= r + dr < 5 and 0 <= c + dc < 5:
                num += w * out[:, r + dr, c + dc]
                den += w
        assert np.allclose(out[:, r, c], num / den, atol=1e-12)
    all_removed = linear_imputation(img, np.ones((5, 5), bool))
    assert np.allclose(all_removed, 0.5)


def test_imputation_noise_is_seeded_and_has_the_asked_size():
    x = torch.rand(2, 3, 12, 12, dtype=torch.float64)
    removed = torch.zeros(2, 12, 12, dtype=torch.bool)
    removed[:, 3:9, 3:9] = True
    clean = noisy_linear_imputation(x, removed, noise=0.0)
    a = noisy_linear_imputation(x, removed, noise=0.5, seeds=[1, 2])
    b = noisy_linear_imputation(x, removed, noise=0.5, seeds=[1, 2])
    assert torch.equal(a, b) and torch.equal(a[:, :, ~removed[0]], x[:, :, ~removed[0]])
    d = (a - clean)[:, :, removed[0]]
    assert abs(float(d.std()) - 0.5) < 0.05 and abs(float(d.mean())) < 0.05


def test_cholmod_and_superlu_solve_the_same_system():
    """Both factorizations of the imputation system give the same pixels (CHOLMOD where installed)."""
    pytest.importorskip("sksparse.cholmod")
    from convlens.faithfulness import imputation
    g = np.random.default_rng(4)
    img = g.random((3, 30, 30))
    removed = g.random((30, 30)) < 0.7
    removed[5:25, 5:25] = True
    assert imputation.solver() == "cholmod"
    fast = linear_imputation(img, removed)
    with mock.patch.object(imputation, "solver", lambda: "superlu"):
        slow = linear_imputation(img, removed)
    assert np.abs(fast - slow).max() < 1e-12 and not np.allclose(fast[:, removed], img[:, removed])


def test_imputation_over_worker_processes_equals_the_serial_solves(monkeypatch):
    """A large batch is solved by a process pool; the result (noise included) is the serial one."""
    from convlens.faithfulness import imputation
    g = torch.Generator().manual_seed(3)
    x = torch.rand(4, 3, 20, 20, dtype=torch.float64, generator=g)
    removed = torch.rand(4, 20, 20, generator=g) < torch.tensor([0.1, 0.5, 0.9, 0.99]).view(4, 1, 1)
    serial = noisy_linear_imputation(x, removed, noise=0.1, seeds=[5, 6, 7, 8], workers=1)
    monkeypatch.setattr(imputation, "PARALLEL_UNKNOWNS", 0)
    pooled = noisy_linear_imputation(x, removed, noise=0.1, seeds=[5, 6, 7, 8], workers=2)
    assert imputation._POOL.get("workers") == 2                   # the pool did run the solves
    assert torch.allclose(pooled, serial, atol=1e-12, rtol=0)
    assert not torch.equal(pooled[:, :, removed[2]], x[:, :, removed[2]])


def test_road_on_a_linear_model_by_hand(linear):
    """ROAD's probability curve equals softmax(W x_p + b) where x_p imputes the top int(36 p / 100) pixels."""
    m, x, w, b = linear
    maps = torch.rand(2, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    r = road(m, x, maps, target=1, percentages=(10, 50, 90), noise=0.0, score="prob", batch_size=4)
    for i in range(2):
        order = np.argsort(-maps[i].numpy().ravel(), kind="stable")
        for j, p in enumerate((10, 50, 90)):
            removed = np.zeros(36, bool)
            removed[order[:int(36 * p / 100)]] = True
            xp = torch.from_numpy(linear_imputation(x[i].numpy(), removed.reshape(6, 6)))
            logits = (w.flatten(1) @ xp.flatten()) + b
            assert float(r.scores[i, j]) == pytest.approx(float(logits.softmax(0)[1]), abs=1e-12)
    acc = road(m, x, maps, target=1, percentages=(10, 50, 90))
    assert set(acc.scores.flatten().tolist()) <= {0.0, 1.0}
    assert torch.allclose(acc.value, acc.scores.mean(1)) and torch.allclose(acc.accuracy, acc.scores.mean(0))
    with pytest.raises(ConvlensError, match="percentages must be between 0 and 100"):
        road(m, x, maps, percentages=(10, 120))


def test_deletion_with_the_noisy_linear_baseline(linear):
    """Deletion's noisy_linear baseline imputes the removed pixels (ROAD's perturbation on a curve); insertion's
    imputes the pixels not yet inserted; the noise is shared by every map of one (image, step)."""
    from convlens.faithfulness import deletion, insertion
    m, x, w, b = linear
    maps = torch.rand(2, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    d = deletion(m, x, maps, target=0, steps=4, baseline="noisy_linear", noise=0.0, score="logit")
    ins = insertion(m, x, maps, target=0, steps=4, baseline="noisy_linear", noise=0.0, score="logit")
    order = np.argsort(-maps[0].numpy().ravel(), kind="stable")
    for k in range(5):
        n = int(np.rint(k * 36 / 4))
        removed = np.zeros(36, bool)
        removed[order[:n]] = True
        for curve, rem in ((d, removed), (ins, ~removed)):
            xp = torch.from_numpy(linear_imputation(x[0].numpy(), rem.reshape(6, 6)))
            assert float(curve.scores[0, k]) == pytest.approx(float((w[0] * xp).sum() + b[0]), abs=1e-12)


# --- pixel flipping and region perturbation ---------------------------------------------------------

def test_pixel_flipping_and_region_perturbation_on_a_linear_model(linear):
    """With a zero baseline and the logit, flipping pixels by their exact contribution w.x (the gradient
    x input, summed over channels) is the optimal order: it beats a random map on pixel flipping (lower
    AUC) and on region perturbation (higher AOPC); the curves equal the logit of the flipped image."""
    from convlens.faithfulness import pixel_flipping, region_perturbation
    from convlens.faithfulness.flipping import flip_counts
    m, x, w, b = linear
    contrib = (w[0] * x).sum(1)
    rand = torch.rand(2, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    kw = dict(target=0, score="logit", baseline="zero")
    pf, pr = pixel_flipping(m, x, contrib, pixels_per_step=5, **kw), pixel_flipping(m, x, rand, pixels_per_step=5, **kw)
    assert (pf.value < pr.value).all()
    assert flip_counts(6, 6, 5).tolist() == [0, 5, 10, 15, 20, 25, 30, 35, 36]
    order = np.argsort(-contrib[1].numpy().ravel(), kind="stable")
    for k, n in enumerate(flip_counts(6, 6, 5)):
        img = x[1].clone().view(3, -1)
        img[:, order[:n]] = 0
        assert float(pf.scores[1, k]) == pytest.approx(float((w[0].reshape(3, -1) * img).sum() + b[0]), abs=1e-12)
    rp = region_perturbation(m, x, contrib, patch_size=2, regions=9, **kw)
    rr = region_perturbation(m, x, rand, patch_size=2, regions=9, **kw)
    assert (rp.value > rr.value).all()
    # every region removed: the last image is all zeros, its logit the bias
    assert torch.allclose(rp.scores[:, -1], b[0].expand(2))


def test_region_ranks_follow_the_patch_sums():
    from convlens.faithfulness.flipping import region_ranks
    maps = torch.zeros(1, 5, 5, dtype=torch.float64)
    maps[0, 4, 4] = 3.0          # 5 = 2 x 2 + 1: the grid starts 0 pixels before (floor(1 / 2)): 3 x 3 regions
    maps[0, 0, 2] = 1.0
    ranks, n = region_ranks(maps, 2)
    assert n == 9
    assert ranks[0, 4, 4] == 0 and ranks[0, 0, 2] == ranks[0, 1, 3] == 1 and ranks[0, 0, 0] == 2


# --- faithfulness correlation ----------------------------------------------------------------------------

def test_the_models_own_occlusion_map_has_the_top_faithfulness_correlation(linear):
    """On a model additive in the pixels (linear, logit), removing a subset costs exactly the sum of the
    1-pixel occlusion map over it: r = 1, above every other map (saliency, random, edge); by hand, r is
    Pearson's formula on the subsets' sums and drops."""
    from convlens.faithfulness import edge_map, faithfulness_correlation, random_map
    from convlens.faithfulness.correlation import random_subsets
    m, x, w, b = linear
    occ = convlens.occlusion(m, x, target=0, window=1, stride=1, baseline="zero", score="logit")
    kw = dict(target=0, runs=40, subset_size=6, seed=3)
    r_occ = faithfulness_correlation(m, x, occ, **kw)
    assert torch.allclose(r_occ.value, torch.ones(2, dtype=torch.float64), atol=1e-12)
    for other in (convlens.saliency(m, x, target=0), random_map(x, seed=1), edge_map(x)):
        assert (faithfulness_correlation(m, x, other, **kw).value < 1 - 1e-3).all()
    subsets = random_subsets(2, 40, 6, 6, 6, seed=3)
    maps = random_map(x, seed=1)
    r = faithfulness_correlation(m, x, maps, **kw)
    for i in range(2):
        sums, drops = [], []
        for s in subsets[:, i]:
            img = x[i].clone().view(3, -1)
            img[:, s] = 0
            drops.append(float((w[0].reshape(3, -1) * (x[i].view(3, -1) - img)).sum()))
            sums.append(float(maps[i].view(-1)[s].sum()))
        assert float(r.value[i]) == pytest.approx(float(np.corrcoef(sums, drops)[0, 1]), abs=1e-12)
    with pytest.raises(ConvlensError, match="subset_size 40 exceeds the 36 pixels"):
        faithfulness_correlation(m, x, maps, subset_size=40)


# --- sensitivity ----------------------------------------------------------------------------------------

def test_sensitivity_by_hand(linear):
    """A linear model's gradient does not depend on the image: saliency's sensitivity is 0. A map that is
    the image's channel sum moves by the noise's channel sum: max / mean of ||sum_c u|| / ||sum_c x||."""
    from convlens.faithfulness import avg_sensitivity, max_sensitivity
    from convlens.faithfulness.sensitivity import sample_noise
    m, x, w, b = linear
    assert torch.allclose(max_sensitivity(m, x, "saliency", samples=3).value, torch.zeros(2, dtype=torch.float64))

    def channel_sum(model, images, target):
        return images.sum(1)
    mx = max_sensitivity(m, x, channel_sum, samples=4, radius=0.1, seed=5, batch_size=3)
    av = avg_sensitivity(m, x, channel_sum, samples=4, radius=0.1, seed=5, normalize=False)
    d = torch.stack([sample_noise(x.shape, k, 0.1, 5, x.dtype).sum(1).flatten(1).norm(dim=1) for k in range(4)], 1)
    assert torch.allclose(mx.value, d.max(1).values / x.sum(1).flatten(1).norm(dim=1), atol=1e-12)
    assert torch.allclose(av.value, d.mean(1), atol=1e-12)
    u = sample_noise(x.shape, 0, 0.1, 5, x.dtype)
    assert float(u.abs().max()) <= 0.1 and float(u.abs().max()) > 0.09


# --- infidelity -------------------------------------------------------------------------------------------

def test_infidelity_by_hand(linear):
    """On a linear model (logit), f(x) - f(x - I) = sum_p I_p (sum_c w_cp): the channel-summed gradient has
    infidelity 0 and, unnormalized, any other map the mean of (I.map - I.grad)^2, written out here; normalize
    (the default) scales the map by its least-squares factor (a map 3 x the gradient is then exact too)."""
    from convlens.faithfulness import infidelity, random_map
    from convlens.faithfulness.infidelity import perturbation
    m, x, w, b = linear
    grad = w[0].sum(0).expand(2, 6, 6)
    kw = dict(target=0, samples=7, noise=0.2, seed=4, normalize=False)
    assert torch.allclose(infidelity(m, x, grad, **kw).value, torch.zeros(2, dtype=torch.float64), atol=1e-20)
    assert float(infidelity(m, x, 3 * grad, **kw).value.min()) > 1e-3
    assert torch.allclose(infidelity(m, x, 3 * grad, **{**kw, "normalize": True}).value, torch.zeros(2, dtype=torch.float64),
                          atol=1e-20)
    rand = random_map(x, seed=2)
    r = infidelity(m, x, rand, batch_size=5, **kw)
    for i in range(2):
        errs = []
        for k in range(7):
            I = perturbation(x.shape, k, 0.2, 4, torch.float64)[i, 0]
            errs.append(float((I * rand[i]).sum() - (I * grad[i]).sum()) ** 2)
        assert float(r.value[i]) == pytest.approx(np.mean(errs), abs=1e-12)


# --- randomization: MPRT and random logit -------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny():
    from helpers import tiny_convnet
    m = convlens.Model.wrap(tiny_convnet(seed=1, classes=4).double(), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                            classes=["a", "b", "c", "d"], input_size=16)
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    return m, x


def test_mprt_is_the_sanity_check_as_a_metric(tiny):
    """The Spearman of |map| after each cascade step equals convlens.sanity_check's rows (the same
    randomization, reused), image by image; the model is not changed."""
    from helpers import Snapshot
    from convlens.faithfulness import mprt
    m, x = tiny
    snap = Snapshot(m.net)
    r = mprt(m, x, "saliency", groups=3)
    snap.assert_unchanged()
    for i in range(2):
        s = convlens.sanity_check("saliency", m, x[i:i + 1], target=r.target[i:i + 1], groups=3)
        assert [row[0] for row in s.rows] == r.layers
        assert np.allclose([row[1] for row in s.rows], r.steps[i].numpy(), atol=1e-12)
    assert torch.allclose(r.value, r.steps.mean(1))


@pytest.mark.parametrize("similarity", ["spearman", "ssim", "hog"])
def test_mprt_baselines_score_as_the_papers_say(tiny, similarity):
    """An edge detector ignores the weights: similarity 1 at every step (Adebayo et al.'s failure case). A
    random map drawn afresh for each model: about 0 (Spearman and HOG correlation, SSIM of independent noise)."""
    from convlens.faithfulness import edge_map, mprt
    m, x = tiny
    edge = mprt(m, x, lambda model, images, target: edge_map(images), groups=3, similarity=similarity)
    assert torch.allclose(edge.steps, torch.ones_like(edge.steps), atol=1e-12)
    g = torch.Generator().manual_seed(0)
    fresh = mprt(m, x, lambda model, images, target: torch.rand(images.shape[0], 16, 16, generator=g,
                                                                dtype=torch.float64), groups=3, similarity=similarity)
    assert float(fresh.steps.abs().mean()) < 0.15


def test_similarities_by_hand():
    """SSIM of a map with itself is 1 and matches skimage's 2-D SSIM; HOG similarity is the Pearson r of
    skimage's HOG features; Spearman ranks ties by their average."""
    from skimage.feature import hog
    from skimage.metrics import structural_similarity
    from convlens.faithfulness.randomization import hog_similarity, spearman, ssim
    rng = np.random.default_rng(0)
    a, b = rng.random((20, 20)), rng.random((20, 20))
    assert ssim(a, a) == pytest.approx(1.0) and hog_similarity(a, a) == pytest.approx(1.0)
    rngd = max(a.max(), b.max()) - min(a.min(), b.min())
    assert ssim(a, b) == pytest.approx(structural_similarity(a, b, data_range=rngd, win_size=7), abs=1e-12)
    fa = hog(a, orientations=9, pixels_per_cell=(2, 2), cells_per_block=(2, 2))
    fb = hog((b - b.min()) / (b.max() - b.min()), orientations=9, pixels_per_cell=(2, 2), cells_per_block=(2, 2))
    fa = hog((a - a.min()) / (a.max() - a.min()), orientations=9, pixels_per_cell=(2, 2), cells_per_block=(2, 2))
    assert hog_similarity(a, b) == pytest.approx(float(np.corrcoef(fa, fb)[0, 1]), abs=1e-12)
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(0.9486832980505138, abs=1e-12)


def test_random_logit_on_a_linear_model(linear):
    """Saliency of a linear model for class c is |w_c| (max over channels): the random-logit similarity is
    the similarity of |w_target| and |w_other|, and the other class is never the target."""
    from convlens.faithfulness import random_logit
    from convlens.faithfulness.randomization import other_classes, spearman
    m, x, w, b = linear
    r = random_logit(m, x, "saliency", target=0, similarity="spearman")
    assert r.other.tolist() == [1, 1]
    want = spearman(w[0].abs().amax(0).numpy(), w[1].abs().amax(0).numpy())
    assert torch.allclose(r.value, torch.full((2,), want, dtype=torch.float64), atol=1e-12)
    drawn = other_classes(torch.arange(10) % 5, 5, seed=0)
    assert (drawn != torch.arange(10) % 5).all() and drawn.max() <= 4


# --- through convlens.evaluate ------------------------------------------------------------------------

def test_evaluate_runs_every_new_metric_and_batched_equals_one_map(tiny):
    """The report card runs each new metric (the registry's calling conventions); a metric's all-maps pass
    gives each map the values of its own single-map call (same subsets, noise and steps)."""
    from convlens.faithfulness import METRICS
    m, x = tiny
    new = ["road", "pixel_flipping", "region_perturbation", "faithfulness_correlation", "infidelity",
           "max_sensitivity", "avg_sensitivity", "mprt", "random_logit"]
    configs = {"road": {"percentages": (20.0, 60.0)}, "pixel_flipping": {"pixels_per_step": 32},
               "region_perturbation": {"regions": 6, "patch_size": 4}, "mprt": {"groups": 2},
               "faithfulness_correlation": {"runs": 8, "subset_size": 30}, "infidelity": {"samples": 6},
               "max_sensitivity": {"samples": 2}, "avg_sensitivity": {"samples": 2}}
    card = convlens.evaluate(m, x, ["saliency", "grad_cam"], new, configs=configs)
    assert set(card.metrics) == set(new)
    for k in new:
        for method in ("saliency", "grad_cam", "random", "edge"):
            v = card.value(k, method)
            assert v.shape == (2,) and np.isfinite(v).all(), (k, method)
    assert np.asarray(card.plot()).std() > 10
    t = card.results[("road", "saliency")].target
    for k in ("road", "pixel_flipping", "region_perturbation", "faithfulness_correlation", "infidelity"):
        single = METRICS[k].function(m, x, card.maps["grad_cam"], target=t, **configs[k])
        assert np.allclose(METRICS[k].value(single), card.value(k, "grad_cam"), atol=1e-12), k
