"""Parity with Quantus 0.6.0 (the reference, installed by scripts/setup): each metric on the same tiny model,
inputs, maps and parameters, float64 wherever Quantus lets the values through (it feeds the model float32:
the images are float32-exact, and the model casts them back to float64).

Quantus flattens the map broadcast to (C, H, W), so its "features" are pixel-channels, while convlens
removes whole pixels (every channel): where that matters, the images are grey (one channel for Quantus,
the same channel three times for convlens; the Quantus-side model repeats it), and their values are
equal. Where Quantus departs from its paper, test_faithfulness_metrics.py proves ours by hand and
docs/attribution.md ("Which map to believe") says where and why.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import convlens

quantus = pytest.importorskip("quantus")

N, H, W = 4, 10, 10


class Grey(nn.Module):
    """Quantus's side of the model: (N, 1, H, W) float32 -> the float64 net on three equal channels."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, z):
        return self.net(z.double().expand(-1, 3, -1, -1))


@pytest.fixture(scope="module")
def setup():
    """A tiny float64 CNN (3 classes), grey float32-exact images with a 0 and a 1 in each (Quantus's "black"
    baseline is the image's minimum), signed maps, and each image's predicted class."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                        nn.Flatten(), nn.Linear(4 * H * W, 3)).double().eval()
    rng = np.random.default_rng(0)
    g = rng.random((N, 1, H, W)).astype(np.float32).astype(np.float64)
    g[:, :, 0, 0], g[:, :, -1, -1] = 0.0, 1.0
    a = rng.standard_normal((N, 1, H, W))
    m = convlens.Model.wrap(net, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), classes=["a", "b", "c"], input_size=H)
    x = torch.from_numpy(np.repeat(g, 3, 1))
    y = net(x).argmax(1).numpy()
    return m, Grey(net).eval(), g, a, x, torch.from_numpy(a[:, 0]), y


def test_noisy_linear_imputation_equals_quantus():
    """The imputation itself on a 3-channel image (Quantus's function takes pixel indices): 1e-12."""
    from quantus.functions.perturb_func import noisy_linear_imputation as q_impute
    from convlens.faithfulness.imputation import linear_imputation
    rng = np.random.default_rng(1)
    img = rng.random((3, 17, 13))
    order = np.argsort(-rng.standard_normal(17 * 13))
    for p in (5, 40, 95):
        idx = order[:int(17 * 13 * p / 100)]
        removed = np.zeros(17 * 13, bool)
        removed[idx] = True
        assert np.allclose(linear_imputation(img, removed.reshape(17, 13)), q_impute(img, idx, noise=0.0),
                           atol=1e-12, rtol=0)


def test_road_equals_quantus(setup):
    """ROAD's accuracy at each percentage (noise 0, the one random part) equals Quantus's ROAD on grey
    images (Quantus's ROAD fails on colour images with one map per image: it sorts the (3, H, W) broadcast
    and indexes H * W pixels with it, an IndexError)."""
    m, qnet, g, a, x, maps, y = setup
    pc = [5, 15.5, 30, 50, 70, 90, 99]
    q = quantus.ROAD(abs=False, normalise=False, disable_warnings=True, percentages=pc, noise=0.0)(
        model=qnet, x_batch=g, y_batch=y, a_batch=a, device="cpu")
    ours = convlens.faithfulness.road(m, x, maps, target=torch.from_numpy(y), percentages=pc, noise=0.0)
    assert np.array_equal(ours.accuracy.numpy(), np.array([q[p] for p in pc]))
    assert 0 < ours.accuracy.min() < 1                 # the removals change some predictions


@pytest.mark.parametrize("per_step", [1, 4])
def test_pixel_flipping_equals_quantus(setup, per_step):
    """The probability after each step (Quantus's curve; its "black" is the image's minimum, 0 here), 1e-12
    (Quantus refuses a step that does not divide H * W; convlens makes the last step partial)."""
    m, qnet, g, a, x, maps, y = setup
    q = np.array(quantus.PixelFlipping(abs=False, normalise=False, disable_warnings=True, features_in_step=per_step)(
        model=qnet, x_batch=g, y_batch=y, a_batch=a, device="cpu"))
    ours = convlens.faithfulness.pixel_flipping(m, x, maps, target=torch.from_numpy(y), pixels_per_step=per_step,
                                                baseline="zero")
    assert np.allclose(ours.scores[:, 1:].numpy(), q, atol=1e-12, rtol=0)


@pytest.mark.parametrize("patch,order", [(3, "morf"), (4, "lerf"), (5, "morf")])
def test_region_perturbation_equals_quantus(setup, patch, order):
    """f(x) - f(x_k) for each region k (Quantus's output), with its padded grid (3 and 4 do not divide 10), 1e-12."""
    m, qnet, g, a, x, maps, y = setup
    q = np.array(quantus.RegionPerturbation(abs=False, normalise=False, disable_warnings=True, patch_size=patch,
                                            order=order, regions_evaluation=6)(
        model=qnet, x_batch=g, y_batch=y, a_batch=a, device="cpu"))
    ours = convlens.faithfulness.region_perturbation(m, x, maps, target=torch.from_numpy(y), patch_size=patch,
                                                     order=order, regions=6, baseline="zero")
    assert np.allclose(ours.drops.numpy(), q, atol=1e-12, rtol=0)
    assert torch.allclose(ours.value, torch.cat([torch.zeros(N, 1), ours.drops], 1).mean(1))


def test_faithfulness_correlation_equals_quantus(setup, monkeypatch):
    """Pearson r per image on the same random subsets (Quantus's ``np.random.choice`` calls, run by run and
    image by image, answered with convlens's subsets: Quantus's global seed cannot reproduce them, its
    baseline function draws uniform noise between its runs), 1e-12."""
    from convlens.faithfulness.correlation import random_subsets
    m, qnet, g, a, x, maps, y = setup
    subsets = iter(random_subsets(N, 30, H, W, 20, seed=7).reshape(-1, 20))
    monkeypatch.setattr(np.random, "choice", lambda *args, **kw: next(subsets))
    for score in ("logit", "prob"):                  # Quantus's default here: the logit (softmax=False)
        q = np.array(quantus.FaithfulnessCorrelation(abs=False, normalise=False, disable_warnings=True, nr_runs=30,
                                                     subset_size=20, return_aggregate=False)(
            model=qnet, x_batch=g, y_batch=y, a_batch=a, device="cpu", softmax=score == "prob"))
        subsets = iter(random_subsets(N, 30, H, W, 20, seed=7).reshape(-1, 20))
        ours = convlens.faithfulness.faithfulness_correlation(m, x, maps, target=torch.from_numpy(y), runs=30,
                                                              subset_size=20, seed=7, score=score)
        assert np.allclose(ours.value.numpy(), q, atol=1e-12, rtol=0)


def _explain(m, method="saliency"):
    from convlens.faithfulness.evaluate import explainer
    return explainer(method)[1]


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_sensitivity_equals_quantus_and_captum(setup, monkeypatch, kind):
    """Max- and average-sensitivity of saliency on colour images with the same noise (Quantus's
    ``np.random.uniform`` calls and Captum's ``perturb_func`` answered with convlens's seeded noise),
    normalized by the map's norm as both do, 1e-12."""
    from convlens.faithfulness.sensitivity import sample_noise
    m, qnet, g, a, x, maps, y = setup
    S, r = 5, 0.05
    explain = _explain(m)
    noise = torch.stack([sample_noise(x.shape, k, r, 3, x.dtype) for k in range(S)])       # (S, N, 3, H, W)
    draws = iter(noise.reshape(S, N, -1).numpy())
    monkeypatch.setattr(np.random, "uniform", lambda *args, **kw: next(draws))

    def q_explain(model, inputs, targets, **kw):
        return explain(m, torch.from_numpy(np.asarray(inputs, np.float64)), torch.as_tensor(targets))[:, None].numpy()

    cls = quantus.MaxSensitivity if kind == "max" else quantus.AvgSensitivity
    q = np.array(cls(nr_samples=S, lower_bound=r, abs=False, normalise=False, disable_warnings=True)(
        model=m.net, x_batch=x.numpy(), y_batch=y, a_batch=explain(m, x, torch.from_numpy(y))[:, None].numpy(),
        explain_func=q_explain, device="cpu"))
    fn = getattr(convlens.faithfulness, f"{kind}_sensitivity")
    ours = fn(m, x, "saliency", target=torch.from_numpy(y), samples=S, radius=r, seed=3, batch_size=3)
    assert np.allclose(ours.value.numpy(), q, atol=1e-12, rtol=0)
    assert (ours.value > 0).all()
    if kind == "max":
        from captum.metrics import sensitivity_max
        one = lambda inp: inp[0] if isinstance(inp, tuple) else inp                      # noqa: E731
        c = sensitivity_max(lambda inp, target: (explain(m, one(inp), target)[:, None],), x,
                            perturb_func=lambda inp, radius: one(inp) + noise.transpose(0, 1).reshape(one(inp).shape),
                            n_perturb_samples=S, target=torch.from_numpy(y))
        assert np.allclose(ours.value.numpy(), c.numpy(), atol=1e-12, rtol=0)


@pytest.mark.parametrize("normalize", [False, True])
def test_infidelity_equals_captum(setup, normalize):
    """Infidelity (the paper's, Captum's; Quantus's ``Infidelity`` replaces square patches one after another,
    another estimator: docs/attribution.md) with the same Gaussian perturbations, 1e-12: convlens's
    per-pixel I (shared by the channels) is Captum's I on each channel with the map split over them."""
    from captum.metrics import infidelity
    from convlens.faithfulness.infidelity import perturbation
    m, qnet, g, a, x, maps, y = setup
    S = 6
    noise = torch.stack([perturbation(x.shape, k, 0.1, 2, x.dtype) for k in range(S)]).expand(-1, -1, 3, -1, -1)

    def perturb(inp):
        I = noise.transpose(0, 1).reshape(inp.shape)                    # Captum repeats each image S times
        return I, inp - I

    c = infidelity(lambda z: m.net(z), perturb, x, (maps / 3)[:, None].expand(-1, 3, -1, -1).contiguous(),
                   n_perturb_samples=S, target=torch.from_numpy(y), normalize=normalize)
    ours = convlens.faithfulness.infidelity(m, x, maps, target=torch.from_numpy(y), samples=S, noise=0.1, seed=2,
                                            normalize=normalize)
    assert np.allclose(ours.value.numpy(), c.numpy(), atol=1e-12, rtol=1e-9)


@pytest.mark.parametrize("method", ["saliency", "grad_cam"])
def test_random_logit_equals_quantus(setup, method):
    """The same other classes (Quantus's seeded draw) and the same maps: Spearman similarity to 1e-12. Quantus's
    default SSIM runs on the flattened maps (1-D windows); convlens's on the 2-D maps (docs/attribution.md)."""
    from quantus.functions.similarity_func import correlation_spearman
    m, qnet, g, a, x, maps, y = setup
    explain = _explain(m, method)
    t = torch.from_numpy(y)

    def q_explain(model, inputs, targets, **kw):
        return explain(m, torch.from_numpy(np.asarray(inputs, np.float64)), torch.as_tensor(targets))[:, None].numpy()

    q = np.array(quantus.RandomLogit(num_classes=3, seed=42, similarity_func=correlation_spearman, abs=False,
                                     normalise=False, disable_warnings=True)(
        model=m.net, x_batch=x.numpy(), y_batch=y, a_batch=explain(m, x, t)[:, None].numpy(), explain_func=q_explain,
        device="cpu"))
    ours = convlens.faithfulness.random_logit(m, x, method, target=t, similarity="spearman")
    assert np.allclose(ours.value.numpy(), q, atol=1e-12, rtol=0)
    assert (ours.other != t).all()
