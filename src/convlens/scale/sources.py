"""Where the Ray engine reads images: local folders and paths, or any pyarrow / fsspec file-system URI
(``s3://bucket/photos``, ``gs://...``, ``hdfs://...``, ``file:///data/photos``, and every fsspec protocol).

Listing happens once on the driver (sorted, recursive, by image suffix, sub-folder names become
labels as in the local engine); the actors read each file's bytes through the same file system
object (pyarrow file systems pickle to the workers).
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from PIL import Image

from ..embed.sources import file_identity, resolve_source
from ..errors import ConvlensError
from ..images.io import IMAGE_SUFFIXES


@dataclass
class Files:
    """A listed source: ``paths`` as the file system reads them, ``names`` as the store records them
    (the local path, or the full URI), ``labels`` (sub-folder names or None), ``fs`` (None: local)."""

    paths: list[str]
    names: list[str]
    labels: list | None
    fs: object = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.paths)

    def identities(self) -> list[tuple[int, int]]:
        """(size, mtime_ns) per file, what resume matches store rows by (one listing call for a URI)."""
        if self.fs is None:
            return [file_identity(p) for p in self.paths]
        infos = self.fs.get_file_info(self.paths)
        return [(int(i.size) if i.size is not None else -1, int(i.mtime_ns) if i.mtime_ns is not None else -1)
                for i in infos]


def is_uri(source) -> bool:
    return isinstance(source, str) and "://" in source


def filesystem(uri: str):
    """(pyarrow FileSystem, path inside it) for a URI: pyarrow's own (local, S3, GCS, HDFS...), else fsspec's."""
    import pyarrow.fs as pafs
    try:
        return pafs.FileSystem.from_uri(uri)
    except Exception:  # noqa: BLE001 - a scheme pyarrow lacks: try fsspec
        pass
    try:
        import fsspec
        fs, path = fsspec.core.url_to_fs(uri)
    except Exception as e:  # noqa: BLE001
        raise ConvlensError(f"cannot open {uri}: neither pyarrow nor fsspec knows it ({str(e)[:80]}); install the "
                            "fsspec package for its protocol (s3fs, gcsfs, adlfs...)") from None
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path


def list_files(source, labels: Sequence | None = None) -> Files:
    """A folder, a list of image paths, or a URI of a folder -> ``Files``."""
    if not is_uri(source):
        if isinstance(source, (str, os.PathLike)) and not Path(source).is_dir():
            raise ConvlensError(f"{source} is not a folder; pass a folder, a list of image paths, or a URI "
                                "(s3://bucket/photos, file:///data/photos)")
        kind, items, names, labs, _ = resolve_source(source, labels)
        if kind != "files":
            raise ConvlensError("the Ray engine reads image files: pass a folder, a list of paths or a URI "
                                "(write tensors / sample sets to a folder first, or use the local engine)")
        return Files([str(p) for p in items], list(names), labs)
    import pyarrow.fs as pafs
    fs, root = filesystem(source)
    info = fs.get_file_info(root)
    if info.type != pafs.FileType.Directory:
        raise ConvlensError(f"{source} is not a folder (pyarrow sees {info.type.name}); pass the folder's URI")
    found = sorted(i.path for i in fs.get_file_info(pafs.FileSelector(root, recursive=True))
                   if i.type == pafs.FileType.File and Path(i.path).suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise ConvlensError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found in {source}")
    base, r = source.rstrip("/"), root.rstrip("/")
    names = [base + p[len(r):] for p in found]
    if labels is None:
        labels = [None if os.path.dirname(p[len(r):].lstrip("/")) == "" else os.path.dirname(p[len(r):].lstrip("/"))
                  for p in found]
    return Files(found, names, list(labels), fs)


def read_bytes(path: str, fs=None) -> bytes:
    if fs is None:
        return Path(path).read_bytes()
    with fs.open_input_stream(path) as f:
        return f.readall()


class RemoteImages:
    """Random access to a listed source's images (PIL, loaded on demand): what the patches step
    needs to cut the crops of the few images that made some channel's top-k."""

    def __init__(self, files: Files):
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i):
        if isinstance(i, slice):
            raise TypeError("RemoteImages takes one index")
        im = Image.open(io.BytesIO(read_bytes(self.files.paths[i], self.files.fs)))
        im.load()
        return im

    def name(self, i: int) -> str:
        return Path(self.files.names[i]).name
