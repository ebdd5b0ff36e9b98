"""What one explorer server holds: its model(s), its data folders, its job pool.

Every file the server reads or writes on a request's behalf goes through ``safe_child``: request
names never reach the filesystem outside the app's own folders (no ``..``, no absolute paths, no
symlink escape).
"""
from __future__ import annotations

import os
import re
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConvlensError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def safe_name(name: str, what: str = "name") -> str:
    """``name`` if it is a plain file/folder name (letters, digits, ``_.-``), else a ConvlensError."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise ConvlensError(f"invalid {what} '{str(name)[:60]}'; use letters, digits, '_', '.' and '-' only")
    return name


def safe_child(root: Path, *names: str, what: str = "name") -> Path:
    """``root / names...`` resolved, refusing anything that lands outside ``root`` (symlinks included)."""
    root = Path(root).resolve()
    p = root.joinpath(*(safe_name(n, what) for n in names)).resolve()
    if p != root and root not in p.parents:
        raise ConvlensError(f"invalid {what}: it points outside the explorer's data folder")
    return p


@dataclass
class AppState:
    """Server-wide state, stored on ``app.state.convlens``."""
    model_name: str = "mobilenet_v2"
    weights: str = "default"
    store: Path | None = None          # an embedding store folder for the projector (optional)
    data_dir: Path | None = None       # uploads, job results, caches; a temp folder by default
    workers: int = 1                   # job pool size
    threads: int | None = None         # torch threads per worker (default: cores // workers)
    image_folders: dict = field(default_factory=dict)  # name -> folder of the user's images (`serve --images`)
    _models: dict = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _tmp: tempfile.TemporaryDirectory | None = field(default=None, repr=False)
    jobs: object = field(default=None, repr=False)

    def __post_init__(self):
        if self.data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="convlens-web-")
            self.data_dir = Path(self._tmp.name)
        self.data_dir = Path(self.data_dir).resolve()
        for sub in ("uploads", "results", "cache"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)
        if self.threads is None:
            self.threads = max(1, (os.cpu_count() or 1) // max(1, self.workers))
        if self.jobs is None:
            from .jobs import JobPool
            self.jobs = JobPool(workers=self.workers, threads=self.threads)

    def folder(self, name: str) -> Path:
        """One of the app's own data folders: uploads, results, cache."""
        return self.data_dir / name

    def model(self, name: str | None = None, weights: str | None = None):
        """The loaded ``convlens.Model`` (cached); ``name`` defaults to the server's model."""
        from ..models import available_models, load_model
        name, weights = name or self.model_name, weights or self.weights
        key = (name, weights)
        with self._lock:
            if key not in self._models:
                if name not in available_models() and name != "vgg16-hed":
                    from ..errors import closest
                    raise ConvlensError(f"unknown model '{name[:60]}'; closest: {closest(name, available_models())}")
                self._models[key] = load_model(name, weights=None if str(weights).lower() == "none" else weights)
            return self._models[key]

    def image(self, ref: str):
        """The image a request names: a bundled sample (``chelsea``) or an upload id (``uploads/<id>.png``).

        Returns (1, 3, H, W) float32 in [0, 1] at its own size; callers fit it to the model.
        """
        from ..images.samples import SAMPLES, sample_image
        if ref in SAMPLES:
            return sample_image(ref)
        if isinstance(ref, str) and re.fullmatch(r"[0-9a-f]{16}", ref):
            path = safe_child(self.folder("uploads"), f"{ref}.png", what="image id")
            if path.exists():
                from ..images import load_image
                return load_image(path)
        from ..errors import closest
        raise ConvlensError(f"unknown image '{str(ref)[:60]}'; use a sample name ({closest(str(ref), SAMPLES)}) "
                            "or the id returned by POST /api/images")

    def close(self) -> None:
        self.jobs.shutdown()
        if self._tmp is not None:
            self._tmp.cleanup()
