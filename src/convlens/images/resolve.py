"""Which images: ``resolve_images(spec)``, the one reader of an image-set argument.

Every front door names a set of images the same way (the CLI's SOURCE / ``--images`` arguments,
``embed_images("photos/")``, the Ray engine's listing), and this is the only parser of it:

=====================  ==============================================================================
spec                   resolves to (``ImageSet.kind``: ``ImageSet.source``)
=====================  ==============================================================================
``samples``            ``"samples"``: ``sample_dataset(n, size, seed)`` (crops of the bundled photos)
``samples:N``          the same with N images (N an integer >= 1)
``digits`` / ``:N``    ``"digits"``: scikit-learn's digits, an (N, 3, 64, 64) tensor, labels "0".."9"
``gcompris``           ``"folder"``: the labelled photo sets (``labelled_photos``), as their folder
``imagenet20``
a folder               ``"folder"``: the folder (its images: ``ImageSet.files()``, recursive, sorted)
an image file          ``"files"``: ``[path]``
a sample name          ``"images"``: ``[sample_image(name)]`` (``chelsea``, or ``sample:chelsea``;
                       an existing file of that name wins, as in ``image_from_arg``)
``s3://...`` (a URI)   ``"uri"``: the string (read by the Ray engine's ``scale.sources.list_files``)
a list of these        ``"files"`` when every part is a folder or a file (folders expanded), else
                       ``"images"``: the paths and image tensors in order
=====================  ==============================================================================

Bad input is one ``ConvlensError`` line naming the forms (``samples:x``, ``samples:0``, a path that
does not exist, an empty list, another type).
"""
from __future__ import annotations

import difflib
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConvlensError
from .digits import digits_images
import torch

from .io import fit, list_images, load_image
from .labelled import labelled_folder
from .sample_set import sample_dataset
from .samples import SAMPLES, sample_image, sample_name

FORMS = ("a folder of images, an image file, a sample name (`convlens samples` lists them), 'samples[:N]', "
         "'digits[:N]', 'gcompris' or 'imagenet20'")
KINDS = ("folder", "files", "uri", "samples", "digits", "images")


@dataclass
class ImageSet:
    """A resolved image-set spec: ``kind`` (one of ``KINDS``), ``source`` (what the passes take: a
    folder ``Path``, a list of ``Path``, a URI string, a ``SampleDataset``, an (N, 3, H, W) tensor
    or a list of paths and (1, 3, H, W) tensors), ``labels`` (digits: one per image), ``spec``."""

    kind: str
    source: object
    labels: list | None = None
    spec: str = field(default="", repr=False)

    def files(self) -> list[Path]:
        """The image files of a folder / file set (a folder listed recursively, sorted)."""
        if self.kind == "folder":
            return list_images(self.source)
        if self.kind == "files":
            return list(self.source)
        raise ConvlensError(f"'{self.spec}' names {self.kind} images, not files; pass a folder or image files")

    def items(self):
        """What a streaming pass (top-k, patches) takes: a sequence of paths or (1, 3, H, W) tensors
        in order (a folder listed; the sample set itself, lazy and named)."""
        if self.kind in ("folder", "files"):
            return self.files()
        if self.kind == "uri":
            raise ConvlensError(f"'{self.spec}' is a URI: only the Ray engine reads those (--engine ray)")
        if self.kind == "digits":
            return list(self.source[:, None].unbind(0))
        return self.source

    def tensor(self, size, limit: int | None = None):
        """The first ``limit`` images (default: all), each fitted to ``size`` (shorter side, centre crop),
        as one (N, 3, H, W) tensor in [0, 1]: what techniques over a small set take (facets, robustness)."""
        items = itertools.islice(self.items(), limit)
        return torch.cat([fit(x if isinstance(x, torch.Tensor) else load_image(x), size) for x in items])

    def source_and_labels(self) -> tuple:
        """(source, labels) for ``embed_images`` / ``embed_images_ray`` (a folder stays a folder, so
        the store records it and sub-folder names become labels)."""
        return self.source, self.labels


def _count(spec: str, default: int) -> int:
    """N of ``samples:N`` / ``digits:N`` (else ``default``), an integer >= 1."""
    text = spec.split(":", 1)[1] if ":" in spec else str(default)
    if not text.strip().isdigit() or int(text) < 1:
        base = spec.split(":", 1)[0]
        raise ConvlensError(f"'{spec}': the number of images must be an integer >= 1 (e.g. {base}:300), got {text!r}")
    return int(text)


def _one(spec, n: int, seed: int, size: int) -> ImageSet:
    if not isinstance(spec, (str, os.PathLike)):
        raise ConvlensError(f"cannot read images from a {type(spec).__name__}; pass {FORMS}")
    s = os.fspath(spec)
    if not s.strip():
        raise ConvlensError(f"an empty image source; pass {FORMS}")
    head = s.split(":", 1)[0]
    if head in ("samples", "digits") and not os.path.exists(s):
        k = _count(s, n)
        if head == "samples":
            return ImageSet("samples", sample_dataset(k, size=size, seed=seed), spec=s)
        imgs, labels = digits_images(k)
        return ImageSet("digits", imgs, labels, spec=s)
    if "://" in s:
        return ImageSet("uri", s, spec=s)
    folder = labelled_folder(s)
    if folder:
        return ImageSet("folder", Path(folder), spec=s)
    p = Path(s)
    if p.is_dir():
        return ImageSet("folder", p, spec=s)
    if p.is_file():
        return ImageSet("files", [p], spec=s)
    name = sample_name(s)
    if name is not None:
        return ImageSet("images", [sample_image(name)], spec=s)
    near = difflib.get_close_matches(s, list(SAMPLES), n=3, cutoff=0.6)
    hint = f" (did you mean the sample {' or '.join(near)}?)" if near else ""
    raise ConvlensError(f"'{s}' is not a folder, an image file or a sample name{hint}; pass {FORMS}")


def resolve_images(spec, *, n: int = 300, seed: int = 0, size: int = 224) -> ImageSet:
    """Which images ``spec`` names (module doc: every form), checked before any work.

    Args:
        spec: a string / path (``samples[:N]``, ``digits[:N]``, ``gcompris``, ``imagenet20``, a
            folder, an image file, a sample name, a URI) or a list / tuple of those.
        n: images of ``samples`` / ``digits`` without ``:N``; seed, size: of the sample set.
    Returns:
        an ``ImageSet`` (``kind``, ``source``, ``labels``); ``.files()``, ``.items()``.
    Example:
        >>> resolve_images("samples:40").source[0].shape
        torch.Size([1, 3, 224, 224])
    """
    if not isinstance(spec, (list, tuple)):
        return _one(spec, n, seed, size)
    if not spec:
        raise ConvlensError(f"an empty list of image sources; pass {FORMS}")
    parts = [_one(s, n, seed, size) for s in spec]
    label = ", ".join(p.spec for p in parts)[:80]
    if all(p.kind in ("folder", "files") for p in parts):
        return ImageSet("files", [f for p in parts for f in p.files()], spec=label)
    return ImageSet("images", [x for p in parts for x in p.items()], spec=label)
