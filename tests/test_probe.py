"""Probe: bit-exact activations, gradients, truncation, hooks always removed, hooks per thread (races
against plain forwards, backwards and relu_mode); exact receptive fields."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import convlens
from convlens.probe import hook_count, receptive_field, receptive_fields
from helpers import tiny_convnet


def test_probe_equals_manual_forward_bit_for_bit(offline_model):
    m = offline_model
    x = torch.rand(2, 3, 224, 224)
    with torch.inference_mode():
        manual = m.net.features[:4]((x - m.mean) / m.std)
        with convlens.Probe(m, "features.3") as p:
            m(x)
    assert torch.equal(p["features.3"], manual)


def test_probe_records_before_a_following_inplace_relu():
    """resnet18: bn1 is followed by ReLU(inplace=True); the record must be the pre-ReLU output."""
    m = convlens.load_model("resnet18", weights=None)
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        xn = (x - m.mean) / m.std
        manual = m.net.bn1(m.net.conv1(xn))
        with convlens.Probe(m, ["bn1", "relu"]) as p:
            out = m(x)
        ref = m.net(xn)
    assert (manual < 0).any()  # so the check below can fail
    assert torch.equal(p["bn1"], manual)
    assert torch.equal(out, ref)  # probing did not change the result


def test_probe_gradients_match_autograd():
    m = convlens.Model.wrap(tiny_convnet(), input_size=12, classes=["a", "b", "c"])
    x = torch.rand(2, 3, 12, 12, requires_grad=True)  # the model is frozen: the graph starts at x
    with convlens.Probe(m, "3", gradients=True) as p:
        m(x)[:, 2].sum().backward()
    act = p["3"]
    # d(logit_2)/d(act) by hand: ReLU mask * (w_2 / (H*W)) broadcast over positions
    w = m.net[7].weight[2]
    hw = act.shape[-1] * act.shape[-2]
    expected = (act > 0).float() * (w.view(1, -1, 1, 1) / hw)
    assert torch.allclose(p.gradients["3"], expected, atol=1e-7)


def test_stop_truncates_and_activations_helper():
    m = convlens.Model.wrap(tiny_convnet(), input_size=12, classes=["a", "b", "c"])
    calls = []
    h = m.net[7].register_forward_hook(lambda *a: calls.append(1))
    try:
        with convlens.Probe(m, ["0", "3"], stop=True) as p:
            assert p.run(torch.rand(1, 3, 12, 12)) is None
    finally:
        h.remove()
    assert calls == [] and set(p.activations) == {"0", "3"}
    acts = convlens.layer_activations(m, torch.rand(1, 3, 12, 12), "3")
    assert acts.shape == (1, 6, 2, 2)


def test_no_hooks_left_after_exception():
    m = convlens.Model.wrap(tiny_convnet(), input_size=12, classes=["a", "b", "c"])
    with pytest.raises(RuntimeError, match="boom"):
        with convlens.Probe(m, ["0", "3", "7"], gradients=True):
            m(torch.rand(1, 3, 12, 12))
            raise RuntimeError("boom")
    assert hook_count(m) == 0
    with pytest.raises((RuntimeError, convlens.ConvlensError)):  # a failing forward inside the probe
        with convlens.Probe(m, "0"):
            m(torch.rand(1, 5, 12, 12))
    assert hook_count(m) == 0


def test_unknown_layer_lists_closest_names(offline_model):
    with pytest.raises(convlens.ConvlensError, match=r"closest: .*features\.18"):
        convlens.Probe(offline_model, "feature.18")


# --- receptive fields -----------------------------------------------------------------------------

def _brute_force_support(net: nn.Module, size: int, layer_idx: int, y: int, x: int, trials: int = 32):
    """Union over random inputs of the pixels with non-zero d(unit)/d(input), on the real network."""
    sub = net[:layer_idx + 1]
    g = torch.Generator().manual_seed(0)
    inp = torch.randn(trials, 3, size, size, generator=g, dtype=torch.float64, requires_grad=True)
    sub(inp)[:, :, y, x].sum().backward()  # batch items are independent: one backward for all
    hit = (inp.grad.abs().sum(1) > 0).any(0)
    nz = hit.nonzero()
    return int(nz[:, 0].min()), int(nz[:, 1].min()), int(nz[:, 0].max()) + 1, int(nz[:, 1].max()) + 1


NETS = {
    "conv-pool-conv": lambda: nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                            nn.Conv2d(4, 6, 3, stride=2), nn.ReLU()),
    "dilated": lambda: nn.Sequential(nn.Conv2d(3, 4, 5, stride=2, padding=2), nn.LeakyReLU(0.1),
                                     nn.Conv2d(4, 4, 3, dilation=2, padding=2), nn.Tanh(),
                                     nn.Conv2d(4, 5, 3, stride=2)),
    "alexnet-like": lambda: nn.Sequential(nn.Conv2d(3, 8, 11, stride=4, padding=2), nn.ReLU(),
                                          nn.MaxPool2d(3, 2), nn.Conv2d(8, 8, 5, padding=2), nn.ReLU(),
                                          nn.MaxPool2d(3, 2), nn.Conv2d(8, 8, 3, padding=1)),
}
HAND = {  # hand-computed (size, stride, offset) of the last layer: r += (k-1)*j*d, j *= s, o -= p*j
    "conv-pool-conv": (8, 4, -1),
    "dilated": (17, 4, -6),
    "alexnet-like": (99, 16, -34),
}


@pytest.mark.parametrize("name", list(NETS))
def test_receptive_field_matches_hand_formula_and_brute_force(name):
    torch.manual_seed(0)
    net = NETS[name]()
    size = 160
    m = convlens.Model.wrap(net, input_size=size, classes=["x"])  # a copy: `net` stays ours
    net = net.double()
    last = str(len(net) - 1)
    rf = receptive_field(m, last, method="analytic")
    assert (rf.size[0], rf.stride[0], rf.offset[0]) == HAND[name]
    assert receptive_field(m, last, method="gradient") == rf
    assert rf.size[0] == rf.size[1] and rf.stride[0] == rf.stride[1]
    with torch.no_grad():
        H = net(torch.zeros(1, 3, size, size, dtype=torch.float64)).shape[-1]
    for (uy, ux) in [(H // 2, H // 2), (H // 2 + 1, H // 2 - 1), (0, 0), (H - 1, 2)]:
        top, left, bottom, right = rf.box(uy, ux)
        expected = (max(top, 0), max(left, 0), min(bottom, size), min(right, size))
        assert _brute_force_support(net, size, len(net) - 1, uy, ux) == expected


def test_receptive_field_of_residual_block_is_the_union_of_branches():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 4, 3, padding=1)
            self.b = nn.Conv2d(4, 4, 3, padding=1)
            self.skip = nn.Conv2d(3, 4, 1)

        def forward(self, x):
            return torch.relu(self.b(torch.relu(self.a(x))) + self.skip(x))

    net = nn.Sequential(Block(), nn.Conv2d(4, 4, 3, stride=2))
    m = convlens.Model.wrap(net, input_size=32, classes=["x"])
    for method in ("analytic", "gradient"):
        rf = receptive_field(m, "1", method=method)
        assert (rf.size, rf.stride, rf.offset) == ((7, 7), (2, 2), (-2, -2))
        assert convlens.receptive_field(m, "0.skip", method=method).size == (1, 1)


def test_crop_pads_instead_of_shifting():
    rf = convlens.ReceptiveField(size=(5, 5), stride=(2, 2), offset=(-2, -2))
    img = torch.arange(100, dtype=torch.float32).view(1, 1, 10, 10) + 1
    c = rf.crop(img, 0, 0)
    assert c.shape[-2:] == (5, 5)
    assert (c[..., :2, :] == 0).all() and (c[..., :, :2] == 0).all()
    assert torch.equal(c[..., 2:, 2:], img[..., 0:3, 0:3])
    c2 = rf.crop(img, 2, 3)  # interior: an exact slice
    assert torch.equal(c2, img[..., 2:7, 4:9])


def test_mobilenet_receptive_fields_known_values(offline_model):
    """Against the standard recurrence for MobileNetV2's first blocks (hand-computed)."""
    assert receptive_field(offline_model, "features.0").size == (3, 3)
    assert receptive_field(offline_model, "features.1") == convlens.ReceptiveField((7, 7), (2, 2), (-3, -3))
    assert receptive_field(offline_model, "features.3") == convlens.ReceptiveField((19, 19), (4, 4), (-9, -9))


