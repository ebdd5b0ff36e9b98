"""Incremental passes (drivers/incremental.py): equal to whole passes, geometry checked two ways."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import convlens
from convlens.drivers.incremental import GLOBAL, IncrementalNet, incremental_net
from convlens.probe.receptive_field import ReceptiveField

from helpers import tiny_convnet

ID = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def whole(model, image, pos, patches):
    """The perturbed images, built by hand, through the model itself."""
    x = image.expand(len(pos), -1, -1, -1).clone()
    h, w = patches.shape[-2:]
    for b, (y, xx) in enumerate(pos.tolist()):
        x[b, :, y:y + h, xx:xx + w] = patches[b]
    with torch.no_grad():
        return model(x)


def boxes(H, W, h, w, gen):
    """Corners, borders and random positions of an (h, w) box inside an (H, W) image."""
    fixed = [(0, 0), (H - h, W - w), (0, W - w), (H - h, 0), ((H - h) // 2, (W - w) // 2), (1, W - w - 1)]
    rnd = [(int(torch.randint(0, H - h + 1, (), generator=gen)), int(torch.randint(0, W - w + 1, (), generator=gen)))
           for _ in range(6)]
    return torch.tensor(fixed + rnd)


@pytest.mark.parametrize("name", ["resnet18", "vgg11", "mobilenet_v2", "googlenet", "densenet121",
                                  "squeezenet1_1", "mobilenet_v3_small", "regnet_x_400mf"])
def test_equals_whole_pass_on_torchvision_models(name):
    torch.manual_seed(0)
    m = convlens.load_model(name, weights=None).double()
    with torch.no_grad():  # He init everywhere: some torchvision inits (googlenet) make logits ignore the input
        for mod in m.net.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight)
    size = {"googlenet": 112, "vgg11": 64}.get(name, 96)
    net = IncrementalNet(m, channels_last=False)
    assert any(s.local for s in net.segments), "no segment could be cropped"
    gen = torch.Generator().manual_seed(1)
    image = torch.rand(1, 3, size, size, dtype=torch.float64, generator=gen)
    run = net.at(image)
    for h, w in ((1, 1), (5, 7), (16, 16), (40, 24)):
        pos = boxes(size, size, h, w, gen)
        patches = torch.rand(len(pos), 3, h, w, dtype=torch.float64, generator=gen)
        ref = whole(m, image, pos, patches)
        got = run.logits(pos, patches)
        torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-12 * float(ref.abs().max()))
        assert float((ref - ref[:1]).abs().max()) > 1e-3 * float(ref.abs().max()), "the perturbations changed nothing"


def compose(a: ReceptiveField, b: ReceptiveField) -> ReceptiveField:
    """Field of b applied after a (b's units read a's units)."""
    return ReceptiveField(size=tuple(a.size[i] + (b.size[i] - 1) * a.stride[i] for i in (0, 1)),
                          stride=tuple(a.stride[i] * b.stride[i] for i in (0, 1)),
                          offset=tuple(a.offset[i] + b.offset[i] * a.stride[i] for i in (0, 1)))


def test_segment_fields_compose_to_measured_receptive_fields():
    """Analytic segment geometry, chained, equals the gradient-support receptive fields of the layers."""
    m = convlens.load_model("resnet18", weights=None)
    net = IncrementalNet(m)
    fields = [s.field for s in net.segments if s.local]
    # resnet18 cuts: stem (conv+relu), maxpool, layer1.0, layer1.1, layer2.0, ..., layer4.1
    names = ["maxpool", "layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1", "layer4.0",
             "layer4.1"]
    assert len(fields) == len(names) + 1 and net.segments[-1].field is GLOBAL
    total = fields[0]
    assert total == ReceptiveField(size=(7, 7), stride=(2, 2), offset=(-3, -3))  # conv1: 7x7, stride 2, pad 3
    for f, name in zip(fields[1:], names):
        total = compose(total, f)
        assert total == convlens.receptive_field(m, name), name


def test_tiny_net_geometry_by_hand():
    net = IncrementalNet(convlens.Model.wrap(tiny_convnet(), input_size=16, **ID))
    # conv 3x3 pad 1 (+ReLU merged) | maxpool 2 | conv 3x3 stride 2 (+ReLU) | global pool, flatten, linear
    assert [s.field for s in net.segments] == [
        ReceptiveField((3, 3), (1, 1), (-1, -1)), ReceptiveField((2, 2), (2, 2), (0, 0)),
        ReceptiveField((3, 3), (2, 2), (0, 0)), GLOBAL]


class Gated(nn.Module):
    """conv - squeeze-excitation gate (global) - conv - head: the gate makes everything after it global."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1, stride=2)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        h = torch.relu(self.c1(x))
        h = h * torch.sigmoid(h.mean((2, 3), keepdim=True))
        return self.fc(self.c2(h).amax((2, 3)))


