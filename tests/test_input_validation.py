"""Bad images at the Python API's edge: each one is one ConvlensError line naming the form and the fix
(issue 19.11). Every image enters a network through Model.forward, so every technique gets the check."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import convlens
from convlens.errors import ConvlensError
from helpers import tiny_convnet


@pytest.fixture(scope="module")
def model():
    return convlens.Model.wrap(tiny_convnet(), input_size=16, classes=["a", "b", "c"])


def _cat16():
    return torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))


NAN = _cat16().index_put_((torch.tensor(0), torch.tensor(1), torch.tensor(2), torch.tensor(3)), torch.tensor(float("nan")))
BAD = {  # name: (images, words the message must contain)
    "nan": (NAN, ["1 NaN or inf", "[0, 1]", "nan_to_num"]),
    "inf": (_cat16() / 0, ["NaN or inf", "[0, 1]"]),
    "uint8": ((_cat16() * 255).to(torch.uint8), ["dtype uint8", "/ 255", "load_image"]),
    "0-255 floats": (_cat16() * 255, ["0-255", "divide by 255"]),
    "normalized": ((_cat16() - 0.9) / 0.2, ["normalized", "[0, 1]"]),
    "2-D": (torch.rand(16, 16), ["(16, 16)", "expand(3, -1, -1).unsqueeze(0)"]),
    "3-D": (torch.rand(3, 16, 16), ["(3, 16, 16)", "unsqueeze(0)"]),
    "5-D": (torch.rand(1, 1, 3, 16, 16), ["(1, 1, 3, 16, 16)", "load_image"]),
    "RGBA": (torch.rand(1, 4, 16, 16), ["4 channels", "images[:, :3]"]),
    "grey": (torch.rand(1, 1, 16, 16), ["1 channels", "expand(-1, 3, -1, -1)"]),
    "channels-last": (torch.rand(1, 16, 16, 3), ["channels-last", "permute(0, 3, 1, 2)"]),
    "empty batch": (torch.rand(0, 3, 16, 16), ["empty batch", "(0, 3, 16, 16)"]),
    "bool": (torch.ones(1, 3, 16, 16, dtype=torch.bool), ["dtype bool", "float()"]),
    "int64": (torch.ones(1, 3, 16, 16, dtype=torch.int64), ["dtype int64", "float()"]),
    "numpy": (np.zeros((1, 3, 16, 16), np.float32), ["torch tensor", "ndarray", "load_image"]),
}


@pytest.mark.parametrize("name", list(BAD))
@pytest.mark.parametrize("entry", ["forward", "predict", "saliency", "targets"])
def test_each_bad_image_is_one_line_naming_the_form_and_the_fix(model, name, entry):
    images, words = BAD[name]
    if entry == "saliency" and name == "3-D":
        pytest.skip("attribution's check_images adds the batch dimension to one (3, H, W) image on purpose")
    calls = {"forward": lambda: model(images), "predict": lambda: convlens.predict(model, images),
             "saliency": lambda: convlens.saliency(model, images), "targets": lambda: model.targets(None, images)}
    with pytest.raises(ConvlensError) as e:
        calls[entry]()
    msg = str(e.value)
    assert "\n" not in msg
    if entry in ("forward", "predict"):  # the edge's own message (techniques may reject the rank first)
        for w in words:
            assert w in msg, (w, msg)
        assert "float32 (N, 3, H, W) in [0, 1]" in msg or "torch tensor" in msg


def test_small_excursions_and_other_float_dtypes_pass(model):
    """SmoothGrad's noise, IG paths and unclamped steps leave [0, 1] a little: same logits as before."""
    x = _cat16()
    noisy = x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))  # ~[-0.9, 1.9]
    ref = model.net((noisy - model.mean) / model.std)
    assert torch.allclose(model(noisy), ref, atol=1e-6)
    assert torch.allclose(model(x.double()), model(x), atol=1e-5)  # float64 / float16 inputs are cast
    assert torch.allclose(model(x.half()).float(), model(x.half().float()), atol=1e-6)
    dark = torch.full((1, 3, 16, 16), 1.2)  # a bright excursion on every pixel is still not 0-255
    model(dark)
    sg = convlens.smoothgrad(model, x, target=0, noise=0.5, samples=4)
    assert torch.isfinite(sg.map).all()


def test_float64_model_takes_float32_images():
    m = convlens.Model.wrap(tiny_convnet().double(), input_size=16, classes=["a", "b", "c"])
    x = _cat16()
    assert m(x).dtype == torch.float64
    assert torch.allclose(m(x), m.net((x.double() - m.mean) / m.std))


def test_predict_rejects_a_topk_below_one(model):
    with pytest.raises(ConvlensError, match="topk must be at least 1"):
        convlens.predict(model, _cat16(), topk=0)


def test_the_optimization_loop_may_leave_the_unit_range_the_edge_may_not(model):
    """L-BFGS on raw pixels can overshoot far outside [0, 1] for a few steps (Gatys textures did, from the
    first steps): inside convlens's own loop that is allowed; the same images from a caller are refused."""
    from convlens.optim import objectives, params
    init = torch.full((1, 3, 16, 16), 200.0)   # a whole image on the 0-255 scale
    r = convlens.optimize(model, objectives.class_logit(0), params.PixelParam(init, clamp=False), steps=2, lr=0.1)
    assert r.steps == 2
    with torch.no_grad():  # its first objective value is the logit of the 0-255 image itself
        ref = model.net((init - model.mean) / model.std)[0, 0]
    assert torch.allclose(r.history[0].flatten()[0], ref, rtol=1e-5)
    with pytest.raises(ConvlensError, match="0-255"):
        model(init)