class Inception(nn.Module):
    """Two branches (3x3 pad 1, and 3x3 stride-1 max pool then 5x5 pad 2) concatenated, then a strided conv."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 2, 3, padding=1)
        self.b = nn.Conv2d(3, 2, 5, padding=2)
        self.head = nn.Conv2d(4, 3, 3, stride=2)

    def forward(self, x):
        b = self.b(nn.functional.max_pool2d(x, 3, 1, 1))
        return self.head(torch.cat([torch.relu(self.a(x)), b], 1))


def test_receptive_field_of_a_concatenation_by_hand():
    m = convlens.Model.wrap(Inception(), input_size=32, classes=["x"])
    # branch a: 3 @-1; branch b: pool 3 @-1 then 5x5 pad 2 -> 3 + 4 = 7 @-3; union 7 @-3 (the max);
    # head 3x3 stride 2: 7 + 2 = 9, stride 2, offset -3
    want = convlens.ReceptiveField((9, 9), (2, 2), (-3, -3))
    assert receptive_field(m, "head", method="analytic") == want
    assert receptive_field(m, "head", method="gradient") == want
    assert receptive_field(m, "a", method="analytic") == convlens.ReceptiveField((3, 3), (1, 1), (-1, -1))


class Squared(nn.Module):
    """conv - an op the geometry tables do not know (torch.square) - strided conv: analytic gives up."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 2, 3, padding=1), nn.Conv2d(2, 2, 3, stride=2)

    def forward(self, x):
        return self.c2(torch.square(self.c1(x)))


