"""Guided backprop / deconvnet at smooth activations (GELU, SiLU, Hardswish; issue 24 item 5).

Rule (probe/relu_modes.py): guided dx = max(dy, 0) * f'(x) * [x > 0], deconvnet dx = max(dy, 0),
plain dx = dy * f'(x). Checked against f' written out by hand, on random-weight ConvNeXt-Tiny,
EfficientNet-B0 and MobileNetV3 (ReLU + Hardswish), and in the limit where the activation is a ReLU.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import convlens
from convlens.probe import relu_mode

from helpers import Snapshot, tiny_convnet

ID = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def _fprime(kind, x):
    """The activations' derivatives written out (float64)."""
    if kind == "silu":
        s = torch.sigmoid(x)
        return s * (1 + x * (1 - s))
    if kind == "gelu":
        return 0.5 * (1 + torch.erf(x / math.sqrt(2))) + x * torch.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    return torch.where(x <= -3, 0.0, torch.where(x >= 3, 1.0, (2 * x + 3) / 6))


CALLS = {
    "silu": [F.silu, nn.SiLU(), nn.SiLU(inplace=True), lambda t: F.silu(t, inplace=True)],
    "gelu": [F.gelu, nn.GELU(), lambda t: F.gelu(t, approximate="none")],
    "hardswish": [F.hardswish, nn.Hardswish(), nn.Hardswish(inplace=True)],
}


@pytest.mark.parametrize("kind", list(CALLS))
def test_smooth_rules_by_hand(kind):
    x = torch.tensor([-4.0, -1.5, -0.3, 0.2, 1.0, 2.5, 5.0], dtype=torch.float64, requires_grad=True)
    dy = torch.tensor([1.0, -2.0, 0.5, -1.0, 2.0, 0.7, -0.4], dtype=torch.float64)
    fp = _fprime(kind, x.detach())
    expect = {"plain": dy * fp, "guided": dy.clamp(min=0) * fp * (x.detach() > 0), "deconvnet": dy.clamp(min=0)}
    ref_y = CALLS[kind][0](x.detach())
    for mode, want in expect.items():
        with relu_mode(mode, smooth=True) as st:
            outs = [f(x * 1) for f in CALLS[kind]]
        assert st.count == len(outs) and st.smooth == {kind: len(outs)} and not st.skipped
        for y in outs:
            torch.testing.assert_close(y.detach(), ref_y, rtol=0, atol=0)  # the forward is untouched
            torch.testing.assert_close(torch.autograd.grad(y, x, dy)[0], want, rtol=1e-12, atol=1e-12)
    # guided never passes a negative signal back through an activation that fired
    assert (expect["guided"] >= 0).all() and (expect["guided"][x.detach() <= 0] == 0).all()
    # without smooth=True they keep the ordinary gradient and are counted as skipped (the old behaviour)
    with relu_mode("guided") as st:
        y = CALLS[kind][0](x * 1)
    assert st.count == 0 and st.skipped == {kind: 1}
    torch.testing.assert_close(torch.autograd.grad(y, x, dy)[0], expect["plain"])


class ScaledAct(nn.Module):
    """f(k h) / k: for |k h| large, GELU and Hardswish are exactly ReLU (and f'(k h) exactly [h > 0])."""

    def __init__(self, kind, k):
        super().__init__()
        self.act, self.k = {"gelu": nn.GELU(), "hardswish": nn.Hardswish(), "relu": nn.ReLU()}[kind], k

    def forward(self, h):
        return self.act(h * self.k) / self.k


def _act_net(kind, k=1.0):
    torch.manual_seed(3)
    return nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), ScaledAct(kind, k), nn.Conv2d(5, 4, 3, stride=2),
                         ScaledAct(kind, k), nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(4, 3))


@pytest.mark.parametrize("kind", ["gelu", "hardswish"])
def test_smooth_rule_reduces_to_the_relu_rule_where_the_activation_is_a_relu(kind):
    """At |k h| > 10 GELU's f' is 1 or 0 in float32 and Hardswish's exactly so beyond 3: the smooth
    guided / deconvnet results must then be the ReLU network's, bit for bit."""
    x = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    k = 1e7
    relu_m = convlens.Model.wrap(_act_net("relu", k), input_size=12, **ID)
    smooth_m = convlens.Model.wrap(_act_net(kind, k), input_size=12, **ID)
    with convlens.Probe(relu_m, ["0", "2"]) as p:  # pre-activations far from 0 (else the limit is not reached)
        p.run(x)
        assert min(float(p[n].abs().min()) for n in ("0", "2")) * k > 10
    for fn in (convlens.guided_backprop, convlens.deconvnet):
        a, b = fn(relu_m, x, 1).attributions, fn(smooth_m, x, 1).attributions
        assert torch.equal(a, b), fn.__name__
    # and the guided result differs from the plain gradient there (the override acted)
    assert not torch.allclose(convlens.guided_backprop(smooth_m, x, 1).attributions,
                              convlens.saliency(smooth_m, x, 1).attributions)


def test_relu_network_result_unchanged():
    """On a ReLU network, the generalized rule gives today's (ReLU-only) result exactly."""
    net = tiny_convnet()
    m = convlens.Model.wrap(net, input_size=16, **ID)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    for mode in ("guided", "deconvnet"):
        grads = []
        for smooth in (False, True):  # the old path (ReLU only), then the generalized rule
            xs = x.clone().requires_grad_(True)
            with relu_mode(mode, smooth=smooth) as st:
                grads.append(torch.autograd.grad(m(xs)[:, 2].sum(), xs)[0])
            assert st.count == 2 and not st.smooth
        g_old = grads[0]
        assert torch.equal(grads[1], g_old)
        # the attribution function (through the fused forward twin: float rounding only)
        fn = convlens.guided_backprop if mode == "guided" else convlens.deconvnet
        torch.testing.assert_close(fn(m, x, 2).attributions, g_old, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name,kind", [("convnext_tiny", "gelu"), ("efficientnet_b0", "silu"),
                                       ("mobilenet_v3_small", "hardswish")])
def test_guided_on_smooth_torchvision_networks(name, kind):
    import torchvision
    torch.manual_seed(0)
    net = getattr(torchvision.models, name)(weights=None)
    with torch.no_grad():  # ConvNeXt's blocks start scaled by 1e-6 (only the skips would count): make them count
        for mod in net.modules():
            if hasattr(mod, "layer_scale"):
                mod.layer_scale.fill_(1.0)
    snap = Snapshot(net)
    m = convlens.Model.wrap(net, input_size=64)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    g = convlens.guided_backprop(m, x, 3).attributions
    d = convlens.deconvnet(m, x, 3).attributions
    plain = convlens.saliency(m, x, 3).attributions
    for a in (g, d):
        assert torch.isfinite(a).all() and a.abs().amax() > 0
        assert (a - plain).norm() > 0.1 * plain.norm()  # the rule acted (random weights: tiny values)
    # the mechanism: "plain" through the same overrides is the ordinary gradient
    xs = x.clone().requires_grad_(True)
    with relu_mode("plain", smooth=True) as st:
        (gp,) = torch.autograd.grad(m(xs)[:, 3].sum(), xs)
    assert st.smooth.get(kind, 0) > 0
    torch.testing.assert_close(gp, plain, rtol=1e-3, atol=1e-6 * float(plain.abs().max()))
    # a neuron of an inner layer, too
    layer = [n for n, _ in net.named_children()][0] + ".1"
    r = convlens.guided_backprop(m, x[:1], layer=layer, channel=0, unit="max")
    assert torch.isfinite(r.attributions).all()
    snap.assert_unchanged()
