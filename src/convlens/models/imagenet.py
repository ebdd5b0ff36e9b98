"""ImageNet-1k normalization and class names (the names live in ``images/imagenet.py``)."""
from __future__ import annotations

from ..images.imagenet import imagenet_classes  # noqa: F401 - public here as before

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
