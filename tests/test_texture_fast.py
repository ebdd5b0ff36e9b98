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
    net = load_fast_style()
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
