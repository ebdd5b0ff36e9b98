"""Synthesis recipes: each reduces its loss on a tiny net; meaning checks on the offline MobileNetV2."""
from __future__ import annotations

import hashlib

import pytest
import torch

import convlens
from convlens.optim import objectives as O
from helpers import Snapshot, tiny_convnet


@pytest.fixture
def tiny():
    return convlens.Model.wrap(tiny_convnet(), input_size=16, classes=["a", "b", "c"])


def _logit(model, images, c):
    with torch.no_grad():
        return model(images)[:, c]


# --- every recipe reduces its loss on a tiny net ------------------------------------------------
@pytest.mark.parametrize("preset", ["simonyan", "yosinski", "robust"])
def test_class_viz_presets_raise_the_logit_on_tiny_net(tiny, preset):
    snap = Snapshot(tiny.net)
    start = float(_logit(tiny, tiny.mean.expand(1, 3, 16, 16), 2)[0])
    v = convlens.visualize_class(tiny, "c", preset=preset, size=16, steps=20)
    assert v.labels == ["c"] and v.images.shape == (1, 3, 16, 16)
    assert float(_logit(tiny, v.images, 2)[0]) > start + 0.02
    assert v.scores[0].item() == pytest.approx(float(_logit(tiny, v.images, 2)[0]), rel=1e-4, abs=1e-5)
    snap.assert_unchanged()


def test_channel_and_neuron_viz_raise_their_unit_on_tiny_net(tiny):
    acts = lambda x: convlens.layer_activations(tiny, x, "3")  # noqa: E731
    grey = tiny.mean.expand(1, 3, 16, 16)
    v = convlens.visualize_channel(tiny, "3", [0, 5], preset="robust", size=16, steps=20)
    a = acts(v.images)
    assert a[0, 0].mean() > acts(grey)[0, 0].mean() + 0.05 and a[1, 5].mean() > acts(grey)[0, 5].mean() + 0.05
    v = convlens.visualize_neuron(tiny, "3", 1, unit=(1, 2), preset="simonyan", size=16, steps=20, l2=0.0)
    assert acts(v.images)[0, 1, 1, 2] > acts(grey)[0, 1, 1, 2] + 0.05
    with pytest.raises(convlens.ConvlensError):
        convlens.visualize_channel(tiny, "3", 99)
    with pytest.raises(convlens.ConvlensError):
        convlens.visualize_class(tiny, "a", preset="nope")


def test_generator_space_viz_raises_the_logit(tiny):
    g = convlens.ConvGenerator(code_dim=8, size=16, width=8)
    snap = Snapshot(g)
    p0 = convlens.optim.GeneratorParam(g, code_shape=(8,), generator_rng=torch.Generator().manual_seed(0),
                                       code_range=(-3, 3))
    start = float(_logit(tiny, p0.image(), 1)[0])
    v = convlens.visualize_class(tiny, 1, param="generator", generator=g, steps=30, transforms="none", lr=0.1)
    assert float(_logit(tiny, v.images, 1)[0]) > start
    z = v.optim.param.z
    assert z.abs().max() <= 3.0  # activation-range clipping
    snap.assert_unchanged()


def test_deepdream_raises_the_norm_on_tiny_net(tiny):
    img = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    d = convlens.deepdream(tiny, img, "3", octaves=2, steps=5, jitter=2)
    assert len(d.octave_norms) == 2 and all(after > before for before, after in d.octave_norms)
    assert d.image.shape == img.shape


def test_inversion_reduces_feature_distance_on_tiny_net(tiny):
    img = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    r = convlens.invert(tiny, img, "1", size=16, steps=100, lr=0.1, tv_weight=0.0, alpha_weight=0.0)
    assert r.distance < 0.3 * r.start_distance


def test_guided_dream_objective_prefers_the_guide():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).T.reshape(1, 2, 1, 2)  # two positions: e0, e1
    guide = torch.tensor([[2.0], [0.0]]).reshape(1, 2, 1, 1)          # guide feature 2*e0
    f = O.Features(torch.zeros(1, 3, 1, 2), torch.zeros(1, 3, 1, 2), {"L": a})
    assert O.guided_dream("L", guide)(f).item() == pytest.approx(2.0 + 0.0)


