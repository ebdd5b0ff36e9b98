"""A few hundred real images with no download (``sample_dataset``, ``samples:N`` in ``resolve_images``): random crops, scales and flips of bundled photos.

Sources (all shipped inside installed packages, see docs/inspect.md): the foundation's sample photos
(chelsea, coffee, astronaut, rocket, china, flower, grace_hopper), more scikit-image pictures
(motorcycle, hubble, ihc, colorwheel, camera, coins, clock, retina) and the grey textures (brick,
grass, gravel).

Image i of ``sample_dataset(n, size, seed)``:
  * i < number of sources: source i, whole (shorter side resized to ``size``, centre crop);
  * otherwise: a source drawn uniformly at random, a square crop whose side is a fraction
    s ~ logUniform(0.15, 1) of the source's shorter side, at a uniformly random position,
    mirrored left-right with probability 1/2, resized to ``size`` x ``size`` (PIL's antialiased
    bilinear filter, from the 8-bit source, so pixel values are multiples of 1/255).
All draws come from one ``torch.Generator(seed)``: the same (n, size, seed) gives the same images.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from ..errors import ConvlensError
from .io import fit, load_image, to_uint8
from .samples import PHOTOS, TEXTURES, sample_image


def _skimage(name, pick=None):
    def load():
        import skimage.data
        a = getattr(skimage.data, name)()
        return a[0] if pick is not None else a
    return load


EXTRA = {
    "motorcycle": _skimage("stereo_motorcycle", pick=0),
    "hubble": _skimage("hubble_deep_field"),
    "ihc": _skimage("immunohistochemistry"),
    "colorwheel": _skimage("colorwheel"),
    "camera": _skimage("camera"),
    "coins": _skimage("coins"),
    "clock": _skimage("clock"),
    "retina": _skimage("retina"),
}
SOURCES = [*PHOTOS, *EXTRA, *TEXTURES]


@lru_cache(maxsize=None)
def source_image(name: str) -> torch.Tensor:
    """The whole source photo ``name`` of the sample set (cached), (1, 3, H, W)."""
    if name in EXTRA:
        return load_image(EXTRA[name]())
    return sample_image(name)


@lru_cache(maxsize=None)
def source_pil(name: str) -> Image.Image:
    """``source_image(name)`` as an 8-bit PIL image (cached): what the crops are cut from."""
    return Image.fromarray(to_uint8(source_image(name)))


class SampleDataset(Sequence):
    """A lazy, indexable set of (1, 3, size, size) images built from bundled photos (see module doc).

    ``ds[i]`` is an image; ``ds.names[i]`` says how it was made, e.g. ``chelsea crop 212px@(40,95) flip``, ``ds.labels[i]``
    its source photo (``chelsea``);
    ``ds.tensor()`` materializes all of them (N, 3, size, size). Iterating is a valid ``images``
    argument of ``top_activations`` / ``max_activating_patches``.
    """

    def __init__(self, n: int = 300, size: int = 224, seed: int = 0, sources: Sequence[str] | None = None):
        if n < 1:
            raise ConvlensError(f"sample_dataset needs n >= 1, got {n}")
        if size < 8:
            raise ConvlensError(f"sample_dataset size must be at least 8 px, got {size}")
        self.sources = list(sources or SOURCES)
        unknown = [s for s in self.sources if s not in SOURCES]
        if unknown:
            raise ConvlensError(f"unknown sample source(s) {unknown}; choose from {', '.join(SOURCES)}")
        self.n, self.size, self.seed = int(n), int(size), int(seed)
        g = torch.Generator().manual_seed(self.seed)
        self._params = []
        lo, hi = math.log(0.15), 0.0
        for i in range(self.n):
            if i < len(self.sources):
                self._params.append((i, None, None, None, False))
                continue
            src = int(torch.randint(len(self.sources), (1,), generator=g))
            frac = math.exp(lo + (hi - lo) * float(torch.rand(1, generator=g)))
            u, v = float(torch.rand(1, generator=g)), float(torch.rand(1, generator=g))
            flip = bool(torch.rand(1, generator=g) < 0.5)
            self._params.append((src, frac, u, v, flip))

    def __len__(self) -> int:
        return self.n

    def _box(self, i: int):
        src, frac, u, v, flip = self._params[i]
        img = source_image(self.sources[src])
        H, W = img.shape[-2:]
        if frac is None:
            return src, img, None, flip
        side = max(8, int(round(frac * min(H, W))))
        top, left = int(u * (H - side)), int(v * (W - side))
        return src, img, (top, left, side), flip

    def name(self, i: int) -> str:
        src, _, box, flip = self._box(i)
        s = self.sources[src]
        if box is None:
            return f"{s} whole"
        top, left, side = box
        return f"{s} crop {side}px@({top},{left})" + (" flip" if flip else "")

    @property
    def names(self) -> list[str]:
        return [self.name(i) for i in range(self.n)]

    @property
    def labels(self) -> list[str]:
        """The source photo of each image (``chelsea`` for every crop of chelsea): a store made of the
        set records it as the row's label, so maps colour and search by it."""
        return [self.sources[p[0]] for p in self._params]

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.n))]
        i = int(i)
        if i < 0:
            i += self.n
        if not 0 <= i < self.n:
            raise IndexError(f"sample index {i} out of range 0..{self.n - 1}")
        src, img, box, flip = self._box(i)
        if box is None:
            return fit(img, self.size).contiguous()
        top, left, side = box
        # PIL's antialiased bilinear resize: ~7x faster than torch's on CPU, and deterministic
        crop = source_pil(self.sources[src]).crop((left, top, left + side, top + side))
        crop = crop.resize((self.size, self.size), Image.BILINEAR)
        if flip:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        return torch.from_numpy(np.asarray(crop).transpose(2, 0, 1).astype(np.float32) / 255.0)[None].contiguous()

    def __iter__(self) -> Iterator[torch.Tensor]:
        for i in range(self.n):
            yield self[i]

    def tensor(self) -> torch.Tensor:
        """All images as one (N, 3, size, size) tensor (N * 3 * size^2 * 4 bytes)."""
        return torch.cat(list(self))

    def __repr__(self) -> str:
        return f"SampleDataset(n={self.n}, size={self.size}, seed={self.seed}, sources={len(self.sources)})"


def sample_dataset(n: int = 300, size: int = 224, seed: int = 0, sources: Sequence[str] | None = None) -> SampleDataset:
    """A few hundred real images made offline from bundled photos (crops, scales, flips; see module doc).

    Args:
        n: number of images; size: side in pixels; seed: the crops / flips drawn.
        sources: subset of ``SOURCES`` to draw from (default: all 18).
    Returns:
        ``SampleDataset``: indexable, iterable, ``.names``, ``.tensor()``.
    Example:
        >>> ds = sample_dataset(40, size=64)
        >>> ds[0].shape, ds.names[0]
        (torch.Size([1, 3, 64, 64]), 'chelsea whole')
    """
    return SampleDataset(n, size, seed, sources)


_source, _source_pil = source_image, source_pil  # the old private names
