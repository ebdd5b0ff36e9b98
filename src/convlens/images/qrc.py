"""A reader for Qt's binary resource files (``.rcc``, magic ``qres``), as written by Qt's ``rcc`` tool.

Layout (all integers big-endian; Qt's ``qresource.cpp`` / ``rcc.cpp``):

* header: ``b"qres"``, version (u32, 1-3), tree offset, data offset, names offset (u32 each), and from
  version 3 the overall flags (u32);
* tree: fixed-size nodes (14 bytes in version 1, 22 from version 2: an 8-byte modification time is
  appended), node 0 is the root. Each node: name offset (u32), flags (u16: 1 zlib, 2 directory,
  4 zstd), then a directory's child count and first child index (u32, u32) or a file's country and
  language (u16, u16) and data offset (u32);
* names: u16 length, u32 hash, then the name in UTF-16BE;
* data: u32 size, then the payload. A zlib payload is ``qCompress`` output: a u32 uncompressed size
  followed by a zlib stream; a zstd payload is one zstd frame.

``read_qres(path_or_bytes) -> {"dir/file": bytes}`` reads every file; ``QResource`` lists names first
and decompresses on demand.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

from ..errors import ConvlensError

MAGIC = b"qres"
COMPRESSED, DIRECTORY, COMPRESSED_ZSTD = 1, 2, 4


class QResource:
    """The files of one qres blob, by slash-separated path (no leading slash)."""

    def __init__(self, blob: bytes, source: str = "qres data"):
        self.blob, self.source = blob, source
        if len(blob) < 20 or blob[:4] != MAGIC:
            raise ConvlensError(f"{source} is not a Qt resource file (no 'qres' header)")
        self.version, self.tree, self.data, self.names = struct.unpack_from(">4I", blob, 4)
        if self.version not in (1, 2, 3):
            raise ConvlensError(f"{source}: unsupported qres version {self.version} (this reader knows 1-3)")
        self.node_size = 14 if self.version == 1 else 22
        self.files: dict[str, tuple[int, int]] = {}  # path -> (flags, data offset)
        try:
            self._walk(0, "", depth=0)
        except struct.error:
            raise ConvlensError(f"{source}: truncated or damaged qres tree") from None

    @classmethod
    def open(cls, path) -> "QResource":
        return cls(Path(path).read_bytes(), str(path))

    def _name(self, offset: int) -> str:
        at = self.names + offset
        (n,) = struct.unpack_from(">H", self.blob, at)
        return self.blob[at + 6: at + 6 + 2 * n].decode("utf-16-be")

    def _walk(self, index: int, prefix: str, depth: int) -> None:
        if depth > 64:
            raise ConvlensError(f"{self.source}: qres tree deeper than 64 levels (damaged?)")
        at = self.tree + index * self.node_size
        name_off, flags = struct.unpack_from(">IH", self.blob, at)
        name = "" if index == 0 else self._name(name_off)
        path = f"{prefix}/{name}" if prefix else name
        if flags & DIRECTORY:
            count, first = struct.unpack_from(">II", self.blob, at + 6)
            for child in range(first, first + count):
                self._walk(child, path, depth + 1)
        else:
            (data_off,) = struct.unpack_from(">I", self.blob, at + 10)
            self.files[path] = (flags, data_off)

    def __contains__(self, path: str) -> bool:
        return path in self.files

    def __iter__(self):
        return iter(self.files)

    def read(self, path: str) -> bytes:
        """The decompressed bytes of one file."""
        if path not in self.files:
            raise ConvlensError(f"{self.source} has no file '{path}'")
        flags, off = self.files[path]
        at = self.data + off
        (size,) = struct.unpack_from(">I", self.blob, at)
        payload = self.blob[at + 4: at + 4 + size]
        if len(payload) != size:
            raise ConvlensError(f"{self.source}: '{path}' is truncated")
        try:
            if flags & COMPRESSED:
                (n,) = struct.unpack_from(">I", payload, 0)
                out = zlib.decompress(payload[4:])
                if len(out) != n:
                    raise ConvlensError(f"{self.source}: '{path}' decompressed to {len(out)} bytes, expected {n}")
                return out
            if flags & COMPRESSED_ZSTD:
                try:
                    import zstandard
                except ImportError:
                    raise ConvlensError(f"{self.source}: '{path}' is zstd-compressed; pip install zstandard") from None
                return zstandard.ZstdDecompressor().decompressobj().decompress(payload)
        except (zlib.error, struct.error) as e:
            raise ConvlensError(f"{self.source}: '{path}' cannot be decompressed ({e})") from None
        return payload


def read_qres(source) -> dict[str, bytes]:
    """Every file of a qres blob (bytes) or ``.rcc`` file (path): ``{"dir/file": bytes}``."""
    res = QResource(source) if isinstance(source, (bytes, bytearray)) else QResource.open(source)
    return {p: res.read(p) for p in res}
