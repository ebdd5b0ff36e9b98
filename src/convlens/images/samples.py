"""Images that ship inside installed packages (no download): skimage, scikit-learn, matplotlib, and
paintings from Debian packages (opencv-doc; gcompris-qt-data, see ``paintings``)."""
from __future__ import annotations

import os
from functools import lru_cache
from typing import TYPE_CHECKING

from ..errors import ConvlensError, closest

# The imports inside functions here, in paintings.py and labelled.py (io, assets) keep torch out of `convlens samples`.
if TYPE_CHECKING:  # `convlens samples` lists the names without importing torch
    import torch


def _skimage(name):
    def load():
        import skimage.data
        return getattr(skimage.data, name)()
    return load


def _sklearn(fname):
    def load():
        from sklearn.datasets import load_sample_image
        return load_sample_image(fname)
    return load


def _grace_hopper():
    import matplotlib.cbook
    import numpy as np
    from PIL import Image
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        return np.asarray(Image.open(f).convert("RGB"))


def _starry_night():
    import numpy as np
    from PIL import Image

    from ..assets import data_file
    path = data_file("debian/usr/share/doc/opencv-doc/examples/data/starry_night.jpg",
                     "accda7a19a90f22a4a922fdc8c230167d7abf5f80882171e2cee125c5f12481d", "Debian's opencv-doc")
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _painting(name):
    def load():
        from .paintings import painting
        return painting(name)
    return load


SAMPLES = {
    "chelsea": (_skimage("chelsea"), "a tabby cat (skimage); ImageNet: Egyptian cat / tabby"),
    "coffee": (_skimage("coffee"), "a cup of coffee (skimage); ImageNet: espresso"),
    "astronaut": (_skimage("astronaut"), "Eileen Collins (skimage)"),
    "rocket": (_skimage("rocket"), "a rocket on its launch pad (skimage)"),
    "china": (_sklearn("china.jpg"), "a Chinese temple (scikit-learn)"),
    "flower": (_sklearn("flower.jpg"), "a flower (scikit-learn)"),
    "grace_hopper": (_grace_hopper, "Grace Hopper in uniform (matplotlib)"),
    "brick": (_skimage("brick"), "grey brick wall texture, 512x512 (skimage)"),
    "grass": (_skimage("grass"), "grey grass texture, 512x512 (skimage)"),
    "gravel": (_skimage("gravel"), "grey gravel texture, 512x512 (skimage)"),
    "starry_night": (_starry_night, "Van Gogh, The Starry Night, 1889, public domain (Debian opencv-doc)"),
}
PHOTOS = ["chelsea", "coffee", "astronaut", "rocket", "china", "flower", "grace_hopper"]
TEXTURES = ["brick", "grass", "gravel"]
PAINTINGS = ["starry_night"]


def _add_paintings():
    """GCompris's public-domain paintings (reassembled from jigsaw pieces, cached after the first use)."""
    from .paintings import PAINTINGS as GCOMPRIS
    for name, p in GCOMPRIS.items():
        SAMPLES[name] = (_painting(name), p.credit)
        PAINTINGS.append(name)


_add_paintings()


def sample_names() -> list[str]:
    """Names of the bundled sample images."""
    return list(SAMPLES)


@lru_cache(maxsize=None)
def _sample_cached(name: str) -> torch.Tensor:
    from .io import load_image
    return load_image(SAMPLES[name][0]())


def sample_image(name: str, size=None) -> torch.Tensor:
    """A bundled image as (1, 3, H, W) float32 in [0, 1]; ``size`` as in ``load_image``.

    Example:
        >>> sample_image("chelsea").shape
        torch.Size([1, 3, 300, 451])
    """
    if name not in SAMPLES:
        raise ConvlensError(f"unknown sample image '{name}'; closest: {closest(name, SAMPLES)} (all: {', '.join(SAMPLES)})")
    from .io import fit
    img = _sample_cached(name).clone()
    return fit(img, size) if size is not None else img


def is_sample(name) -> bool:
    return isinstance(name, str) and name in SAMPLES


def sample_name(arg: str) -> str | None:
    """The bundled sample ``arg`` names (``chelsea`` or ``sample:chelsea``), None when it names none
    or an existing file of that name is meant (without the ``sample:`` prefix)."""
    name = arg.removeprefix("sample:")
    if name in SAMPLES and not (os.path.exists(arg) and not arg.startswith("sample:")):
        return name
    return None


def image_from_arg(arg: str, size=None) -> torch.Tensor:
    """A CLI argument: a sample name (``chelsea``, or ``sample:chelsea``) or a file path (the rule of
    ``sample_name``, which ``resolve_images`` shares)."""
    from .io import load_image
    name = sample_name(arg)
    if name is not None:
        return sample_image(name, size)
    return load_image(arg, size)