# --- meaning on the offline MobileNetV2 (light versions in the default run) -------------------------
def test_class_viz_robust_reaches_top1_small(offline_model):
    m = offline_model
    classes = ["flamingo", "Indian cobra"]
    v = convlens.visualize_class(m, classes, size=96, steps=48)
    with torch.no_grad():
        pred = m(v.images).argmax(1).tolist()
    assert pred == [m.class_index(c) for c in classes]


def test_same_seed_same_png(offline_model, tmp_path):
    def png(seed):
        v = convlens.visualize_class(offline_model, "pelican", size=48, steps=4, seed=seed)
        p = convlens.save_png(v.images, tmp_path / f"{seed}_{len(list(tmp_path.iterdir()))}.png")
        return hashlib.sha256(p.read_bytes()).hexdigest()
    assert png(3) == png(3)
    assert png(3) != png(4)


def test_deepdream_increases_layer_norm_every_octave(offline_model, cat):
    d = convlens.deepdream(offline_model, convlens.fit(cat, 128), "features.7", octaves=3, steps=4)
    assert [s for s in d.sizes][-1] == (128, 128)
    for before, after in d.octave_norms:
        assert after > 1.05 * before


def test_inversion_distance_and_earliest_layer_pixels(offline_model, cat):
    r = convlens.invert(offline_model, cat, "features.1", size=96, steps=120)
    # measured: final / start distance about 0.02 at this layer (the start is a random image)
    assert r.distance < 0.1 * r.start_distance
    assert (r.image - r.target).abs().mean() < 0.12
    a, b = (r.image - r.image.mean()).flatten(), (r.target - r.target.mean()).flatten()
    assert float(a @ b / (a.norm() * b.norm())) > 0.8  # pixel correlation with the input


@pytest.fixture
def one_thread():
    """Small-batch work: one thread is as fast on free cores and far faster on loaded ones."""
    from convlens.drivers.forward import thread_budget
    with thread_budget(1):
        yield


def test_facets_are_distinct_and_beat_their_start(offline_model, one_thread):
    m = offline_model
    ds = convlens.sample_dataset(80, size=112)
    src = [n.split(" ")[0] for n in ds.names]
    f = convlens.visualize_facets(m, "features.10", 8, ds, n_facets=2, top=12, size=64, steps=16, octaves=2,
                                  examples=2)
    members = [i for c in f.clusters for i in c]
    assert len(members) == 12 and len(set(members)) == 12  # a partition of the top-12 images
    # the clusters are different kinds of input: their majority source photos differ
    majority = [max(set(src[i] for i in c), key=[src[i] for i in c].count) for c in f.clusters]
    assert majority[0] != majority[1], [[src[i] for i in c] for c in f.clusters]
    # each facet activates the channel (plain spatial mean, not the recipe's own objective) far more than
    # the mean image it started from (measured: about 5x and 50x)
    act = lambda x: convlens.layer_activations(m, x, "features.10")[:, 8].mean((1, 2))  # noqa: E731
    assert (act(f.images) > 2.5 * act(f.starts)).all(), (act(f.starts), act(f.images))
    assert (f.scores > 3 * f.start_scores).all()
    # ...and still looks like its own cluster: closer in pixels to its own start than to the other one
    d = torch.cdist(f.images.flatten(1), f.starts.flatten(1))
    assert (d.argmin(1) == torch.arange(2)).all(), d
    assert f.figure.size[0] > 4 * 64


def test_pick_channel_finds_a_channel_with_varied_top_images(offline_model, one_thread):
    m = offline_model
    ds = convlens.sample_dataset(80, size=112)
    src = [n.split(" ")[0] for n in ds.names]
    c = convlens.pick_channel(m, "features.10", ds, n_facets=2, top=12)
    top = convlens.inspect.top_activations(m, ds, "features.10", [c], k=12, per_image=True)
    sources = [src[int(i)] for i in top.image_index[0]]
    counts = sorted((sources.count(s) for s in set(sources)), reverse=True)
    assert len(counts) >= 2 and counts[1] >= 3, sources  # at least two photos with 3+ top images each