def test_unknown_op_falls_back_to_the_gradient_method_with_progress():
    m = convlens.Model.wrap(Squared(), input_size=32, classes=["x"])
    with pytest.raises(convlens.ConvlensError, match="method='gradient'"):
        receptive_field(m, "c2", method="analytic")
    calls = []
    rfs = receptive_fields(m, ["c1", "c2"], progress=lambda done, total: calls.append((done, total)))
    assert rfs["c2"] == convlens.ReceptiveField((5, 5), (2, 2), (-1, -1))  # 3 + 2, offset -1 from c1's padding
    assert rfs["c1"] == convlens.ReceptiveField((3, 3), (1, 1), (-1, -1))
    assert calls == [(1, 2), (2, 2)]  # c1 analytic at once, c2 after its gradient pass
    with pytest.raises(convlens.ConvlensError, match="not \\(C, H, W\\)"):
        receptive_field(convlens.Model.wrap(tiny_convnet(), input_size=16), "7")
    with pytest.raises(convlens.ConvlensError, match="unknown receptive-field method"):
        receptive_field(m, "c1", method="fast")


# layers of four lecture architectures at 64 px (the gradient method doubles the input as it needs)
ARCH_LAYERS = {
    "mobilenet_v2": ["features.1", "features.3", "features.4.conv.1", "features.7", "features.10"],
    "resnet18": ["maxpool", "layer1.0.conv2", "layer2.0.downsample", "layer2.1", "layer3.0.conv1"],
    "vgg16": ["features.4", "features.9", "features.16", "features.21"],
    "alexnet": ["features.2", "features.5", "features.10", "features.12"],  # features.12: 1x1 at 64 px, global
}


@pytest.mark.parametrize("name", list(ARCH_LAYERS))
def test_analytic_equals_gradient_method_on_lecture_architectures(name):
    net = convlens.load_model(name, weights=None).net
    m = convlens.Model.wrap(net, input_size=64, copy=False)
    layers = ARCH_LAYERS[name]
    analytic = receptive_fields(m, layers, method="analytic")
    assert analytic == receptive_fields(m, layers, method="gradient")
    assert len({rf.size for rf in analytic.values()}) == len(layers)  # distinct layers, not one repeated answer


# --- hooks are per thread: a probe never touches another thread's forward of the same model ---------

def _race(*loops, timeout: float = 60.0) -> list[str]:
    """Run each ``loop()`` in its own thread, started together with a tiny GIL switch interval (so
    the threads interleave inside each other's forwards); returns every failure, as text."""
    import sys
    import threading
    failures: list[str] = []
    start = threading.Barrier(len(loops))

    def body(loop):
        start.wait()
        try:
            loop()
        except BaseException as e:  # noqa: BLE001 - a failure in the thread is the test's result
            failures.append(f"{type(e).__name__}: {e}")
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=body, args=(loop,), daemon=True) for loop in loops]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout)
        assert not any(t.is_alive() for t in threads), "a thread did not finish in time"
    finally:
        sys.setswitchinterval(old)
    return failures


N_RACE = 300


def _race_model():
    m = convlens.Model.wrap(tiny_convnet(), input_size=12, classes=["a", "b", "c"])
    g = torch.Generator().manual_seed(1)
    xa, xb = torch.rand(2, 3, 12, 12, generator=g), torch.rand(2, 3, 12, 12, generator=g)
    return m, xa, xb


def test_probe_stop_in_one_thread_leaves_another_threads_forward_alone():
    """The explorer's race: a job loops ``Probe(stop=True)`` while a request runs the same model."""
    m, xa, xb = _race_model()
    with torch.no_grad():
        ref_logits = m(xb)
        with convlens.Probe(m, "3", stop=True) as p:
            p.run(xa)
        ref_act = p["3"].clone()
    assert not torch.allclose(convlens.layer_activations(m, xb, "3"), ref_act)  # the two images differ there
    bad = {"probe": 0, "plain": 0}

    def probing():
        for _ in range(N_RACE):
            with torch.no_grad(), convlens.Probe(m, "3", stop=True) as p:
                out = p.run(xa)
            if out is not None or not torch.allclose(p["3"], ref_act, atol=1e-6):
                bad["probe"] += 1

    def plain():
        for _ in range(N_RACE):
            with torch.no_grad():
                out = m(xb)  # a stray _StopForward would raise here and fail the race
            bad["plain"] += not torch.allclose(out, ref_logits, atol=1e-6)
    assert _race(probing, plain) == []
    assert bad == {"probe": 0, "plain": 0}
    assert hook_count(m) == 0


