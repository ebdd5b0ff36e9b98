"""Texture and style sample images: the bundled samples (``convlens samples``) plus a few more
colourful images that ship with scikit-image, useful as styles (no download)."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from ..errors import ConvlensError
from ..images.io import load_image
from ..images.samples import sample_names
from ..images.io import fit, load_image
from ..images.samples import image_from_arg
from ..images.io import resize_long

STYLE_SAMPLES = {
    "hubble": ("hubble_deep_field", "Hubble deep field: dark sky, bright coloured galaxies (skimage)"),
    "ihc": ("immunohistochemistry", "immunohistochemistry stain: blue-brown painterly blobs (skimage)"),
    "colorwheel": ("colorwheel", "a colour wheel (skimage)"),
}


@lru_cache(maxsize=None)
def _style_cached(name: str) -> torch.Tensor:
    import skimage.data
    return load_image(np.asarray(getattr(skimage.data, STYLE_SAMPLES[name][0])()))


def texture_names() -> list[str]:
    """Every name ``texture_image`` accepts besides paths."""
    return sample_names() + list(STYLE_SAMPLES)


def texture_image(source, size=None) -> torch.Tensor:
    """A sample name (``convlens samples`` + hubble, ihc, colorwheel), a path, an array or a tensor
    -> (1, 3, H, W) float32 in [0, 1]; ``size`` as in ``load_image``."""
    if isinstance(source, str):
        name = source.removeprefix("sample:")
        if name in STYLE_SAMPLES:
            img = _style_cached(name).clone()
            return fit(img, size) if size is not None else img
        try:
            return image_from_arg(source, size)
        except ConvlensError as e:
            raise ConvlensError(f"{e}; style samples: {', '.join(STYLE_SAMPLES)}") from None
    return load_image(source, size)


def prepare_sample(source, crop: int = 0, size: int = 0) -> torch.Tensor:
    """``texture_image(source)``, then a centre crop of ``crop`` x ``crop`` raw pixels (0: whole), then
    a resize of the longer side to ``size`` (0: keep). Small samples keep the non-neural methods fast.

    Example: ``prepare_sample("brick", crop=256, size=80)``: 4 rows of bricks in 80 x 80 pixels.
    """
    img = texture_image(source)
    if crop:
        h, w = img.shape[-2:]
        c = min(crop, h, w)
        top, left = (h - c) // 2, (w - c) // 2
        img = img[..., top:top + c, left:left + c]
    if size:
        img = resize_long(img, size)
    return img
