"""The perturbation driver (drivers/perturb.py): chunks bounded by memory cover the pass once, in order;
logits equal the model's; ONNX Runtime gives the same numbers; an interrupt keeps finished chunks."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import tiny_convnet

import convlens
from convlens.drivers.perturb import auto_batch, perturbed_logits, target_scores


@pytest.fixture(scope="module")
def tiny():
    return convlens.Model.wrap(tiny_convnet(), input_size=32, classes=["a", "b", "c"])


def _pass(model, total, **kw):
    x = torch.rand(total, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    chunks, out, seen = [], torch.full((total, 3), float("nan"), dtype=torch.float64), []

    def make(a, b):
        chunks.append((a, b))
        return x[a:b]

    def consume(a, b, logits):
        out[a:b] = logits
    used = perturbed_logits(model, total, make, consume, like=x[:1], progress=lambda d, n: seen.append((d, n)), **kw)
    return x, chunks, out, seen, used


def test_chunks_cover_the_pass_once_and_logits_equal_the_model(tiny):
    x, chunks, out, seen, used = _pass(tiny, 150, batch_size=32, backend="torch")
    assert chunks == [(a, min(150, a + 32)) for a in range(0, 150, 32)]
    with torch.no_grad():
        assert torch.allclose(out, tiny(x).double(), atol=1e-6)
    assert seen[-1] == (150, 150) and [d for d, _ in seen] == sorted(d for d, _ in seen) and used == "torch"


def test_automatic_chunks_are_bounded_by_the_memory_budget(offline_model):
    """A 1001-image pass (a 1000-step curve) at 224 px is built a chunk at a time, never whole."""
    x = torch.rand(1, 3, 224, 224)
    bs = auto_batch(offline_model, x)
    # by hand: the leaf layers' activation sizes of one 224 px image (float32) into the 1536 MB budget, capped at 64
    names = {li.name for li in offline_model.layers()}
    numel = sum(int(np.prod(li.shape)) for li in offline_model.layers()
                if li.shape and not any(n.startswith(li.name + ".") for n in names))
    assert bs == min(64, int(1536 * 2 ** 20 // (numel * 4)))
    assert auto_batch(offline_model, x, budget_mb=1.0) == 1          # a small budget: one image per chunk
    sizes = []
    with pytest.raises(Stop):
        perturbed_logits(offline_model, 1001, lambda a, b: (sizes.append(b - a), x.expand(b - a, -1, -1, -1))[1],
                         lambda a, b, l: None, like=x, batch_size=None, backend="torch", progress=_stop_after(2 * bs))
    assert sizes == [bs, bs]


class Stop(Exception):
    """What a cancel raises from ``progress`` (KeyboardInterrupt itself would stop pytest)."""


def _stop_after(n):
    def progress(done, total):
        if done >= n:
            raise Stop
    return progress


def test_interrupt_keeps_the_finished_chunks(tiny):
    x = torch.rand(100, 3, 32, 32)
    got = {}
    with pytest.raises(Stop):
        perturbed_logits(tiny, 100, lambda a, b: x[a:b], lambda a, b, l: got.update({(a, b): l}), like=x[:1],
                         batch_size=10, backend="torch", progress=_stop_after(30))
    assert sorted(got) == [(0, 10), (10, 20), (20, 30)]
    with torch.no_grad():
        assert torch.allclose(got[(20, 30)], tiny(x[20:30]).double(), atol=1e-6)


def test_onnxruntime_gives_the_same_scores(tiny):
    pytest.importorskip("onnxruntime")
    x, _, ref, _, _ = _pass(tiny, 40, batch_size=8, backend="torch")
    _, _, ort, _, used = _pass(tiny, 40, batch_size=8, backend="onnxruntime")
    assert used == "onnxruntime"
    assert torch.allclose(ort, ref, rtol=1e-4, atol=1e-5)
    t = torch.tensor([0, 1, 2] * 13 + [0])
    p = target_scores(ref, t)
    assert torch.allclose(p, ref.softmax(-1)[torch.arange(40), t]) and (p > 0).all() and (p < 1).all()
