"""Models by name, offline weights, wrapping, predictions, and never touching the caller's module."""
from __future__ import annotations

import pytest
import torch
import torch.nn.utils.prune
from torch import nn

import convlens
from convlens.models import LECTURE_MODELS
from convlens.models.offline import OFFLINE_FILES, cache_dir, sha256
from helpers import Snapshot, tiny_convnet


def test_offline_default_model_top1(offline_model):
    """The offline MobileNetV2 file gives torchvision's documented behaviour on the lecture's images."""
    assert offline_model.name == "mobilenet_v2" and offline_model.weights == "IMAGENET1K_V1"
    cat = convlens.sample_image("chelsea")
    coffee = convlens.sample_image("coffee")
    (pc,) = convlens.predict(offline_model, cat, topk=5)
    (pe,) = convlens.predict(offline_model, coffee, topk=5)
    assert pc[0].label == "Egyptian cat" and pc[0].index == 285 and pc[0].prob > 0.6
    assert pe[0].label == "espresso" and pe[0].prob > 0.95
    probs = [p.prob for p in pc]
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0


def test_offline_file_checked_by_sha256():
    name = "mobilenet_v2-b0353104.pth"
    path = cache_dir() / name
    assert path.exists() and sha256(path) == OFFLINE_FILES[name][2]
    assert OFFLINE_FILES[name][2].startswith(name.split("-")[1].split(".")[0])  # torchvision's hash prefix


def test_normalization_lives_in_the_wrapper(offline_model):
    x = torch.rand(2, 3, 224, 224)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.inference_mode():
        assert torch.equal(offline_model(x), offline_model.net((x - mean) / std))


