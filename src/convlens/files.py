"""One atomic file writer: ``atomic_write(path, data_or_writer, fsync=True)``.

Every file convlens writes (PNGs, HTML reports, store shards and manifests, FAISS indexes, ONNX
exports and their check records, the CLI spec) goes through it, so a reader never sees a half-written
file and a crash leaves either the old file or the new one:

1. the data goes to a temporary file in the same folder, named ``.NAME<random>.part`` (a store's
   ``delete_files`` recognises these leftovers of a killed write by that prefix);
2. with ``fsync`` (the default) the file is flushed to the disk before the rename, and the folder
   after it (so the rename itself survives a power loss);
3. ``os.replace`` renames it over ``path`` (atomic on POSIX and Windows); on any error the temporary
   file is removed and the old ``path`` is left as it was.

``data_or_writer`` is bytes, text (UTF-8), or a callable ``writer(tmp_path)`` that writes the file
itself (``faiss.write_index``, ``torch.onnx.export``, ``shutil.copyfile``...).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Union

Data = Union[bytes, bytearray, memoryview, str, Callable[[Path], object]]


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(folder) -> None:
    """Flush a folder's entries (a rename in it) to the disk; a no-op where folders cannot be fsync'ed."""
    try:
        _fsync_file(str(folder))
    except OSError:  # pragma: no cover - some file systems (and Windows) refuse fsync on folders
        pass


def atomic_write(path, data: Data, *, fsync: bool = True) -> Path:
    """Write ``data`` (bytes, text, or ``writer(tmp_path)``) to ``path`` atomically; returns the path.

    The folder is created if needed; the file gets the usual permissions (0666 minus the umask,
    not ``mkstemp``'s 0600). ``fsync=False`` skips the flushes (atomic, not durable).

    Example:
        >>> atomic_write(tmp / "a.json", '{"x": 1}')
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".part")
    try:
        if callable(data):
            os.close(fd)
            data(Path(tmp))
            if fsync:
                _fsync_file(tmp)
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(data.encode() if isinstance(data, str) else data)
                if fsync:
                    f.flush()
                    os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    if fsync:
        fsync_folder(path.parent)
    return path
