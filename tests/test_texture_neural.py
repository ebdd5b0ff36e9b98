"""Gram matrices, style/content losses, Gatys texture synthesis and style transfer on the engine,
and the offline VGG-16 (HED weights) against a hand-written reference convolution."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import convlens
from convlens.optim import objectives as O
from convlens.recipes.style import (content_objective, gram, luminance, rgb_to_yiq, smooth_features, style_objective,
                                    style_targets, style_transfer, synthesize_texture)
from helpers import Snapshot


def tiny_model():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.ReLU())
    return convlens.Model(net, mean=(0.5,) * 3, std=(0.25,) * 3, input_size=(32, 32), classes=None, name="tiny")


def test_gram_symmetric_psd_and_hand_computed():
    f = torch.randn(2, 4, 3, 5, dtype=torch.float64)
    g = gram(f, normalize="none")
    ref = torch.stack([sum(torch.outer(f[n, :, y, x], f[n, :, y, x]) for y in range(3) for x in range(5))
                       for n in range(2)])
    torch.testing.assert_close(g, ref)
    torch.testing.assert_close(g, g.transpose(1, 2))
    assert (torch.linalg.eigvalsh(g) > -1e-10).all()
    torch.testing.assert_close(gram(f), ref / 15)                     # averaged over the M = 15 positions
    # normalize="gatys": sum (G - G^)^2 is exactly the lecture's E_l = 1/(4 N^2 M^2) sum (F F^T - F^ F^^T)^2
    f2 = torch.randn(1, 4, 3, 5, dtype=torch.float64)
    e_lecture = ((gram(f[:1], "none") - gram(f2, "none")) ** 2).sum() / (4 * 4 ** 2 * 15 ** 2)
    torch.testing.assert_close(((gram(f[:1], "gatys") - gram(f2, "gatys")) ** 2).sum(), e_lecture)


def test_losses_zero_at_target_and_positive_elsewhere():
    m = tiny_model()
    x, y = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    layers = ["1", "3"]
    for smooth in (None, "softmax"):
        tg = style_targets(m, x, layers, smooth)
        acts = convlens.probe.activations(m, x, layers)
        c = content_objective({"3": acts["3"]}, smooth)
        s = style_objective([tg], [1.0], smooth=smooth)
        f = O.Features(x, x, acts)
        assert float(s(f)) == pytest.approx(0.0, abs=1e-10) and float(c(f)) == pytest.approx(0.0, abs=1e-10)
        fy = O.Features(y, y, convlens.probe.activations(m, y, layers))
        assert float(s(fy)) > 1e-4 and float(c(fy)) > 1e-4


def test_softmax_smoothing_is_a_layer_softmax_times_size():
    a = torch.randn(2, 3, 4, 5)
    s = smooth_features(a, "softmax")
    ref = torch.softmax(a.reshape(2, -1), 1).reshape(a.shape) * 60
    torch.testing.assert_close(s, ref)
    torch.testing.assert_close(s.mean((1, 2, 3)), torch.ones(2))


def test_texture_synthesis_style_loss_falls_99_percent_from_noise():
    m = tiny_model()
    snap = Snapshot(m)
    texture = convlens.sample_image("gravel", 32)
    r = synthesize_texture(m, texture, size=32, sample_size=32, steps=60, layers=("1", "3"))
    assert r.losses["style"] <= 0.01 * r.losses_start["style"]
    assert r.image.shape == (1, 3, 32, 32) and 0 <= float(r.image.min()) and float(r.image.max()) <= 1
    snap.assert_unchanged()
    # Adam also lowers it (the engine's optimizer option)
    ra = synthesize_texture(m, texture, size=32, sample_size=32, steps=30, layers=("1", "3"), optimizer="adam", lr=0.05)
    assert ra.losses["style"] < 0.5 * ra.losses_start["style"]


def test_style_transfer_options_on_tiny_net():
    m = tiny_model()
    content, s1, s2 = torch.rand(1, 3, 24, 32), convlens.sample_image("gravel", 32), convlens.sample_image("coffee", 32)
    kw = dict(content_layers=("3",), style_layers=("1", "3"), size=32, steps=8)
    r = style_transfer(m, content, s1, **kw)
    assert r.image.shape == (1, 3, 24, 32) and r.losses["style"] < r.losses_start["style"]
    assert r.losses_start["content"] == pytest.approx(0.0, abs=1e-8)   # init = content
    # a second style with weight 0 changes nothing
    r0 = style_transfer(m, content, [s1, s2], styles_weights=[1.0, 0.0], **kw)
    torch.testing.assert_close(r0.image, r.image, atol=1e-5, rtol=0)
    # colour preservation: the result's chrominance (YIQ's I, Q) is the content's
    rc = style_transfer(m, content, s2, preserve_color=True, **kw)
    yiq_out, yiq_in = rgb_to_yiq(rc.image), rgb_to_yiq(content)
    inside = (rc.image > 0.01).all(1, keepdim=True) & (rc.image < 0.99).all(1, keepdim=True)  # not clipped
    assert inside.float().mean() > 0.5
    diff = (yiq_out[:, 1:] - yiq_in[:, 1:]).abs()[inside.expand(-1, 2, -1, -1)]
    assert float(diff.max()) < 1e-4
    assert torch.allclose(luminance(content)[:, 0], luminance(content)[:, 2])
    # noise init and coarse-to-fine
    rn = style_transfer(m, content, s1, init="noise", octaves=2, **kw)
    assert len(rn.optim) == 2 and rn.losses["style"] < rn.losses_start["style"]
    with pytest.raises(convlens.errors.ConvlensError):
        style_transfer(m, content, [s1, s2], styles_weights=[1.0], **kw)
    with pytest.raises(convlens.errors.ConvlensError):
        style_transfer(m, content, s1, size=32, steps=2)   # no default layers for a custom net


def _ref_conv(x, w, b):
    """Hand-written 3x3 'same' convolution: x (C, H, W), w (O, C, 3, 3) numpy."""
    c, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    out = np.zeros((w.shape[0], h, wd))
    for dy in range(3):
        for dx in range(3):
            out += np.einsum("oc,chw->ohw", w[:, :, dy, dx], xp[:, dy:dy + h, dx:dx + wd])
    return out + b[:, None, None]


def test_hed_weights_shapes_and_reference_conv():
    import h5py

    from convlens.models.hed import HED_MEAN_BGR, VGG16_CONVS, hed_weights_path
    m = convlens.load_model("vgg16-hed")
    assert m.classes is None and m.name == "vgg16-hed"
    convs = [m.net.features[i] for i, _ in VGG16_CONVS]
    assert [tuple(c.weight.shape) for c in convs][:3] == [(64, 3, 3, 3), (64, 64, 3, 3), (128, 64, 3, 3)]
    assert tuple(convs[-1].weight.shape) == (512, 512, 3, 3)
    x = torch.rand(1, 3, 10, 12)
    with h5py.File(hed_weights_path(), "r") as f:   # raw Keras (kh, kw, in, out) kernels, BGR input
        k1, b1 = f["block1/layers/conv2d/vars/0"][()], f["block1/layers/conv2d/vars/1"][()]
        k2, b2 = f["block1/layers/conv2d_1/vars/0"][()], f["block1/layers/conv2d_1/vars/1"][()]
    bgr = x[0].numpy()[::-1].astype(np.float64) * 255 - np.array(HED_MEAN_BGR)[:, None, None]
    h = np.maximum(_ref_conv(bgr, k1.transpose(3, 2, 0, 1), b1), 0)
    h = np.maximum(_ref_conv(h, k2.transpose(3, 2, 0, 1), b2), 0)
    got = convlens.probe.activations(m, x, "features.3")[0].double().numpy()
    np.testing.assert_allclose(got, h, rtol=1e-4, atol=1e-3 * np.abs(h).max())


def test_style_transfer_vgg16_hed_changes_the_image_towards_the_style():
    m = convlens.load_model("vgg16-hed")
    r = style_transfer(m, "chelsea", "ihc", size=64, steps=20)
    assert r.losses["style"] < 0.5 * r.losses_start["style"]
    assert float((r.image - r.content).abs().mean()) > 0.02   # visibly changed


def _edges(x: torch.Tensor) -> np.ndarray:
    from skimage.filters import sobel
    return sobel(luminance(x)[0, 0].numpy().astype(np.float64))


@pytest.mark.slow
def test_gatys_on_vgg16_imagenet_keeps_the_cat_and_takes_the_paintings_colours():
    """The default network (ImageNet VGG-16): the result's edges stay the cat's (SSIM of Sobel edge maps, far
    above the painting's own), and its mean colour moves most of the way to The Starry Night's."""
    from skimage.metrics import structural_similarity as ssim
    from convlens.recipes.style import DEFAULT_STYLE_MODEL, resize_long
    assert DEFAULT_STYLE_MODEL == "vgg16-imagenet"
    r = style_transfer(convlens.load_model("vgg16-imagenet"), "chelsea", "starry_night", size=96, steps=40)
    c, out = r.content, r.image
    s = torch.nn.functional.interpolate(r.styles[0], size=c.shape[-2:], mode="bilinear", antialias=True)
    e_c, e_out, e_s = _edges(c), _edges(out), _edges(s)
    rng = max(e_c.max(), e_out.max())
    keep, other = ssim(e_c, e_out, data_range=rng), ssim(e_c, e_s, data_range=rng)
    assert keep > 0.2 and keep > other + 0.2, (keep, other)   # measured 0.29 vs 0.02
    mc, ms, mo = (t.mean((0, 2, 3)) for t in (c, resize_long(r.styles[0], 96), out))
    assert float((mo - ms).norm()) < 0.5 * float((mc - ms).norm())


def test_gram_custom_backward_passes_gradcheck():
    """gram's one-matmul backward (dF = (dG + dG^T) F) against finite differences, first and second order."""
    f = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: gram(t, normalize="gatys"), (f,))
    assert torch.autograd.gradgradcheck(lambda t: gram(t), (f,))