class Branchy(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it."""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 2, 3)

    def forward(self, x):
        h = self.c(x)
        if h.sum() > 0:
            h = h * 2
        return h.mean((2, 3))


def test_global_gate_and_untraceable_nets():
    m = convlens.Model.wrap(Gated(), input_size=16, classes=["a", "b"], **ID).double()
    net = IncrementalNet(m, channels_last=False)
    assert [s.local for s in net.segments] == [True, False]
    image = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    pos, patches = torch.tensor([[3, 5], [12, 0]]), torch.rand(2, 3, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(net.at(image).logits(pos, patches), whole(m, image, pos, patches))
    b = convlens.Model.wrap(Branchy(), input_size=16, classes=["a", "b"], **ID)
    assert incremental_net(b) is None
    r = convlens.occlusion(b, torch.rand(1, 3, 16, 16), 0, window=4, stride=4)
    assert r.info["incremental"] is False


def test_change_no_unit_sees_and_box_outside_image():
    """A strided 1x1 conv skips odd pixels: a 1-pixel change there leaves the logits as they were."""
    net_ = nn.Sequential(nn.Conv2d(3, 2, 1, stride=2), nn.ReLU(), nn.Conv2d(2, 2, 3, padding=1), nn.Flatten(),
                         nn.Linear(2 * 8 * 8, 3))
    m = convlens.Model.wrap(net_, input_size=16, **ID).double()
    image = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    run = IncrementalNet(m, channels_last=False).at(image)
    pos, patches = torch.tensor([[3, 5], [2, 4]]), torch.rand(2, 3, 1, 1, dtype=torch.float64)
    got = run.logits(pos, patches)
    torch.testing.assert_close(got, whole(m, image, pos, patches))
    torch.testing.assert_close(got[0], m(image)[0].detach())  # (3, 5): odd row, unseen
    assert not torch.allclose(got[1], got[0])                  # (2, 4): seen
    with pytest.raises(ValueError, match="inside the image"):
        run.logits(torch.tensor([[15, 0]]), patches[:1].expand(1, 3, 2, 2))


def test_occlusion_incremental_equals_whole_passes():
    m = convlens.load_model("resnet18", weights=None).double()
    x = torch.rand(2, 3, 64, 64, dtype=torch.float64)
    for window, stride, baseline in ((16, 8, "zero"), (11, 5, "blur")):  # 11/5: the last windows are clipped
        a = convlens.occlusion(m, x, window=window, stride=stride, baseline=baseline, channels_last=False,
                               incremental=True)
        b = convlens.occlusion(m, x, a.target, window=window, stride=stride, baseline=baseline,
                               channels_last=False, incremental=False)
        assert a.info["incremental"] and not b.info["incremental"]
        torch.testing.assert_close(a.info["grid"], b.info["grid"], rtol=1e-9, atol=1e-15)
        assert float(a.info["grid"].abs().max()) > 0


def test_cost_model_by_hand_and_auto_takes_incremental_outright():
    """conv 3x3 pad 1 (3 -> 8) + ReLU | global pool + linear(8 -> 2), 32 px, a 4x4 window in the middle:
    the conv's 6x6 changed outputs need an 8x8 input crop, 64 of its 1024 positions."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(1),
                        nn.Linear(8, 2))
    m = convlens.Model.wrap(net, input_size=32, classes=["a", "b"], **ID)
    conv, head = 2 * 8 * 32 * 32 * 3 * 9, 2 * 8 * 2  # FLOPs: 2 per multiply-add
    assert incremental_net(m).flops == [conv, head]
    x = torch.rand(1, 3, 32, 32)
    assert incremental_net(m).at(x).cost((4, 4)) == pytest.approx((conv * 64 / 1024 + head) / (conv + head))
    r = convlens.occlusion(m, x, 0, window=4, stride=4)   # auto: 0.06 <= DECISIVE_COST, no timing
    assert r.info["incremental"] and r.info["choice"]["incremental_s"] is None
    assert r.info["choice"]["flops"] == pytest.approx(0.0626, abs=1e-4)
    # a 30x30 window: the conv's crop is the whole map (> 80%): the estimate is 1 >= WHOLE_COST, whole passes
    r = convlens.occlusion(m, x, 0, window=30, stride=2)
    assert r.info["choice"]["flops"] == 1.0 and not r.info["incremental"]
    assert r.info["choice"]["incremental_s"] is None and r.info["choice"]["whole_s"] is None


@pytest.mark.parametrize("slow", ["incremental", "whole"])
def test_auto_times_both_ways_when_flops_do_not_decide(monkeypatch, slow):
    """tiny_convnet at 16 px with 8x8 windows: the crops cover most maps (estimate > DECISIVE_COST), so
    auto runs one chunk each way and keeps the faster; a fake clock makes `slow` the slower path."""
    import sys
    from convlens.drivers import incremental as inc_mod
    from convlens.drivers import onnx as onnx_mod
    occ = sys.modules["convlens.attribution.occlusion"]
    clock = [0.0]

    class FakeTime:
        @staticmethod
        def perf_counter():
            return clock[0]

    def slowed(fn, way):
        def wrapper(*a, **k):
            clock[0] += 10.0 if way == slow else 1.0
            return fn(*a, **k)
        return wrapper
    monkeypatch.setattr(occ, "time", FakeTime)
    monkeypatch.setattr(inc_mod.IncrementalPass, "logits", slowed(inc_mod.IncrementalPass.logits, "incremental"))
    monkeypatch.setattr(onnx_mod.Switch, "run", slowed(onnx_mod.Switch.run, "whole"))
    m = convlens.Model.wrap(tiny_convnet(), input_size=16, **ID).double()
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    r = convlens.occlusion(m, x, window=8, stride=2, batch_size=8, backend="torch")
    assert r.info["choice"]["flops"] > occ.DECISIVE_COST
    assert r.info["incremental"] is (slow == "whole")
    s = r.info["choice"]
    assert (s["incremental_s"] > s["whole_s"]) is (slow == "incremental")
    ref = convlens.occlusion(m, x, r.target, window=8, stride=2, batch_size=8, incremental=False, backend="torch")
    torch.testing.assert_close(r.info["grid"], ref.info["grid"], rtol=1e-9, atol=1e-15)  # the same map either way