@pytest.mark.slow
def test_class_viz_top1_for_nine_of_ten_classes_and_under_shifts(offline_model):
    m = offline_model
    classes = ["flamingo", "pelican", "ground beetle", "Indian cobra", "goldfish", "tarantula",
               "lemon", "volcano", "zebra", "espresso"]
    v = convlens.visualize_class(m, classes, steps=200)
    idx = torch.tensor([m.class_index(c) for c in classes])
    with torch.no_grad():
        pred = m(v.images).argmax(1)
        ok = pred == idx
        assert int(ok.sum()) >= 9, list(zip(classes, pred.tolist()))
        for dy, dx in ((4, 0), (0, -4), (8, 8)):
            shifted = torch.roll(v.images, shifts=(dy, dx), dims=(2, 3))
            assert int(((m(shifted).argmax(1) == idx) & ok).sum()) >= int(ok.sum()) - 1


@pytest.mark.slow
def test_inversion_row_detail_fades_with_depth(offline_model, cat):
    row = convlens.invert_layers(offline_model, cat, ["features.1", "features.6", "features.14"], size=128, steps=150)
    err = [float((r.image - r.target).abs().mean()) for r in row.inversions]
    assert err[0] < err[1] < err[2]


# --- the trained DCGAN face generator (gan-face-generate, issue 20) ----------------------------------------
def test_face_generator_reproduces_the_packages_own_model():
    """Reference numbers from running the package's own code once (gan_face_generate.models.Generator(0, 3,
    100, 64), load_state_dict(weights.tar['netG_state_dict']), eval, z = torch.randn(2, 100, 1, 1,
    generator=torch.Generator().manual_seed(0)), torch 2.14 CPU): out[0, :, 32, 32], out[1, :, 10, 50] and
    the per-image mean and std."""
    G = convlens.load_face_generator()
    z = torch.randn(2, 100, 1, 1, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = G(z)
    assert y.shape == (2, 3, 64, 64) and G.output_range == "tanh"
    tol = dict(atol=2e-5, rtol=0)
    torch.testing.assert_close(y[0, :, 32, 32], torch.tensor([0.0789838, -0.2474075, -0.1800496]), **tol)
    torch.testing.assert_close(y[1, :, 10, 50], torch.tensor([-0.1486574, -0.1689065, -0.4260339]), **tol)
    torch.testing.assert_close(y.mean((1, 2, 3)), torch.tensor([-0.5985766, -0.4677601]), **tol)
    torch.testing.assert_close(y.std((1, 2, 3)), torch.tensor([0.2450472, 0.3422044]), **tol)
    with torch.no_grad():       # a flat (N, 100) code is the same code
        torch.testing.assert_close(G(z.flatten(1)), y)


def test_face_generator_latent_steps_raise_a_class_probability(offline_model):
    """Generator-space visualization with the trained faces prior: a few Adam steps on z raise p(wig)
    above the start code's (same seed), and the result is still the generator's output."""
    G = convlens.load_face_generator(128)
    target = offline_model.class_index("wig")
    z0 = torch.randn(1, 100, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        p0 = float(offline_model((G(z0) + 1) / 2).softmax(1)[0, target])
    v = convlens.visualize_class(offline_model, "wig", param="generator", generator=G, steps=8, transforms="none")
    with torch.no_grad():
        p = float(offline_model(v.images).softmax(1)[0, target])
    assert p > 3 * p0 and p > 0.02, (p0, p)
    assert v.images.shape == (1, 3, 128, 128)


def test_classviz_cli_generator_faces(tmp_path, capsys):
    from PIL import Image

    from convlens.cli import run
    out = tmp_path / "wig.png"
    assert run(["classviz", "--target", "wig", "--generator", "faces", "--steps", "2", "-o", str(out)]) == 0
    assert Image.open(out).size == (224, 224)              # 64 px faces upsampled to the model's input size
    assert run(["classviz", "--target", "wig", "--generator", "cars", "-o", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'faces'" in err[0] and not (tmp_path / "x.png").exists()
