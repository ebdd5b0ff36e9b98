"""Test helpers: tiny hand-weighted nets and a check that a caller's module was left untouched."""
from __future__ import annotations

import torch
from torch import nn


class Snapshot:
    """Everything convlens promises not to change on a caller's module."""

    def __init__(self, module: nn.Module):
        self.module = module
        self.state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        self.training = {n: m.training for n, m in module.named_modules()}
        self.requires_grad = {n: p.requires_grad for n, p in module.named_parameters()}
        self.grads = {n: None if p.grad is None else p.grad.clone() for n, p in module.named_parameters()}
        self.types = {n: type(m) for n, m in module.named_modules()}
        self.inplace = {n: getattr(m, "inplace", None) for n, m in module.named_modules()}

    def assert_unchanged(self):
        from convlens.probe import hook_count
        m = self.module
        assert hook_count(m) == 0, "hooks left on the caller's module"
        for k, v in m.state_dict().items():
            assert torch.equal(v, self.state[k]), f"state {k} changed"
        assert {n: x.training for n, x in m.named_modules()} == self.training, "train/eval mode changed"
        assert {n: p.requires_grad for n, p in m.named_parameters()} == self.requires_grad
        for n, p in m.named_parameters():
            g0 = self.grads[n]
            assert (p.grad is None) == (g0 is None) and (g0 is None or torch.equal(p.grad, g0)), f".grad of {n} changed"
        assert {n: type(x) for n, x in m.named_modules()} == self.types, "modules swapped"
        assert {n: getattr(x, "inplace", None) for n, x in m.named_modules()} == self.inplace, "inplace flags changed"


def tiny_convnet(seed: int = 0, classes: int = 3) -> nn.Module:
    """conv(3->4, k3, pad1) - ReLU(inplace) - maxpool2 - conv(4->6, k3, s2) - ReLU - GAP - linear."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(6, classes))


def linear_classifier():
    """(model, images, w, b): a float64 linear 2-class model on 3x6x6 images (identity normalization), two
    seeded images, its weights (2, 3, 6, 6) and bias: the faithfulness metrics' hand-computable case."""
    import convlens
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 6 * 6, 2)).double()
    m = convlens.Model.wrap(net, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), classes=["a", "b"], input_size=6)
    x = torch.rand(2, 3, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    return m, x, net[1].weight.detach().view(2, 3, 6, 6), net[1].bias.detach()


def fresh_onnx_cache(tmp_path, monkeypatch):
    """Fixture body: an empty ONNX export cache (in tmp), no sessions in memory, no CONVLENS_BACKEND;
    a module takes it with ``_cache = pytest.fixture(autouse=True)(fresh_onnx_cache)``."""
    from convlens.drivers import onnx as ob
    monkeypatch.setenv("CONVLENS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CONVLENS_BACKEND", raising=False)
    ob.clear_memory_cache()
    yield
    ob.clear_memory_cache()
