"""ImageNet-1k class names, from torchvision's own metadata (no download).

They label datasets (``labelled_photos("imagenet20")``) as well as models' outputs, so they live
here, below ``models/`` (``convlens.models.imagenet_classes`` is the same function).
"""
from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names in torchvision's order (index 285 is 'Egyptian cat')."""
    from torchvision.models import ResNet18_Weights

    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])
