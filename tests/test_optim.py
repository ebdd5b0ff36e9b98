"""The optimization engine: hand-computed values, float64 gradcheck, composition, loop mechanics."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import convlens
from convlens.optim import objectives as O
from convlens.optim import params as P
from convlens.optim import regularizers as R
from convlens.optim import transforms as T
from helpers import Snapshot, tiny_convnet


@pytest.fixture
def tiny():
    return convlens.Model.wrap(tiny_convnet(), input_size=16, classes=["a", "b", "c"])


# --- total variation ---------------------------------------------------------------------------
def test_tv_matches_hand_computation():
    x = torch.tensor([[0.0, 1.0, 3.0], [2.0, 2.0, 0.0], [1.0, 5.0, 4.0]]).view(1, 1, 3, 3)
    # pixels with right and lower neighbours: (0,0),(0,1),(1,0),(1,1)
    # (0,0): dx=1, dy=2 -> 5 ; (0,1): dx=2, dy=1 -> 5 ; (1,0): dx=0, dy=-1 -> 1 ; (1,1): dx=-2, dy=3 -> 13
    assert O.total_variation(x, beta=2.0).item() == pytest.approx(24.0)
    assert O.total_variation(x, beta=1.0, eps=0).item() == pytest.approx(2 * math.sqrt(5) + 1 + math.sqrt(13))


def test_tv_gradcheck_float64():
    x = torch.rand(2, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: O.total_variation(t, beta=1.5), (x,))
    assert torch.autograd.gradcheck(lambda t: O.total_variation(t, beta=2.0), (x,))


# --- Fourier parameterization --------------------------------------------------------------------
def test_fourier_dc_coefficient_is_a_constant_image():
    h, w = 6, 8
    spec = torch.zeros(1, 1, h, w // 2 + 1, 2)
    spec[0, 0, 0, 0, 0] = 2.0
    img = P.fourier_to_image(spec, h, w, decay_power=1.0)
    # DC scale = 1 / (1/max(h, w)) = 8; ortho irfft of a DC value v gives v / sqrt(h w); then / 4
    expected = 2.0 * 8 / math.sqrt(h * w) / 4
    assert torch.allclose(img, torch.full_like(img, expected), atol=1e-6)


def test_fourier_single_frequency_is_a_cosine():
    h, w = 8, 8
    spec = torch.zeros(1, 1, h, w // 2 + 1, 2, dtype=torch.float64)
    spec[0, 0, 0, 1, 0] = 1.0  # fx = 1/8 cycles per pixel, fy = 0
    img = P.fourier_to_image(spec, h, w, decay_power=1.0)[0, 0]
    scale = 1 / (1 / 8)
    xs = torch.arange(w, dtype=torch.float64)
    row = scale * 2 * torch.cos(2 * math.pi * xs / 8) / math.sqrt(h * w) / 4  # +f and -f
    assert torch.allclose(img, row.expand(h, w), atol=1e-10)
    assert P.fourier_scale(8, 8, 2.0)[0, 1].item() == pytest.approx(64.0)


def test_fourier_gradcheck_float64():
    spec = torch.randn(1, 3, 5, 4, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: P.fourier_to_image(s, 5, 6, 1.0), (spec,))


def test_decorrelated_param_roundtrips_an_image():
    img = torch.rand(1, 3, 8, 8) * 0.8 + 0.1
    p = P.DecorrelatedParam(init=img)
    assert torch.allclose(p(), img, atol=1e-5)


def test_pixel_param_projects_onto_eps_ball_and_unit_range():
    center = torch.full((1, 3, 4, 4), 0.5)
    p = P.PixelParam(center, eps=0.1)
    with torch.no_grad():
        p.x.add_(torch.tensor([-1.0, 0.05, 1.0]).view(1, 3, 1, 1))
    p.project()
    assert torch.allclose(p.x[0, :, 0, 0], torch.tensor([0.4, 0.55, 0.6]))


def test_generator_param_clips_code_and_leaves_generator_untouched():
    g = convlens.ConvGenerator(8, 8, width=4)
    snap = Snapshot(g)
    p = P.GeneratorParam(g, batch=2, code_range=(-1.0, 1.0), init=torch.tensor([[5.0] * 8, [-3.0] * 8]))
    assert p.z.max().item() == 1.0 and p.z.min().item() == -1.0
    assert list(p.parameters()) == [p.z]
    assert p().shape == (2, 3, 8, 8)
    p().sum().backward()
    snap.assert_unchanged()


# --- objectives ------------------------------------------------------------------------------------
def _features(acts, image=None, logits=None):
    image = image if image is not None else torch.zeros(2, 3, 2, 2)
    return O.Features(image, image, acts, logits)


def test_objectives_values_and_composition():
    a = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2)
    f = _features({"L": a}, logits=torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert O.channel("L", 1)(f).tolist() == [a[0, 1].mean().item(), a[1, 1].mean().item()]
    assert O.channel("L", [0, 2])(f).tolist() == [a[0, 0].mean().item(), a[1, 2].mean().item()]
    assert O.neuron("L", 2, (1, 0))(f).tolist() == [a[0, 2, 1, 0].item(), a[1, 2, 1, 0].item()]
    assert O.layer_l2("L")(f).tolist() == [0.5 * (a[0] ** 2).sum().item(), 0.5 * (a[1] ** 2).sum().item()]
    assert O.class_logit([1, 0])(f).tolist() == [2.0, 3.0]
    combo = 2 * O.channel("L", 0) - O.class_logit(1) + 1.0
    expected = 2 * O.channel("L", 0)(f) - O.class_logit(1)(f) + 1.0
    assert torch.equal(combo(f), expected)
    assert combo.layers == ("L",) and combo.logits
    assert torch.equal(sum([O.channel("L", 0), O.channel("L", 1)])(f), O.channel("L", 0)(f) + O.channel("L", 1)(f))
    assert torch.allclose(O.feature_match("L", a)(f), torch.zeros(2))
    assert O.feature_match("L", torch.zeros_like(a), normalize=False)(f).tolist() == (a ** 2).flatten(1).sum(1).tolist()


def test_image_penalties_hand_values():
    img = torch.tensor([0.0, 0.5, 1.0, 1.0]).view(1, 1, 2, 2).expand(1, 3, 2, 2)
    f = _features({}, image=img)
    assert O.l2()(f).item() == pytest.approx(3 * (0 + 0.25 + 1 + 1))
    assert O.l2(0.5)(f).item() == pytest.approx(3 * (0.25 + 0 + 0.25 + 0.25))
    assert O.l1(0.5)(f).item() == pytest.approx(3 * 1.5)
    assert O.alpha_norm(2, 0.5)(f).item() == pytest.approx(O.l2(0.5)(f).item())


# --- transforms and regularizers --------------------------------------------------------------------
def test_transforms_shapes_and_determinism():
    x = torch.rand(1, 3, 32, 32)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    t = T.standard(scale=0.5)
    assert torch.equal(t(x, g1), t(x, g2))
    assert T.jitter(4)(x, g1).shape[-2:] == (28, 28)
    assert T.pad(2)(x, g1).shape[-2:] == (36, 36)
    r = T.roll(3)(x, g1)
    assert torch.allclose(r.sum(), x.sum()) and r.shape == x.shape
    assert torch.allclose(T.random_rotate([0])(x, g1), x)


def test_gaussian_blur_preserves_constants_and_matches_kernel_sum():
    x = torch.full((1, 3, 9, 9), 0.3)
    assert torch.allclose(R.gaussian_blur(x, 1.0), x, atol=1e-6)
    k = R.gaussian_kernel1d(1.0)
    assert k.sum().item() == pytest.approx(1.0) and k.numel() == 7
    d = torch.zeros(1, 1, 15, 15)
    d[0, 0, 7, 7] = 1
    b = R.gaussian_blur(d, 1.0)[0, 0]
    assert b[7, 7].item() == pytest.approx(k[3].item() ** 2) and b[7, 8].item() == pytest.approx((k[3] * k[4]).item())


def test_yosinski_clips_zero_small_pixels():
    x = torch.zeros(1, 3, 2, 2)
    x[0, :, 0, 0], x[0, :, 0, 1], x[0, :, 1, 0], x[0, :, 1, 1] = 0.1, 0.2, 0.3, 0.4
    y = R.clip_norm(50)(x, None)
    assert (y[0, :, 0, :] == 0).all() and torch.equal(y[0, :, 1, :], x[0, :, 1, :])
    grad = torch.ones_like(x)
    grad[0, :, 1, 1] = 0  # the largest pixel contributes nothing
    y = R.clip_contribution(50)(x, grad)
    assert (y[0, :, 0, 0] == 0).all() and (y[0, :, 1, 1] == 0).all() and (y[0, :, 0, 1] != 0).all()
    assert torch.allclose(R.decay(0.5)(x, None), x * 0.5)


# --- the loop ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("optimizer,lr,norm", [("adam", 0.05, False), ("sgd", 0.02, True), ("lbfgs", 0.5, False)])
def test_loop_optimizers_increase_a_channel(tiny, optimizer, lr, norm):
    snap = Snapshot(tiny.net)
    obj = O.channel("3", 2)
    p = P.make_param("pixel", size=16, init="noise", generator=torch.Generator().manual_seed(0))
    start = float(O.channel("3", 2)(O.Features(p(), p(), {"3": convlens.layer_activations(tiny, p.image(), "3")})))
    r = convlens.optimize(tiny, obj, p, steps=15, optimizer=optimizer, lr=lr, normalize_grad=norm)
    end = float(O.channel("3", 2)(O.Features(r.images, r.images, {"3": convlens.layer_activations(tiny, r.images, "3")})))
    assert end > start + 0.05
    assert r.steps == 15 and r.stopped == "done" and r.history.shape == (15, 1)
    assert r.images.min() >= 0 and r.images.max() <= 1
    snap.assert_unchanged()


def test_loop_truncates_after_deepest_layer(tiny):
    calls = []
    last = tiny.net[7]
    h = last.register_forward_hook(lambda *a: calls.append(1))
    try:
        convlens.optimize(tiny, O.channel("0", 1), P.make_param("pixel", size=16), steps=3)
        assert calls == []
        convlens.optimize(tiny, O.class_logit(0), P.make_param("pixel", size=16), steps=3)
        assert len(calls) == 3
    finally:
        h.remove()


def test_loop_seed_determinism_and_callback_stop(tiny):
    def run(seed):
        p = P.FourierParam(1, 16, generator=torch.Generator().manual_seed(1))
        return convlens.optimize(tiny, O.class_logit(1), p, steps=6, transforms=T.standard(scale=0.2), seed=seed)
    a, b, c = run(0), run(0), run(5)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    seen = []
    r = convlens.optimize(tiny, O.class_logit(1), P.make_param("pixel", size=16), steps=50,
                          callback=lambda s: seen.append(s.step) or s.step >= 4)
    assert seen == [1, 2, 3, 4] and r.stopped == "callback" and r.steps == 4


def test_loop_best_image_and_early_stopping(tiny):
    # a constant objective never improves: patience stops the loop
    const = O.Objective(lambda f: f.image.sum((1, 2, 3)) * 0, name="const")
    r = convlens.optimize(tiny, const + O.channel("0", 0) * 0, P.make_param("pixel", size=8), steps=100, patience=5)
    assert r.stopped == "early" and r.steps < 10
    # best keeps the argmax image: objective = -||I - 0.5||^2 from a start at 0.5 only gets worse with noise
    p = P.make_param("pixel", size=8, init=torch.full((1, 3, 8, 8), 0.5))
    r = convlens.optimize(tiny, -O.l2(0.5) + O.channel("0", 0) * 0, p, steps=5, optimizer="sgd", lr=0.1)
    assert torch.allclose(r.best, torch.full((1, 3, 8, 8), 0.5))


def test_loop_interrupt_keeps_best(tiny):
    def cb(s):
        if s.step == 3:
            raise KeyboardInterrupt
    r = convlens.optimize(tiny, O.class_logit(0), P.make_param("pixel", size=16), steps=20, callback=cb)
    assert r.stopped == "interrupted" and r.steps == 3 and r.best.shape == (1, 3, 16, 16)


def test_loop_octaves_and_tiles(tiny):
    p = P.make_param("pixel", size=32, init="noise", generator=torch.Generator().manual_seed(0))
    sizes = []
    r = convlens.optimize(tiny, O.layer_l2("3"), p, steps=2, octaves=3, octave_scale=2.0, optimizer="sgd",
                          lr=0.01, normalize_grad=True, callback=lambda s: sizes.append(tuple(s.image.shape[-2:])))
    assert sizes == [(8, 8)] * 2 + [(16, 16)] * 2 + [(32, 32)] * 2 and r.images.shape[-2:] == (32, 32)
    # tiled evaluation of a per-position sum gives the gradient of the whole image on a 1x1-conv net
    net = convlens.Model.wrap(nn.Sequential(nn.Conv2d(3, 2, 1)), input_size=8, classes=["a"])
    img = torch.rand(1, 3, 12, 12)
    g_full, g_tile = [], []
    for tile, out in ((None, g_full), (5, g_tile)):
        p = P.PixelParam(img, clamp=False)
        convlens.optimize(net, O.layer_l2("0"), p, steps=1, optimizer="sgd", lr=1.0, tile=tile)
        out.append(p.x.detach() - img)
    assert torch.allclose(g_full[0], g_tile[0], atol=1e-5)


def test_errors_are_convlens_errors(tiny):
    with pytest.raises(convlens.ConvlensError):
        convlens.optimize(tiny, O.class_logit(0), P.make_param("pixel", size=8), optimizer="rmsprop")
    with pytest.raises(convlens.ConvlensError):
        convlens.optimize(tiny, O.class_logit(0), P.FourierParam(1, 8), regularizers=[R.blur(1.0)])
    with pytest.raises(convlens.ConvlensError):
        convlens.optimize(tiny.net, O.class_logit(0), P.make_param("pixel", size=8))
