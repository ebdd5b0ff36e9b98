"""The stem convolution's input gradient by output phase equals autograd's (drivers/stem_grad.py)."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import convlens
from convlens.drivers.forward import inference_twin
from convlens.drivers.stem_grad import StemConv2d, eligible, speed_up_stems, stem_input_grad


@pytest.mark.parametrize("out_ch,k,s,p,size", [
    (64, 7, 2, 3, 224),   # ResNet
    (32, 3, 2, 1, 224),   # MobileNet / EfficientNet
    (64, 11, 4, 2, 224),  # AlexNet
    (64, 7, 2, 3, 225),   # odd size: the last input row is never read
    (24, 4, 4, 0, 30),    # patchify (ConvNeXt)
    (8, 5, 3, 0, 17),     # stride not dividing the kernel
])
def test_input_gradient_equals_autograd(out_ch, k, s, p, size):
    g = torch.Generator().manual_seed(k * 100 + s)
    w = torch.randn(out_ch, 3, k, k, generator=g, dtype=torch.float64)
    x = torch.randn(2, 3, size, size, generator=g, dtype=torch.float64, requires_grad=True)
    y = F.conv2d(x, w, stride=s, padding=p)
    up = torch.randn(y.shape, generator=g, dtype=torch.float64)
    (ref,) = torch.autograd.grad(y, x, up)
    ours = stem_input_grad(up, w, s, p, (size, size))
    assert ours.shape == ref.shape
    assert float((ours - ref).abs().max()) < 1e-10 * float(ref.abs().max())


def test_stem_conv_module_gradients_and_forward_equal_conv2d():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 16, 7, stride=2, padding=3).double()
    fast = nn.Conv2d(3, 16, 7, stride=2, padding=3).double()
    fast.load_state_dict(conv.state_dict())
    assert speed_up_stems(nn.Sequential(fast)) == ["0"] and isinstance(fast, StemConv2d)
    x = torch.rand(2, 3, 40, 40, dtype=torch.float64)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ya, yb = conv(xa), fast(xb)
    assert torch.equal(ya, yb)  # the same F.conv2d call
    up = torch.randn_like(ya)
    ga = torch.autograd.grad(ya, (xa, conv.weight, conv.bias), up)
    gb = torch.autograd.grad(yb, (xb, fast.weight, fast.bias), up)
    for a, b in zip(ga, gb):
        assert float((a - b).abs().max()) < 1e-10 * float(a.abs().max())


def test_only_plain_strided_few_channel_convs_are_swapped():
    assert eligible(nn.Conv2d(3, 8, 3, stride=2, padding=1))
    assert not eligible(nn.Conv2d(3, 8, 3, stride=1, padding=1))           # stride 1: no gain
    assert not eligible(nn.Conv2d(64, 64, 3, stride=2, padding=1))         # not a stem
    assert not eligible(nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2))
    assert not eligible(nn.Conv2d(3, 8, 3, stride=2, padding=2, dilation=2))
    assert not eligible(nn.Conv2d(3, 8, 3, stride=(2, 1), padding=1))


def test_resnet_twin_uses_the_fast_stem_and_saliency_is_unchanged():
    """The twin's input gradient (saliency, attacks) equals the plain model's in float64."""
    m = convlens.load_model("resnet18", weights=None).double()
    twin = inference_twin(m)
    assert isinstance(twin.net.conv1, StemConv2d)
    assert type(m.net.conv1) is nn.Conv2d  # the user's model is untouched
    x = convlens.sample_dataset(2, size=64).tensor().double()
    grads = []
    for net in (m, twin):
        xi = x.clone().requires_grad_(True)
        (gi,) = torch.autograd.grad(net(xi)[:, 3].sum(), xi)
        grads.append(gi)
    assert float((grads[0] - grads[1]).abs().max()) < 1e-9 * float(grads[0].abs().max())
