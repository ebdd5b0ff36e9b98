"""The onnxruntime backend of forward-only passes: equal to torch to 1e-4 (relative max difference)
on the lecture architectures and the offline MobileNetV2, fallback with one line, caches, threads,
the auto rule; and Model.wrap / load_model in float64."""
from __future__ import annotations

import concurrent.futures
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import convlens
from convlens.drivers import onnx as ob
from convlens.drivers.onnx import BackendFallbackWarning, rel_diff

from helpers import Snapshot, fresh_onnx_cache, tiny_convnet

RTOL = 1e-4


_cache = pytest.fixture(autouse=True)(fresh_onnx_cache)  # every test: an empty export cache, no sessions


def _passes(model, x, layers, size=None, batch_size=2, truncate=True):
    """(torch batches, onnxruntime batches) of the same pass; no fallback warning allowed."""
    ref = list(convlens.batched_forward(model, x, layers, size=size, batch_size=batch_size, truncate=truncate,
                                        backend="torch"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", BackendFallbackWarning)
        out = list(convlens.batched_forward(model, x, layers, size=size, batch_size=batch_size, truncate=truncate,
                                            backend="onnxruntime"))
    return ref, out


def _assert_same(ref, out, layers):
    # the first batch checks the new export and yields torch's result; the later ones are onnxruntime's
    assert [b.backend for b in out] == ["torch"] + ["onnxruntime"] * (len(out) - 1)
    assert len(out) >= 2
    for a, b in zip(ref, out):
        for k in layers or []:
            assert rel_diff(a.activations[k], b.activations[k]) <= RTOL, k
        if a.logits is not None or b.logits is not None:
            assert rel_diff(a.logits, b.logits) <= RTOL
            assert torch.equal(a.logits.argmax(-1), b.logits.argmax(-1))


# (architecture, logits input size, truncated layers at 64 px); alexnet / vgg need 224 px for their
# adaptive 6x6 / 7x7 pooling to be exportable (ONNX needs the pooled size to divide the map)
ARCHS = [
    ("resnet18", 64, ["layer1.0.conv2", "layer3"]),
    ("mobilenet_v2", 64, ["features.3", "features.10.conv.1"]),
    ("googlenet", 64, ["inception3a.branch2", "conv2"]),
    ("alexnet", 224, ["features.3", "features.10"]),
    pytest.param("densenet121", 64, ["features.denseblock1.denselayer2.conv1", "features.transition2"],
                 marks=pytest.mark.slow),
    pytest.param("vgg16", 224, ["features.7", "features.21"], marks=pytest.mark.slow),
]


@pytest.mark.parametrize("name,size,layers", ARCHS)
def test_backend_equals_torch_on_lecture_architectures(name, size, layers):
    m = convlens.load_model(name, weights=None)
    snap = Snapshot(m)
    x = torch.rand(4, 3, size, size)
    _assert_same(*_passes(m, x, None), None)                       # logits
    _assert_same(*_passes(m, torch.rand(4, 3, 64, 64), layers), layers)  # truncated after the deepest layer
    snap.assert_unchanged()                                         # export / fx left the model as it was


def test_layers_and_logits_together_untruncated():
    m = convlens.load_model("resnet18", weights=None)
    ref, out = _passes(m, torch.rand(4, 3, 64, 64), ["layer2"], truncate=False)
    _assert_same(ref, out, ["layer2"])
    assert out[1].logits is not None and out[1].logits.shape == (2, 1000)


def test_offline_mobilenet_logits_and_top_activations(offline_model, cat):
    m = offline_model
    imgs = torch.cat([cat, cat.flip(-1), convlens.sample_image("coffee", 224), cat.flip(-2)])
    ref, out = _passes(m, imgs, None, size="model")
    _assert_same(ref, out, None)
    assert int(out[0].logits[0].argmax()) == 285                   # Egyptian cat, in both
    assert int(out[1].logits[0].argmax()) == 967 and int(ref[1].logits[0].argmax()) == 967  # espresso
    ta = convlens.top_activations(m, imgs, "features.6", [1, 21], k=3, batch_size=2, backend="torch")
    tb = convlens.top_activations(m, imgs, "features.6", [1, 21], k=3, batch_size=2, backend="onnxruntime")
    assert rel_diff(ta.values, tb.values) <= RTOL
    assert torch.equal(ta.image_index, tb.image_index) and torch.equal(ta.positions, tb.positions)


class _Clamp(torch.autograd.Function):
    """A custom autograd Function computing outside torch (numpy): nothing an exporter can follow."""

    @staticmethod
    def forward(ctx, x):
        return torch.from_numpy(np.maximum(x.detach().cpu().numpy(), 0))

    @staticmethod
    def backward(ctx, g):
        return g


class _CustomFunctionNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(_Clamp.apply(self.conv(x)).mean((2, 3)))


class _BranchyNet(_CustomFunctionNet):
    """Data-dependent control flow: a trace would bake one branch in."""

    def forward(self, x):
        h = self.conv(x)
        if h.mean() > 0:
            h = h * 2
        else:
            h = -h
        return self.fc(h.mean((2, 3)))


@pytest.mark.parametrize("net", [_CustomFunctionNet, _BranchyNet])
def test_unexportable_model_falls_back_with_one_line(net):
    torch.manual_seed(0)
    m = convlens.Model.wrap(net(), input_size=16, classes=["a", "b", "c"])
    x = torch.rand(6, 3, 16, 16)
    ref = torch.cat([b.logits for b in convlens.batched_forward(m, x, batch_size=2, backend="torch")])
    with pytest.warns(BackendFallbackWarning) as rec:
        outs = [torch.cat([b.logits for b in convlens.batched_forward(m, x, batch_size=2, backend="onnxruntime")])
                for _ in range(2)]
    notes = [str(w.message) for w in rec if issubclass(w.category, BackendFallbackWarning)]
    assert len(notes) == 1 and "\n" not in notes[0] and "running in torch" in notes[0]  # once, one line
    for o in outs:
        assert torch.equal(o, ref)
    # the branch the data takes is honoured (both signs of the input mean)
    with torch.inference_mode():
        want = m(-x)
    assert rel_diff(want, next(iter(convlens.batched_forward(m, -x, batch_size=6, backend="onnxruntime"))).logits) < 1e-6


def test_disk_cache_reused_and_invalidated_by_an_in_place_weight_edit(monkeypatch, tmp_path):
    calls = []
    real = ob.export
    monkeypatch.setattr(ob, "export", lambda *a, **k: calls.append(1) or real(*a, **k))
    m = convlens.Model.wrap(tiny_convnet(), input_size=16, classes=["a", "b", "c"])
    x = torch.rand(4, 3, 16, 16)

    def run():
        return torch.cat([b.logits for b in convlens.batched_forward(m, x, batch_size=2, backend="onnxruntime")])
    run()
    files = sorted((tmp_path / "cache" / "onnx").glob("*.onnx"))
    assert len(calls) == 1 and len(files) == 1
    ob.clear_memory_cache()                       # a new process: the checked export comes from disk
    out = list(convlens.batched_forward(m, x, batch_size=2, backend="onnxruntime"))
    assert len(calls) == 1 and [b.backend for b in out] == ["onnxruntime"] * 2
    with torch.no_grad():
        m.net[0].weight.mul_(-2.0)                 # in place: same tensors, new values
    y = run()
    assert len(calls) == 2 and len(list((tmp_path / "cache" / "onnx").glob("*.onnx"))) == 2
    with torch.inference_mode():
        assert rel_diff(m(x), y) <= RTOL


def test_threads_budget_reaches_the_session_from_a_worker():
    m = convlens.Model.wrap(tiny_convnet(), input_size=16, classes=["a", "b", "c"])
    x = torch.rand(4, 3, 16, 16)
    before = torch.get_num_threads()

    def work(threads):
        list(convlens.batched_forward(m, x, batch_size=2, threads=threads, backend="onnxruntime"))
        return torch.get_num_threads()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        assert pool.submit(work, 1).result() == before   # torch's setting restored after the pass
    work(2)
    threads = sorted(r.session.get_session_options().intra_op_num_threads for r in ob._SESSIONS.values())
    assert threads == [1, 2]
    opts = next(iter(ob._SESSIONS.values())).session.get_session_options()
    assert opts.inter_op_num_threads == 1


STAT = "cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\ncpu0 0 0 0 0 0 0 0 0 0 0\ncpu1 0 0 0 0 0 0 0 0 0 0\nintr 1 2\n"


def test_spin_decision_from_injected_load_readings(monkeypatch):
    """Spin-waiting on when other processes leave an idle core per thread; CONVLENS_ORT_SPIN forces it."""
    # 2 CPUs, 1 s apart (200 jiffies in all, 100 per CPU): 150 busy jiffies, 40 of them ours ->
    # others used 1.1 cores, 0.9 idle
    before, after = STAT.format(busy=1000, idle=5000), STAT.format(busy=1150, idle=5050)
    assert ob.idle_cores(before, after, own_jiffies=40) == pytest.approx(0.9)
    assert ob.idle_cores(before, after, own_jiffies=150) == pytest.approx(2.0)   # the busy one was us
    quiet = ob.idle_cores(STAT.format(busy=0, idle=0), STAT.format(busy=6, idle=194))
    assert quiet == pytest.approx(1.94)
    assert ob.decide_spin(2, quiet) is True          # quiet machine: spin (the ORT default)
    assert ob.decide_spin(2, 0.9) is False           # another process holds a core: no spin
    assert ob.decide_spin(1, 0.9) is True            # ... but one thread still has its idle core
    assert ob.decide_spin(2, None) is False          # unknown: the safe choice
    assert ob.decide_spin(2, 0.0, env="1") is True and ob.decide_spin(2, 2.0, env="0") is False
    # the session gets the decision: injected readings, then the env override (which measures nothing)
    m = convlens.Model.wrap(tiny_convnet(), input_size=16, classes=["a", "b", "c"])
    monkeypatch.delenv("CONVLENS_ORT_SPIN", raising=False)
    spins = {}
    for idle in (2.0, 0.5):
        ob.clear_memory_cache()
        monkeypatch.setattr(ob, "measure_idle_cores", lambda sample_s=0.1, idle=idle: idle)
        r = ob.get_runner(m, [], True, (16, 16), 2)
        entry = r.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")
        spins[idle] = (r.spin, entry)
    assert spins == {2.0: (True, "1"), 0.5: (False, "0")}
    monkeypatch.setattr(ob, "measure_idle_cores", lambda sample_s=0.1: pytest.fail("measured despite the env"))
    monkeypatch.setenv("CONVLENS_ORT_SPIN", "1")
    ob.clear_memory_cache()
    assert ob.get_runner(m, [], True, (16, 16), 2).spin is True


def test_auto_rule_small_passes_never_export(monkeypatch):
    monkeypatch.setattr(ob, "export", lambda *a, **k: pytest.fail("auto exported a small pass"))
    m = convlens.Model.wrap(tiny_convnet(), input_size=16, classes=["a", "b", "c"])
    out = list(convlens.batched_forward(m, torch.rand(8, 3, 16, 16), batch_size=2))
    assert [b.backend for b in out] == ["torch"] * 4
    convlens.predict(m, torch.rand(2, 3, 16, 16))


def test_auto_rule_exports_when_it_pays_then_starts_at_once(monkeypatch):
    m = convlens.Model.wrap(tiny_convnet(), input_size=16, classes=["a", "b", "c"])
    x = torch.rand(8, 3, 16, 16)
    monkeypatch.setattr(ob, "EXPORT_PAYOFF_S", 1e-9)  # pretend the pass is long
    monkeypatch.setattr(ob, "LOAD_PAYOFF_S", 1e-9)
    out = list(convlens.batched_forward(m, x, batch_size=2))
    # batch 1 timed in torch, batch 2 checks the new export (torch's values), then onnxruntime
    assert [b.backend for b in out] == ["torch", "torch", "onnxruntime", "onnxruntime"]
    again = list(convlens.batched_forward(m, x, batch_size=2))   # checked session in memory: from the start
    assert [b.backend for b in again] == ["onnxruntime"] * 4
    ref = torch.cat([b.logits for b in convlens.batched_forward(m, x, batch_size=2, backend="torch")])
    assert rel_diff(ref, torch.cat([b.logits for b in again])) <= RTOL


def test_env_turns_it_off_and_unknown_backend_is_one_line(monkeypatch):
    monkeypatch.setenv("CONVLENS_BACKEND", "torch")
    m = convlens.Model.wrap(tiny_convnet(), input_size=16, classes=["a", "b", "c"])
    out = list(convlens.batched_forward(m, torch.rand(4, 3, 16, 16), batch_size=2, backend="onnxruntime"))
    assert [b.backend for b in out] == ["torch", "torch"] and not ob._SESSIONS
    with pytest.raises(convlens.ConvlensError, match="unknown backend 'tensorrt'"):
        list(convlens.batched_forward(m, torch.rand(1, 3, 16, 16), backend="tensorrt"))


def test_occlusion_whole_passes_through_onnxruntime_equal_torch():
    m = convlens.Model.wrap(tiny_convnet(classes=3), input_size=24, classes=["a", "b", "c"])
    x = torch.rand(1, 3, 24, 24)
    a = convlens.occlusion(m, x, 0, window=8, stride=2, incremental=False, backend="torch", batch_size=16)
    b = convlens.occlusion(m, x, 0, window=8, stride=2, backend="onnxruntime", batch_size=16)
    assert a.info["backend"] == "torch" and b.info["backend"] == "onnxruntime" and not b.info["incremental"]
    assert rel_diff(a.info["grid"], b.info["grid"]) <= 1e-3   # drops are differences of probabilities
    assert float((a.map - b.map).abs().max()) <= 1e-5


def test_float64_module_wraps_and_runs():
    torch.manual_seed(0)
    net = tiny_convnet().double()
    snap = Snapshot(net)
    m = convlens.Model.wrap(net, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3), input_size=16, classes=["a", "b", "c"])
    assert m.mean.dtype == torch.float64 and m.dtype == torch.float64
    x = torch.rand(3, 3, 16, 16)                                  # float32 images are accepted
    mean = torch.tensor([0.4, 0.5, 0.6], dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor([0.2, 0.25, 0.3], dtype=torch.float64).view(1, 3, 1, 1)
    with torch.no_grad():
        want = net((x.double() - mean) / std)
        got = m(x)
    assert got.dtype == torch.float64 and torch.allclose(got, want, rtol=1e-12, atol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error", BackendFallbackWarning)     # auto: float64 stays in torch, quietly
        out = list(convlens.batched_forward(m, x, batch_size=2))
    assert all(b.backend == "torch" and b.logits.dtype == torch.float64 for b in out)
    assert torch.allclose(torch.cat([b.logits for b in out]), want, rtol=1e-10, atol=1e-12)
    p = convlens.predict(m, x, topk=1)
    assert [r[0].index for r in p] == want.argmax(-1).tolist()
    snap.assert_unchanged()


def test_load_model_dtype_and_device():
    m = convlens.load_model("resnet18", weights=None, dtype="float64")
    assert m.mean.dtype == torch.float64 and next(m.net.parameters()).dtype == torch.float64
    m32 = convlens.load_model("resnet18", weights=None)
    x = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        assert rel_diff(m(x), m32(x)) <= 1e-5                       # same seeded weights
    with pytest.raises(convlens.ConvlensError, match="floating-point"):
        convlens.load_model("resnet18", weights=None, dtype="int8")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_cuda_module_wraps():  # pragma: no cover - no GPU on this machine
    m = convlens.Model.wrap(tiny_convnet().cuda(), input_size=16, classes=["a", "b", "c"])
    assert m.mean.device.type == "cuda"
    assert m(torch.rand(2, 3, 16, 16, device="cuda")).device.type == "cuda"


def test_cli_backend_flag(monkeypatch, capsys):
    from convlens.cli.main import run
    monkeypatch.setenv("CONVLENS_BACKEND", "auto")  # the flag sets it; monkeypatch restores it after
    assert run(["--backend", "torch", "predict", "chelsea", "--topk", "1"]) == 0
    assert "Egyptian cat" in capsys.readouterr().out
    assert run(["--backend", "tensorrt", "predict", "chelsea"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown backend 'tensorrt'" in err[0]