@pytest.mark.parametrize("name", LECTURE_MODELS)
def test_every_lecture_architecture_builds_and_reports_true_shapes(name):
    """layers() shapes equal the shapes a real forward of a (different) image produces."""
    m = convlens.load_model(name, weights=None)
    infos = m.layers()
    convs = [li for li in infos if li.type == "Conv2d"]
    assert convs, f"{name} lists no conv layers"
    picks = [convs[0], convs[len(convs) // 2], convs[-1]]
    x = torch.rand(1, 3, *m.input_size)
    with convlens.Probe(m, [li.name for li in picks]) as probe, torch.inference_mode():
        logits = m(x)
    assert logits.shape == (1, 1000) and torch.isfinite(logits).all()
    for li in picks:
        assert tuple(probe[li.name].shape[1:]) == li.shape
        assert li.params == m.module(li.name).weight.numel() + (
            m.module(li.name).bias.numel() if m.module(li.name).bias is not None else 0)
    assert len(m.classes) == 1000 and m.classes[285] == "Egyptian cat"


def test_random_weights_are_seeded():
    a = convlens.load_model("squeezenet1_1", weights=None, seed=3)
    b = convlens.load_model("squeezenet1_1", weights=None, seed=3)
    c = convlens.load_model("squeezenet1_1", weights=None, seed=4)
    sa, sb, sc = a.net.state_dict(), b.net.state_dict(), c.net.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_local_weights_file_roundtrip(tmp_path, suffix):
    src = convlens.load_model("resnet18", weights=None, seed=7)
    path = tmp_path / f"r18{suffix}"
    state = {k: v.contiguous() for k, v in src.net.state_dict().items()}
    if suffix == ".safetensors":
        from safetensors.torch import save_file
        save_file(state, str(path))
    else:
        torch.save({"state_dict": {"module." + k: v for k, v in state.items()}}, path)  # nested + DDP prefix
    m = convlens.load_model("resnet18", weights=str(path))
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(m(x), src(x))


def test_weights_errors_are_clear(tmp_path):
    bad = tmp_path / "x.pth"
    torch.save({"foo.weight": torch.zeros(3)}, bad)
    with pytest.raises(convlens.ConvlensError, match="does not fit resnet18"):
        convlens.load_model("resnet18", weights=str(bad))
    with pytest.raises(convlens.ConvlensError, match="not found"):
        convlens.load_model("resnet18", weights=str(tmp_path / "missing.pth"))
    with pytest.raises(convlens.ConvlensError, match="closest: resnet18"):
        convlens.load_model("resnt18")
    with pytest.raises(convlens.ConvlensError, match="unknown weights 'V9'.*IMAGENET1K_V1"):
        convlens.load_model("resnet18", weights="V9")


def test_wrap_user_module_with_classes_and_targets():
    m = convlens.Model.wrap(tiny_convnet(), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
                            input_size=16, classes=["cat", "dog", "fox"])
    assert m.input_size == (16, 16) and m.classes == ["cat", "dog", "fox"]
    assert m.class_index("Dog") == 1 and m.class_index("2") == 2 and m.class_index(0) == 0
    x = torch.rand(3, 3, 16, 16)
    assert m.targets("fox", x).tolist() == [2, 2, 2]
    assert m.targets([0, "dog", 2], x).tolist() == [0, 1, 2]
    with torch.inference_mode():
        assert m.targets(None, x).tolist() == m(x).argmax(1).tolist()
    with pytest.raises(convlens.ConvlensError, match="closest: fox"):
        m.class_index("fix")
    with pytest.raises(convlens.ConvlensError, match="out of range"):
        m.class_index(3)
    with pytest.raises(convlens.ConvlensError, match="one per image"):
        m.targets([0, 1], x)


def test_callers_module_untouched_by_every_foundation_call():
    """Wrap, predict, layers, Probe with gradients + backward, receptive fields, batched forward."""
    user = tiny_convnet()
    user.train()  # the user's module is in train mode with an existing .grad: both must survive
    user[0].weight.grad = torch.full_like(user[0].weight, 0.5)
    snap = Snapshot(user)
    m = convlens.Model.wrap(user, input_size=16, classes=["a", "b", "c"])
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    convlens.predict(m, x.detach())
    m.layers()
    with convlens.Probe(m, ["0", "3"], gradients=True) as p:
        m(x)[:, 1].sum().backward()
    assert p.gradients["0"].shape == (2, 4, 16, 16)
    convlens.receptive_field(m, "3")
    list(convlens.batched_forward(m, x.detach(), "3", size=None))
    snap.assert_unchanged()
    assert all(not p.requires_grad for p in m.parameters())  # our copy is frozen: no .grad anywhere
    assert all(p.grad is None for p in m.parameters())


def test_model_stays_in_eval_mode(offline_model):
    offline_model.train()
    assert not any(mod.training for mod in offline_model.modules())


def test_offline_weights_are_copied_into_an_empty_torch_cache(tmp_path, monkeypatch):
    """A fresh machine: TORCH_HOME is empty; convlens finds the packaged file, checks it, copies it."""
    import torch.hub
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    from convlens.models.offline import ensure_offline_weights
    target = ensure_offline_weights("mobilenet_v2-b0353104.pth")
    assert target == tmp_path / "hub" / "checkpoints" / "mobilenet_v2-b0353104.pth"
    assert sha256(target) == OFFLINE_FILES["mobilenet_v2-b0353104.pth"][2]
    m = convlens.load_model()  # torchvision reads it from the new cache
    assert m.weights == "IMAGENET1K_V1"
    assert ensure_offline_weights("unknown-0000.pth") is None


def test_wrap_is_a_snapshot_without_the_users_hooks():
    """The user's hooks stay on their module and never fire inside convlens calls (issue 19.15)."""
    user = tiny_convnet()
    calls = {"fwd": 0, "pre": 0, "bwd": 0, "state": 0}
    conv = user[0]

    def count(name):
        def hook(*args, **kwargs):
            calls[name] += 1
        return hook
    conv.register_forward_hook(count("fwd"))
    conv.register_forward_hook(count("fwd"), with_kwargs=True, always_call=True)
    conv.register_forward_pre_hook(count("pre"))
    user[-1].register_full_backward_hook(count("bwd"))
    user[-1].register_full_backward_pre_hook(count("bwd"))
    conv._register_state_dict_hook(count("state"))
    pruned = tiny_convnet().requires_grad_(False)  # (a pruned weight with grad cannot be deep-copied)
    torch.nn.utils.prune.l1_unstructured(pruned[0], "weight", amount=0.5)  # torch's own pre-hook stays
    pruned[0].register_forward_pre_hook(count("pre"))

    m = convlens.Model.wrap(user, input_size=16, classes=["a", "b", "c"])
    x = torch.rand(2, 3, 16, 16)
    m(x)
    m.layers()
    m.state_dict()
    convlens.saliency(m, x, target=0)
    with convlens.Probe(m, "0") as p:
        m(x)
    assert p["0"].shape == (2, 4, 16, 16)
    pm = convlens.Model.wrap(pruned, input_size=16, classes=["a", "b", "c"])
    pm(x)
    kept = list(pm.net[0]._forward_pre_hooks.values())
    assert len(kept) == 1 and isinstance(kept[0], torch.nn.utils.prune.BasePruningMethod)
    assert calls == {"fwd": 0, "pre": 0, "bwd": 0, "state": 0}

    xr = x.clone().requires_grad_(True)
    user(xr).sum().backward()  # the user's module keeps every hook
    user.state_dict()
    assert calls == {"fwd": 2, "pre": 1, "bwd": 2, "state": 1}
    assert torch.allclose(m(x), user((x - m.mean) / m.std))


def test_lazy_namespace_is_complete_and_imports_torch_only_on_use():
    """`import convlens` is instant; every public name still resolves, `dir` and `__all__` list them all."""
    import subprocess
    import sys

    import convlens.concerns
    code = ("import sys, convlens\nfrom convlens import errors\nassert 'torch' not in sys.modules\n"
            "assert convlens.__version__ and errors.ConvlensError is convlens.ConvlensError\n"
            "assert 'torch' not in sys.modules\nconvlens.load_model\nassert 'torch' in sys.modules")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-1500:]
    core = ["Model", "LayerInfo", "load_model", "available_models", "predict", "Prediction", "imagenet_classes",
            "Probe", "layer_activations", "receptive_field", "ReceptiveField", "load_image", "sample_image",
            "sample_names", "fit", "save_png", "list_images", "grid", "overlay", "heatmap", "side_by_side", "Report",
            "batched_forward", "thread_budget", "ConvlensError", "__version__"]
    names = set(core) | set(convlens.concerns.__all__)
    assert names <= set(convlens.__all__) and set(convlens.__all__) <= set(dir(convlens))
    ns = {}
    exec("from convlens import *", ns)
    assert names <= set(ns)
    assert convlens.layer_activations is convlens.probe.activations
    assert convlens.saliency is convlens.attribution.saliency and convlens.Probe is convlens.probe.Probe
    with pytest.raises(AttributeError):
        convlens.no_such_name