def test_probe_gradients_in_one_thread_leave_another_threads_backward_alone():
    m, xa, xb = _race_model()

    def alone_probe():
        x = xa.clone().requires_grad_(True)
        with convlens.Probe(m, "3", gradients=True) as p:
            m(x)[:, 2].sum().backward()
        return p["3"].detach().clone(), p.gradients["3"].clone(), x.grad.clone()

    def alone_plain():
        x = xb.clone().requires_grad_(True)
        logits = m(x)
        (g,) = torch.autograd.grad(logits[:, 1].sum(), x)
        return logits.detach(), g
    ref_act, ref_grad, ref_xgrad = alone_probe()
    ref_logits, ref_g = alone_plain()
    assert ref_grad.abs().sum() > 0 and ref_g.abs().sum() > 0
    bad = {"probe": 0, "plain": 0}

    def probing():
        for _ in range(N_RACE):
            act, grad, xgrad = alone_probe()
            bad["probe"] += not (torch.allclose(act, ref_act, atol=1e-6) and torch.allclose(grad, ref_grad, atol=1e-7)
                                 and torch.allclose(xgrad, ref_xgrad, atol=1e-7))

    def plain():
        for _ in range(N_RACE):
            logits, g = alone_plain()
            bad["plain"] += not (torch.allclose(logits, ref_logits, atol=1e-6) and torch.allclose(g, ref_g, atol=1e-7))
    assert _race(probing, plain) == []
    assert bad == {"probe": 0, "plain": 0}
    assert hook_count(m) == 0


def test_guided_relu_mode_in_one_thread_leaves_another_threads_gradient_plain():
    """``relu_mode`` is a torch function mode, whose stack torch keeps per thread."""
    from convlens.probe import relu_mode
    m, xa, _ = _race_model()

    def grad(mode):
        x = xa.clone().requires_grad_(True)
        with relu_mode(mode) as stats:
            (g,) = torch.autograd.grad(m(x)[:, 0].sum(), x)
        assert stats.count == 2
        return g
    ref = {mode: grad(mode) for mode in ("guided", "plain")}
    assert not torch.allclose(ref["guided"], ref["plain"], atol=1e-4)  # the override changes this gradient
    bad = {"guided": 0, "plain": 0}

    def loop(mode):
        for _ in range(N_RACE):
            bad[mode] += not torch.allclose(grad(mode), ref[mode], atol=1e-7)
    assert _race(lambda: loop("guided"), lambda: loop("plain")) == []
    assert bad == {"guided": 0, "plain": 0}


def test_probe_hooks_follow_the_call():
    """The owner thread, a context copied inside the block and ``probe.run`` anywhere record; an
    unrelated thread's forward does not."""
    import contextvars
    import threading
    m, xa, xb = _race_model()
    want_a, want_b = (convlens.layer_activations(m, x, "3") for x in (xa, xb))

    def in_thread(fn):
        t = threading.Thread(target=fn)
        t.start()
        t.join(30)
        assert not t.is_alive()
    with torch.no_grad(), convlens.Probe(m, "3") as p:
        in_thread(lambda: m(xb))                                   # unrelated thread: not recorded
        assert "3" not in p.activations
        m(xa)                                                      # the owner thread
        assert torch.allclose(p["3"], want_a)
        ctx = contextvars.copy_context()                           # a thread run in the probe's context
        in_thread(lambda: ctx.run(m, xb))
        assert torch.allclose(p["3"], want_b)
        p.activations.clear()
        in_thread(lambda: p.run(xa))                               # probe.run is the probe's call anywhere
        assert torch.allclose(p["3"], want_a)
    assert hook_count(m) == 0
    first_a, first_b = (convlens.layer_activations(m, x, "0") for x in (xa, xb))
    outer = convlens.Probe(m, "3").__enter__()                    # probes exiting out of order
    inner = convlens.Probe(m, "0").__enter__()
    outer.__exit__(None, None, None)
    with torch.no_grad():
        m(xb)
    assert "3" not in outer.activations and torch.allclose(inner["0"], first_b)
    ctx = contextvars.copy_context()                               # the inner probe is still active in it
    in_thread(lambda: ctx.run(m, xa))
    assert torch.allclose(inner["0"], first_a)
    inner.__exit__(None, None, None)
    assert hook_count(m) == 0
