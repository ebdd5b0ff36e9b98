"""Which images an extraction reads: ``resolve_source`` turns ``embed_images``'s ``source`` (a spec
string or path read by ``images.resolve_images``: a folder, a file, ``samples:N``, ``digits:N``, a
labelled set, a sample name; or a list of paths, an (N, 3, H, W) tensor, any iterable of images) into
a ``Source``: the items, the names a store records, labels, the count and the source record that
resume compares (``plan_items``). ``file_identity`` is what resume matches a file's row by.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from ..errors import ConvlensError
from ..images.io import list_images
from ..images.resolve import resolve_images


@dataclass
class Source:
    """A resolved extraction source: ``kind`` "files" (``items``: absolute ``Path``s) or "images"
    (tensors / an iterable of images); ``names`` (paths as strings, or the images' names),
    ``labels`` (one per item or None), ``total`` (None: an iterable of unknown length), ``record``
    (what the store's manifest keeps of it: a folder's absolute path, or the kind)."""

    kind: str
    items: object
    names: list
    labels: Sequence | None
    total: int | None
    record: dict

    def __iter__(self):  # (kind, items, names, labels, total): the old tuple
        return iter((self.kind, self.items, self.names, self.labels, self.total))


def _folder(root, labels) -> Source:
    root = Path(os.path.abspath(root))  # absolute: a row names its file whatever the working folder
    files = list_images(root)
    if labels is None:
        labels = [str(f.parent.relative_to(root)) if f.parent != root else None for f in files]
    return Source("files", files, [str(f) for f in files], labels, len(files), {"kind": "folder", "path": str(root)})


def _files(paths, labels) -> Source:
    paths = [Path(os.path.abspath(s)) for s in paths]
    return Source("files", paths, [str(s) for s in paths], labels, len(paths), {"kind": "paths"})


def _images(items, names, labels, total) -> Source:
    return Source("images", items, names, labels, total, {"kind": "images"})


def resolve_source(source, labels: Sequence | None = None) -> Source:
    """The ``Source`` of an extraction (module doc). Strings and paths go through ``resolve_images``
    (its errors name every form); a list of paths is taken as is (an unreadable file is skipped
    and reported by the extraction, not refused); a URI is for the Ray engine."""
    if isinstance(source, (str, os.PathLike)):
        r = resolve_images(source)
        if r.kind == "folder":
            return _folder(r.source, labels)
        if r.kind == "files":
            return _files(r.source, labels)
        if r.kind == "uri":
            raise ConvlensError(f"{source} is not a folder here: a URI is read by the Ray engine (--engine ray, "
                                "embed_images_ray); pass a local folder, a list of image paths, or images")
        if r.kind == "digits":
            return _images(list(r.source[:, None].unbind(0)), [f"<image {i}>" for i in range(len(r.source))],
                           r.labels if labels is None else labels, len(r.source))
        if r.kind == "samples":   # labelled by source photo (``SampleDataset.labels``)
            return _images(r.source, r.source.names, r.source.labels if labels is None else labels, len(r.source))
        return _images(r.source, [str(r.spec)] * len(r.source), labels, len(r.source))
    if isinstance(source, torch.Tensor):
        if source.ndim != 4:
            raise ConvlensError(f"an image tensor source must be (N, 3, H, W), got {tuple(source.shape)}")
        names = [f"<image {i}>" for i in range(source.shape[0])]
        return _images(list(source[:, None].unbind(0)), names, labels, source.shape[0])
    if isinstance(source, Sequence) and source and all(isinstance(s, (str, os.PathLike)) for s in source):
        return _files(source, labels)
    names = list(getattr(source, "names", []) or [])
    total = len(source) if hasattr(source, "__len__") else None
    if labels is None and isinstance(getattr(source, "labels", None), (list, tuple)):
        labels = list(source.labels)   # a labelled set (a SampleDataset: each image's source photo)
    return _images(source, names, labels, total)


def file_identity(path) -> tuple[int, int]:
    """(size in bytes, mtime in ns) of a local file, (-1, -1) when it cannot be read: with the
    path, what resume matches store rows by."""
    try:
        st = os.stat(path)
    except OSError:
        return -1, -1
    return int(st.st_size), int(st.st_mtime_ns)


def source_record(source, kind: str) -> dict:
    """What a store records of its source: a folder's (or a folder URI's) path, or the kind
    (paths / images). ``resolve_source`` makes it for local sources (``Source.record``)."""
    if kind == "files" and isinstance(source, (str, os.PathLike)):
        if "://" in str(source):
            return {"kind": "folder", "path": str(source)}
        if Path(source).is_dir():
            return {"kind": "folder", "path": os.path.abspath(source)}
    return {"kind": "paths" if kind == "files" else "images"}


def describe_source(rec: dict) -> str:
    """A source record in words, for errors: "folder /data/photos" or "a list of paths"."""
    return f"folder {rec['path']}" if rec.get("kind") == "folder" else f"a list of {rec.get('kind')}"
