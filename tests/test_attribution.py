"""Attribution: hand-computed values on tiny hand-weighted nets, equivalences, no side effects."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import convlens
from convlens.attribution.occlusion import window_positions
from convlens.attribution.sanity import spearman
from convlens.errors import ConvlensError
from convlens.probe import hook_count, relu_mode

from helpers import Snapshot, tiny_convnet

ID = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


class ConvReluLinear(nn.Module):
    """1x1 conv (3 -> 1) - activation - linear(4 -> 2) on 2x2 images, hand-set weights."""

    def __init__(self, act="module"):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1)
        self.act = {"module": nn.ReLU(inplace=True), "relu6": nn.ReLU6(), "functional": None,
                    "silu": nn.SiLU(), "elu": nn.ELU()}[act]
        self.fc = nn.Linear(4, 2)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, -2.0, 0.5]).view(1, 3, 1, 1))
            self.conv.bias.fill_(0.1)
            self.fc.weight.copy_(torch.tensor([[1.0, -1.0, 2.0, 0.5], [-1.0, 1.0, 1.0, -3.0]]))
            self.fc.bias.copy_(torch.tensor([0.2, -0.3]))

    def forward(self, x):
        h = self.conv(x)
        h = F.relu(h) if self.act is None else self.act(h)
        return self.fc(h.flatten(1))


def hand_model(act="module"):
    return convlens.Model.wrap(ConvReluLinear(act), input_size=2, classes=["a", "b"], **ID)


X = torch.tensor([[[[0.9, 0.1], [0.5, 0.8]], [[0.1, 0.6], [0.2, 0.1]], [[0.4, 0.3], [0.9, 0.2]]]])
W = torch.tensor([1.0, -2.0, 0.5])
V = torch.tensor([[1.0, -1.0, 2.0, 0.5], [-1.0, 1.0, 1.0, -3.0]])


def hand_grads(c, rule, hi=None, x=X):
    pre = (W.view(3, 1, 1) * x[0]).sum(0).flatten() + 0.1  # (4,)
    mask = (pre > 0) if hi is None else (pre > 0) & (pre < hi)
    v = V[c]
    dh = {"plain": v * mask, "guided": v.clamp(min=0) * mask, "deconvnet": v.clamp(min=0)}[rule]
    return (W.view(3, 1) * dh.view(1, 4)).view(1, 3, 2, 2), pre


# --- relu_mode ----------------------------------------------------------------------------

def test_relu_mode_rules_by_hand():
    x = torch.tensor([-1.0, 2.0, 7.0, 3.0], requires_grad=True)
    dy = torch.tensor([1.0, -1.0, 1.0, 2.0])
    expect = {"plain": [0.0, -1.0, 1.0, 2.0], "guided": [0.0, 0.0, 1.0, 2.0], "deconvnet": [1.0, 0.0, 1.0, 2.0]}
    expect6 = {"plain": [0.0, -1.0, 0.0, 2.0], "guided": [0.0, 0.0, 0.0, 2.0], "deconvnet": [1.0, 0.0, 1.0, 2.0]}
    for mode in ("plain", "guided", "deconvnet"):
        with relu_mode(mode) as st:
            outs = [torch.relu(x * 1), F.relu(x * 1), nn.ReLU(inplace=True)(x * 1), (x * 1).relu(), F.relu_(x * 1)]
            outs6 = [F.relu6(x * 1), nn.ReLU6(inplace=True)(x * 1), F.hardtanh(x * 1, 0.0, 6.0)]
        assert st.count == len(outs) + len(outs6)
        for y in outs:
            assert torch.autograd.grad(y, x, dy)[0].tolist() == expect[mode], mode
        for y in outs6:
            assert torch.autograd.grad(y, x, dy)[0].tolist() == expect6[mode], mode
        assert outs[0].tolist() == [0.0, 2.0, 7.0, 3.0] and outs6[0].tolist() == [0.0, 2.0, 6.0, 3.0]
    # outside the context: the ordinary gradient again
    assert torch.autograd.grad(torch.relu(x * 1), x, dy)[0].tolist() == expect["plain"]


def test_relu_mode_leaves_other_activations_and_counts_them():
    x = torch.tensor([-1.0, 2.0], requires_grad=True)
    with relu_mode("guided") as st:
        y = F.silu(x) + F.hardtanh(x, -1.0, 1.0)
    assert st.count == 0 and st.skipped == {"silu": 1}
    g = torch.autograd.grad(y.sum(), x)[0]
    ref = torch.autograd.grad((F.silu(x) + F.hardtanh(x, -1.0, 1.0)).sum(), x)[0]
    assert torch.equal(g, ref)
    with pytest.raises(ConvlensError):
        with relu_mode("bogus"):
            pass


# --- hand-computed values --------------------------------------------------------------------

@pytest.mark.parametrize("act", ["module", "functional"])
@pytest.mark.parametrize("c", [0, 1])
def test_gradient_methods_by_hand(act, c):
    m = hand_model(act)
    g, _ = hand_grads(c, "plain")
    s = convlens.saliency(m, X, c)
    torch.testing.assert_close(s.attributions, g)
    torch.testing.assert_close(s.map, g.abs().amax(1))
    assert s.target.tolist() == [c] and s.labels == [f"{'ab'[c]} ({c})"]
    torch.testing.assert_close(convlens.guided_backprop(m, X, c).attributions, hand_grads(c, "guided")[0])
    torch.testing.assert_close(convlens.deconvnet(m, X, c).attributions, hand_grads(c, "deconvnet")[0])


def test_relu6_guided_by_hand():
    m = hand_model("relu6")
    x = X * 8  # pushes some pre-activations above 6
    for rule, fn in (("guided", convlens.guided_backprop), ("deconvnet", convlens.deconvnet)):
        g, pre = hand_grads(0, rule, hi=6.0, x=x)
        assert (pre > 6).any() and (pre < 0).any()
        torch.testing.assert_close(fn(m, x, 0).attributions, g)


def test_no_overridable_activation_says_so():
    # SiLU / GELU / Hardswish take the guided rule since issue 24 (tests/test_guided_smooth.py); ELU does not
    with pytest.raises(ConvlensError, match="no ReLU-like activation.*elu"):
        convlens.guided_backprop(hand_model("elu"), X, 0)


def test_grad_cam_by_hand():
    m = hand_model("module")
    for c in (0, 1):
        r = convlens.grad_cam(m, X, c, layer="act")
        _, pre = hand_grads(c, "plain")
        h = pre.clamp(min=0)
        torch.testing.assert_close(r.map, (V[c].mean() * h).view(1, 2, 2))
        torch.testing.assert_close(r.info["weights"], V[c].mean().view(1, 1))


def test_neuron_guided_by_hand():
    m = hand_model("module")
    pre = (W.view(3, 1, 1) * X[0]).sum(0) + 0.1
    r = convlens.saliency(m, X, layer="conv", channel=0, unit=(1, 0))
    expect = torch.zeros(1, 3, 2, 2)
    expect[0, :, 1, 0] = W
    torch.testing.assert_close(r.attributions, expect)
    r = convlens.saliency(m, X, layer="conv", channel=0, unit="max")
    y, x = divmod(int(pre.flatten().argmax()), 2)
    assert r.labels == [f"conv channel 0 max at ({y}, {x})"]
    r = convlens.saliency(m, X, layer="conv", channel=0)  # sum over the channel
    torch.testing.assert_close(r.attributions, W.view(1, 3, 1, 1).expand(1, 3, 2, 2))
    with pytest.raises(ConvlensError, match="channel 3 out of range"):
        convlens.saliency(m, X, layer="conv", channel=3)


def linear_model():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Flatten(1), nn.Linear(3 * 8 * 8, 4))
    return convlens.Model.wrap(net, input_size=8, classes=list("abcd"), **ID).double(), net


def test_integrated_gradients_linear_is_exact():
    m, net = linear_model()
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    w = net[1].weight.detach().double()
    for method in ("gausslegendre", "riemann_trapezoid", "riemann_left"):
        r = convlens.integrated_gradients(m, x, [1, 3], baseline=0.25, steps=5, method=method)
        expect = (x - 0.25) * torch.stack([w[1], w[3]]).view(2, 3, 8, 8)
        torch.testing.assert_close(r.attributions, expect)
        assert max(abs(d) for d in r.info["delta"]) < 1e-10
        np.testing.assert_allclose(r.info["sum_attributions"], r.info["score_diff"], rtol=1e-10)


def test_integrated_gradients_completeness_improves_with_steps():
    m = convlens.Model.wrap(tiny_convnet(), input_size=16).double()
    x = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    d = [abs(convlens.integrated_gradients(m, x, 0, steps=s).info["delta"][0]) for s in (2, 64)]
    assert d[1] < d[0] and d[1] < 1e-4


def test_occlusion_by_hand_on_linear_logit():
    m, net = linear_model()
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    w = net[1].weight.detach().double()[2].view(3, 8, 8)
    r = convlens.occlusion(m, x, 2, window=4, stride=3, baseline=0.5, score="logit")
    ys = window_positions(8, 4, 3)
    assert ys == [0, 3, 6]  # ceil((8 - 4) / 3) + 1 positions; the last one is clipped by the border
    for i, y in enumerate(ys):
        for j, xx in enumerate(ys):
            drop = (w[:, y:y + 4, xx:xx + 4] * (x[0, :, y:y + 4, xx:xx + 4] - 0.5)).sum()
            torch.testing.assert_close(r.info["grid"][0, i, j], drop)
    # per-pixel mean over covering windows: pixel (0, 0) is covered by window (0, 0) only
    torch.testing.assert_close(r.map[0, 0, 0], r.info["grid"][0, 0, 0])
    torch.testing.assert_close(r.map[0, 3, 3], r.info["grid"][0, :2, :2].mean())


def test_occlusion_probability_drop_by_hand():
    m, _ = linear_model()
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    r = convlens.occlusion(m, x, 1, window=8, stride=8, baseline="zero")
    p = m(x).softmax(-1)[0, 1] - m(torch.zeros_like(x)).softmax(-1)[0, 1]
    torch.testing.assert_close(r.info["grid"][0, 0, 0], p.detach())
    torch.testing.assert_close(r.map[0], p.detach().expand(8, 8))


def test_occlusion_batched_equals_unbatched():
    m = convlens.Model.wrap(tiny_convnet(), input_size=16).double()
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    ref = convlens.occlusion(m, x, window=5, stride=3, baseline="blur", batch_size=1, channels_last=False)
    for bs, cl in ((7, False), (64, True), (None, True)):
        r = convlens.occlusion(m, x, window=5, stride=3, baseline="blur", batch_size=bs, channels_last=cl)
        torch.testing.assert_close(r.map, ref.map, rtol=1e-12, atol=1e-14)
    singles = torch.cat([convlens.occlusion(m, x[i:i + 1], ref.target[i].item(), window=5, stride=3,
                                            baseline="blur").map for i in range(2)])
    torch.testing.assert_close(singles, ref.map, rtol=1e-12, atol=1e-14)


def test_occlusion_baselines():
    x = torch.rand(1, 3, 12, 12)
    from convlens.attribution.occlusion import make_baseline
    assert torch.equal(make_baseline(x, "zero", (4, 4)), torch.zeros_like(x))
    assert torch.equal(make_baseline(x, "grey", (4, 4)), torch.full_like(x, 0.5))
    torch.testing.assert_close(make_baseline(x, "mean", (4, 4))[0, :, 5, 7], x[0].mean((1, 2)))
    b = make_baseline(x, "blur", (4, 4))
    assert b.std() < x.std() and abs(float(b.mean() - x.mean())) < 0.05
    with pytest.raises(ConvlensError, match="unknown baseline"):
        make_baseline(x, "pink", (4, 4))
    with pytest.raises(ConvlensError, match="stride"):
        window_positions(12, 4, 5)


def test_batch_equals_single_images():
    m = convlens.Model.wrap(tiny_convnet(), input_size=16).double()
    x = torch.rand(3, 3, 16, 16, dtype=torch.float64)
    for fn in (convlens.saliency, convlens.guided_backprop, convlens.deconvnet, convlens.grad_cam):
        kw = {"layer": "3"} if fn is convlens.grad_cam else {}
        batch = fn(m, x, [0, 2, 1], **kw)
        for i, t in enumerate([0, 2, 1]):
            torch.testing.assert_close(fn(m, x[i:i + 1], t, **kw).map[0], batch.map[i])


def test_smoothgrad_zero_noise_is_saliency_and_seeded():
    m = convlens.Model.wrap(tiny_convnet(), input_size=16).double()
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    s = convlens.saliency(m, x)
    torch.testing.assert_close(convlens.smoothgrad(m, x, noise=0.0, samples=3).map, s.map)
    a = convlens.smoothgrad(m, x, samples=6, seed=3, batch_size=4)
    b = convlens.smoothgrad(m, x, samples=6, seed=3, batch_size=12)
    torch.testing.assert_close(a.map, b.map)
    # by hand: the mean of the saliency maps of the same noisy images
    gen = torch.Generator().manual_seed(3)
    eps = torch.randn((6, *x.shape), generator=gen, dtype=x.dtype)
    sigma = 0.15 * (x.flatten(1).amax(1) - x.flatten(1).amin(1))
    maps = [convlens.saliency(m, x + eps[k] * sigma.view(2, 1, 1, 1), a.target).map for k in range(6)]
    torch.testing.assert_close(a.map, torch.stack(maps).mean(0))
    assert not torch.equal(a.map, convlens.smoothgrad(m, x, samples=6, seed=4).map)


# --- no side effects --------------------------------------------------------------------------

def test_model_and_inputs_untouched_by_every_method():
    m = convlens.Model.wrap(tiny_convnet(), input_size=16)
    snap = Snapshot(m)
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    x0 = x.detach().clone()
    runs = [lambda: convlens.saliency(m, x), lambda: convlens.guided_backprop(m, x),
            lambda: convlens.deconvnet(m, x, layer="3", channel=1, unit="max"), lambda: convlens.grad_cam(m, x),
            lambda: convlens.smoothgrad(m, x, samples=2), lambda: convlens.integrated_gradients(m, x, steps=3),
            lambda: convlens.occlusion(m, x, window=8, stride=8),
            lambda: convlens.sanity_check("saliency", m, x[:1], groups=2)]
    for run in runs:
        run()
        snap.assert_unchanged()
        assert x.grad is None and x.requires_grad and torch.equal(x.detach(), x0)


class Boom(nn.Module):
    def forward(self, x):
        raise RuntimeError("boom")


def test_no_hooks_or_modes_left_after_an_exception():
    net = tiny_convnet()
    m = convlens.Model.wrap(net, input_size=16)
    t = tiny_convnet()
    bad = convlens.Model.wrap(nn.Sequential(t[0], t[1], Boom(), *t[3:]), input_size=16, classes=list("abc"))
    x = torch.rand(1, 3, 16, 16)
    for fn, kw in ((convlens.guided_backprop, {"target": 0}), (convlens.deconvnet, {"layer": "3", "channel": 0}),
                   (convlens.grad_cam, {"target": 0, "layer": "3"}), (convlens.saliency, {"target": 0})):
        with pytest.raises(RuntimeError, match="boom"):
            fn(bad, x, **kw)
        assert hook_count(bad) == 0
    # a failure inside a Probe (not a tensor output) also cleans up
    with pytest.raises(ConvlensError):
        convlens.grad_cam(m, x, 0, layer="7")  # Linear output is not (C, h, w)
    assert hook_count(m) == 0
    # the ReLU override did not leak out of the failed call
    z = torch.tensor([1.0], requires_grad=True)
    assert torch.autograd.grad(torch.relu(z), z, torch.tensor([-1.0]))[0].item() == -1.0


# --- Grad-CAM default layer, targets, rendering, errors -----------------------------------------

@pytest.mark.parametrize("name,layer", [("resnet18", "layer4"), ("mobilenet_v2", "features.18"), ("vgg11", "features.20")])
def test_grad_cam_default_layer(name, layer):
    from convlens.attribution.gradcam import default_layer
    assert default_layer(convlens.load_model(name, weights=None)) == layer


def test_targets_by_name_and_render_modes():
    m = hand_model()
    r = convlens.saliency(m, X, "b")
    assert r.target.tolist() == [1]
    for mode in ("abs", "positive", "negative", "signed", "minmax", "rgb"):
        img = r.overlay(0, mode)
        assert img.width >= 2 and img.height >= 2
        n = r.normalized(0, mode)
        assert n.min() >= 0 and n.max() <= 1
    # raw map is unnormalized: rendering does not change it
    torch.testing.assert_close(r.map, hand_grads(1, "plain")[0].abs().amax(1))
    with pytest.raises(ConvlensError, match="unknown class"):
        convlens.saliency(m, X, "zebra")
    with pytest.raises(ConvlensError, match="render mode"):
        r.overlay(0, "loud")
    with pytest.raises(ConvlensError, match="RGB"):
        convlens.grad_cam(m, X, layer="act").overlay(0, "rgb")
    with pytest.raises(ConvlensError, match="convlens.Model"):
        convlens.saliency(ConvReluLinear(), X)


# --- sanity check, spearman, grabcut ------------------------------------------------------------

def test_spearman_matches_scipy_and_sanity_rows():
    from scipy.stats import spearmanr
    a, b = np.random.default_rng(0).random((2, 50))
    b[:10] = a[:10]
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    assert spearman(a, a) == pytest.approx(1.0)
    m = convlens.Model.wrap(tiny_convnet(), input_size=16).double()
    x = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    r = convlens.sanity_check("saliency", m, x, groups=3)
    assert [n for n, _, _ in r.rows] == ["7", "3", "0"]  # top-down, cascading, all 3 weight layers
    assert all(-1 <= rho <= 1 for _, rho, _ in r.rows)
    # the last map comes from a fully re-initialised network: recompute it independently
    rand = convlens.Model.wrap(tiny_convnet(), input_size=16).double()
    with torch.no_grad():
        for i, name in enumerate(["7", "3", "0"]):
            torch.manual_seed(i)
            rand.module(name).reset_parameters()
    torch.testing.assert_close(r.maps[-1], convlens.saliency(rand, x, r.info["target"]).map[0])
    ind = convlens.sanity_check(convlens.saliency, m, x, groups=3, cascade=False)
    assert len(ind.rows) == 3 and "independent" in ind.summary()


def test_grabcut_recovers_a_square():
    H = W = 64
    img = torch.zeros(1, 3, H, W)
    img[0, 2] = 0.8  # blue background
    img[0, :, 20:44, 16:40] = torch.tensor([0.9, 0.2, 0.1]).view(3, 1, 1)  # red square
    img += 0.03 * torch.rand_like(img)
    sal = torch.rand(H, W) * 0.2
    sal[20:44, 16:40] += 0.3  # the whole square is somewhat salient,
    sal[26:38, 22:34] += 1.0  # and the saliency peaks in its core
    g = convlens.grabcut(img.clamp(0, 1), sal, smooth=1.0)
    truth = torch.zeros(H, W, dtype=torch.bool)
    truth[20:44, 16:40] = True
    iou = (g.mask & truth).sum() / (g.mask | truth).sum()
    assert iou > 0.9
    assert torch.equal(g.cutout[0, :, 0, 0], torch.ones(3))  # background -> white
    assert g.rgba().shape == (H, W, 4)
    with pytest.raises(ConvlensError, match="does not match"):
        convlens.grabcut(img, torch.rand(10, 10))
    with pytest.raises(ConvlensError, match="quantiles"):
        convlens.grabcut(img, sal, background=0.9)


def test_occlusion_interrupt_keeps_finished_windows(tmp_path, monkeypatch, capsys):
    m = convlens.Model.wrap(tiny_convnet(), input_size=16).double()
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    full = convlens.occlusion(m, x, window=4, stride=4, batch_size=5)

    def stop_after(n):
        def progress(done, total):
            if done >= n:
                raise KeyboardInterrupt
        return progress
    with pytest.raises(KeyboardInterrupt) as e:
        convlens.occlusion(m, x, full.target, window=4, stride=4, batch_size=5, progress=stop_after(20))
    part = e.value.partial
    assert part.info["finished"] == 21 and part.info["total"] == 32  # batches of 5, 5, 5, 1 per image
    grid, ref = part.info["grid"].flatten(), full.info["grid"].flatten()
    torch.testing.assert_close(grid[:21], ref[:21])  # image 0 (16 windows) and 5 windows of image 1
    assert grid[21:].isnan().all()
    torch.testing.assert_close(part.map[0], full.map[0])
    # image 1: window row 0 and window (1, 0) done; pixels only later windows cover are NaN
    assert part.map[1, :4].isfinite().all() and part.map[1, 4:8, :4].isfinite().all()
    assert part.map[1, 4:8, 4:].isnan().all() and part.map[1, 8:].isnan().all()


def test_occlusion_cli_interrupt_writes_the_partial_map(tmp_path, monkeypatch, capsys, offline_model):
    """Ctrl-C (KeyboardInterrupt from the progress callback after 20 windows) writes the finished
    windows' map, titled partial, atomically, says so on stderr and exits 130."""
    import dataclasses
    from PIL import Image
    from convlens.cli.attribution import _image
    from convlens.cli.main import run
    img = _image("chelsea", offline_model, False)
    full = convlens.occlusion(offline_model, img, window=32, stride=32, batch_size=8)  # 7x7 disjoint windows

    def stop_after(n):
        def progress(done, total):
            if done >= n:
                raise KeyboardInterrupt
        return progress
    real = convlens.attribution.occlusion
    monkeypatch.setattr(convlens.attribution, "occlusion",
                        lambda *a, **k: real(*a, **{**k, "progress": stop_after(20)}))
    out = tmp_path / "occ.png"
    args = ["occlusion", "chelsea", "--window", "32", "--stride", "32", "--batch-size", "8", "-o", str(out)]
    assert run(args) == 130
    err = capsys.readouterr().err
    k = int(re.search(r"partial: (\d+) of 49 windows, written to", err).group(1))
    assert 20 <= k < 49  # the chunk that reached 20 finished, no more (chunk sizes depend on auto's path)
    assert [p.name for p in tmp_path.iterdir()] == ["occ.png"]  # no temporary file left
    # expected: the full run's map on the k finished windows (row-major 32x32 blocks), NaN elsewhere
    finished = torch.zeros(224, 224, dtype=torch.bool)
    for i in range(k):
        finished[32 * (i // 7):32 * (i // 7 + 1), 32 * (i % 7):32 * (i % 7 + 1)] = True
    masked = full.map.clone()
    masked[0, ~finished] = float("nan")
    want = dataclasses.replace(full, map=masked).overlay(0, label=f"partial {k}/49 windows: {full.labels[0]}")
    got = np.asarray(Image.open(out).convert("RGB"), dtype=np.int16)
    want = np.asarray(want.convert("RGB"), dtype=np.int16)
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 2
    # the finished part is coloured, the rest is the bare image: not the same picture as the full map's
    assert np.abs(got - np.asarray(full.overlay(0).convert("RGB"), dtype=np.int16))[128:224, :224].max() > 20
    # interrupted before any window finished (while the network is being prepared): one line, no file
    out.unlink()

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(convlens.attribution, "occlusion", interrupted)
    assert run(args) == 130
    assert "no file written" in capsys.readouterr().err and not out.exists()


def test_class_gradient_through_folded_twin_equals_plain_network():
    """saliency runs through the BN-folded channels_last twin: the plain network's gradient, in float64."""
    m = convlens.load_model("mobilenet_v2", weights=None).double()
    with torch.no_grad():  # non-trivial batch-norm statistics, so folding really changes the weights
        for mod in m.net.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5), mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5), mod.bias.uniform_(-0.2, 0.2)
    x = torch.rand(2, 3, 64, 64, dtype=torch.float64).requires_grad_(True)
    m(x)[:, [3, 7]].diagonal().sum().backward()
    r = convlens.saliency(m, x.detach(), [3, 7])
    assert r.info["score"] and convlens.drivers.forward.inference_twin(m)._convlens_fused
    torch.testing.assert_close(r.attributions, x.grad, rtol=1e-9, atol=1e-12 * float(x.grad.abs().max()))
