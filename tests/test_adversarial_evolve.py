"""The evolutionary unrecognizable images (Nguyen et al. 2015): genomes paint what they should, the
reported confidence is the model's on the returned image, and evolution raises it."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import convlens
from convlens.adversarial.evolve import CPPN, DirectEncoding
from convlens.errors import ConvlensError

from helpers import Snapshot, tiny_convnet


def test_cppn_and_direct_paint_by_hand():
    c = CPPN(hidden=4, layers=2, size=8)
    assert c.dim == (3 * 4 + 4) + (4 * 4 + 4) + (4 * 3 + 3)
    assert torch.allclose(c.render(torch.zeros(2, c.dim)), torch.full((2, 3, 8, 8), 0.5))  # sigmoid(0)
    # one genome by hand: only the output biases and unit 0 of layer 1 (a sine of x) matter
    g = torch.zeros(c.dim)
    g[0] = 1.0                          # W1[x -> unit 0]
    out_w = (3 * 4 + 4) + (4 * 4 + 4)    # start of the output layer's weights
    hid_w = 3 * 4 + 4                    # start of layer 2's weights
    g[hid_w + 0] = 1.0                   # W2[unit 0 -> unit 0]: sin(sin(3x))
    g[out_w + 0] = 2.0                   # Wout[unit 0 -> red]
    img = c.render(g[None])[0]
    x = 3 * torch.linspace(-1, 1, 8)
    want_red = torch.sigmoid(2 * torch.sin(torch.sin(x)))
    assert torch.allclose(img[0], want_red.expand(8, 8), atol=1e-6)
    assert torch.allclose(img[1:], torch.full((2, 8, 8), 0.5))
    d = DirectEncoding(grid=2, size=4)
    gen = torch.randn(1, d.dim)
    assert torch.allclose(d.render(gen), F.interpolate(torch.sigmoid(gen.view(1, 3, 2, 2)), size=(4, 4), mode="bilinear"))


@pytest.mark.parametrize("encoding", ["cppn", "direct"])
def test_evolution_raises_the_confidence_the_model_reports(encoding):
    m = convlens.Model.wrap(tiny_convnet(classes=10), input_size=32)
    snap = Snapshot(m)
    e = convlens.evolve_unrecognizable(m, [3, 7], encoding=encoding, generations=15, population=8, size=32,
                                       grid=4, confidence=0.9999)
    snap.assert_unchanged()
    with torch.no_grad():
        p = m(e.images).softmax(-1)
    assert torch.allclose(p[torch.arange(2), e.targets], e.confidence.to(p.dtype), atol=1e-5)
    assert all(len(h) == g for h, g in zip(e.history, e.generations))
    assert all(h == sorted(h) for h in e.history)  # best so far never drops
    assert bool((e.confidence > e.start_confidence).all())
    assert e.evaluations[0] == 1 + 15 * 9  # the first mean, then the mean and 8 mirrored samples per generation
    assert e.render(tile=32).width >= 2 * 32


def test_evolution_stops_at_the_confidence_and_checks_arguments():
    m = convlens.Model.wrap(tiny_convnet(classes=3), input_size=16)
    full = convlens.evolve_unrecognizable(m, 0, generations=30, population=4, size=16, confidence=0.9999)
    h = full.history[0]
    level = h[9]
    assert level > full.start_confidence[0]
    first = next(i for i, v in enumerate(h) if v >= level)  # same seed: the same run, stopped there
    e = convlens.evolve_unrecognizable(m, 0, generations=30, population=4, size=16, confidence=level)
    assert e.generations[0] == first + 1 and e.history[0] == h[:first + 1]
    assert float(e.confidence[0]) == pytest.approx(level)
    for bad in (dict(encoding="neat"), dict(population=1), dict(confidence=1.0), dict(generations=0)):
        with pytest.raises(ConvlensError) as err:
            convlens.evolve_unrecognizable(m, 0, size=16, **bad)
        assert "\n" not in str(err.value)


def test_an_interrupt_keeps_the_best_image_so_far():
    """Ctrl-C (or a cancelled job) during the second target's evolution: the first target whole, the
    second's best image after the generations run, both the same as in the uninterrupted run."""
    m = convlens.Model.wrap(tiny_convnet(classes=10), input_size=32)
    kw = dict(generations=6, population=4, size=32, confidence=0.9999)
    full = convlens.evolve_unrecognizable(m, [3, 7], **kw)
    assert not full.interrupted

    def stop_at(n):
        def progress(done, total):
            if done == n:
                raise KeyboardInterrupt
        return progress
    e = convlens.evolve_unrecognizable(m, [3, 7], progress=stop_at(6 + 2), **kw)   # 2 generations into target 7
    assert e.interrupted and e.targets.tolist() == [3, 7] and e.generations == [6, 2]
    assert e.history[0] == full.history[0] and e.history[1] == full.history[1][:2]
    with torch.no_grad():
        p = m(e.images).softmax(-1)
    assert torch.allclose(p[torch.arange(2), e.targets], e.confidence.to(p.dtype), atol=1e-5)
    assert torch.equal(e.images[0], full.images[0])
    first = convlens.evolve_unrecognizable(m, [3, 7], progress=stop_at(1), **kw)  # in target 3's first generation
    assert first.interrupted and first.targets.tolist() == [3] and first.generations == [1]


@pytest.mark.slow
def test_cppn_evolution_on_mobilenet(offline_model):
    """Offline MobileNetV2, 96 px: from ~0 to a visible confidence in 30 generations (measured: starfish 37%)."""
    m = offline_model
    e = convlens.evolve_unrecognizable(m, "starfish", generations=30, size=96)
    assert e.start_confidence[0] < 0.01 and e.confidence[0] > 0.2
    assert math.isclose(float(m(e.images).softmax(-1)[0, e.targets[0]]), float(e.confidence[0]), abs_tol=1e-4)
