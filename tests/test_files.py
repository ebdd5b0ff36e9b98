"""convlens.files.atomic_write: the one atomic writer (bytes, text or a writer callable), durable
with fsync, leaving the old file and no temporary file when the write fails."""
from __future__ import annotations

import os
import stat

import pytest

from convlens import files
from convlens.files import atomic_write


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_bytes_text_and_writer_land_whole_with_the_usual_permissions(tmp_path):
    atomic_write(tmp_path / "a.bin", b"\x00\x01\x02")
    atomic_write(tmp_path / "sub" / "b.txt", "héllo")  # the folder is created; text is UTF-8
    atomic_write(tmp_path / "c.dat", lambda tmp: tmp.write_bytes(b"by the writer"))
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01\x02"
    assert (tmp_path / "sub" / "b.txt").read_bytes() == "héllo".encode()
    assert (tmp_path / "c.dat").read_bytes() == b"by the writer"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "c.dat").stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600
    assert _leftovers(tmp_path) == []


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    p = tmp_path / "index.faiss"
    atomic_write(p, b"old")

    def half_then_fail(tmp):
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")
    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(p, half_then_fail)
    with pytest.raises(TypeError):
        atomic_write(p, 12345)  # not bytes / text / callable
    assert p.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_fsync_flushes_the_file_and_the_folder_unless_turned_off(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.path.realpath(f"/proc/self/fd/{fd}")) or real(fd))
    atomic_write(tmp_path / "m.json", "{}")
    atomic_write(tmp_path / "w.bin", lambda tmp: tmp.write_bytes(b"x"))
    assert len(synced) == 4  # each: the temporary file, then the folder after the rename
    assert synced[1] == synced[3] == str(tmp_path.resolve())
    assert synced[0].endswith(".part") and os.path.basename(synced[0]).startswith(".m.json")
    synced.clear()
    atomic_write(tmp_path / "fast.png", b"x", fsync=False)
    assert synced == []


def test_every_writer_goes_through_it(tmp_path, monkeypatch):
    """save_png, write_atomic, the store's fsync_write and the ONNX check record use atomic_write."""
    import numpy as np

    from convlens.drivers import onnx
    from convlens.embed import vectors
    from convlens.images import io as imio
    seen = []
    real = files.atomic_write

    def spy(path, data, **kw):
        seen.append(os.path.basename(path))
        return real(path, data, **kw)
    for mod in (imio, vectors, onnx):
        monkeypatch.setattr(mod, "atomic_write", spy)
    imio.save_png(np.zeros((4, 4, 3), np.uint8), tmp_path / "a.png")
    imio.write_atomic(tmp_path / "b.html", "<p>")
    vectors.fsync_write(tmp_path / "manifest.json", b"{}")
    onnx._write_meta(tmp_path / "m.onnx", {"verified": True})
    assert seen == ["a.png", "b.html", "manifest.json", "m.json"]
