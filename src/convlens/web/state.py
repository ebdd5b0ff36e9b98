"""What one explorer server holds: its model(s), its data folders, its job pool.

Every file the server reads or writes on a request's behalf goes through ``safe_child``: request
names never reach the filesystem outside the app's own folders (no ``..``, no absolute paths, no
symlink escape).
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request

from ..errors import ConvlensError
from ..errors import closest
from ..models import available_models
from ..models.registry import OFFLINE_MODELS
from .security import new_token
from .jobs import JobPool
from ..recipes.style import default_style_model
from ..models import load_model
from ..images.samples import SAMPLES, sample_image
from ..images import load_image
from ..images.io import save_png

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


def require_known_model(name: str, also: str = "") -> None:
    """A ConvlensError (closest names, then ``also``) unless ``name`` is a model convlens can load."""
    if name not in available_models() and name not in OFFLINE_MODELS:
        raise ConvlensError(f"unknown model '{str(name)[:60]}' (closest: {closest(str(name), available_models())}){also}")


class LRU:
    """A small thread-safe least-recently-used map: the views' caches (maps, PNG bytes, top-k passes,
    opened stores, computed projections, word vectors). ``AppState.cache(name)`` gives each view its own."""

    def __init__(self, size: int = 64):
        self.size, self._d, self._lock = max(1, int(size)), OrderedDict(), threading.Lock()

    def get(self, key, default=None):
        with self._lock:
            if key in self._d:
                self._d.move_to_end(key)
                return self._d[key]
        return default

    def put(self, key, value):
        """Store ``value`` (the least recently used entries leave past ``size``); returns it."""
        with self._lock:
            self._put(key, value)
        return value

    def _put(self, key, value) -> None:
        self._d[key] = value
        self._d.move_to_end(key)
        while len(self._d) > self.size:
            self._d.popitem(last=False)

    def get_or_make(self, key, make, valid=None):
        """The cached value of ``key``, else ``make(old)`` stored and returned (``old``: the entry
        ``valid(old)`` refused, or None). ``make`` runs under this cache's lock, so two threads asking
        at once compute it once (use it for slow loads nobody should repeat, not for quick renders)."""
        with self._lock:
            old = self._d.get(key)
            if old is not None and (valid is None or valid(old)):
                self._d.move_to_end(key)
                return old
            value = make(old)
            self._put(key, value)
            return value

    def __contains__(self, key) -> bool:
        with self._lock:
            return key in self._d

    def __len__(self) -> int:
        return len(self._d)


STYLE_NETWORKS = ("vgg16-imagenet", "vgg16-hed")  # offline feature-only networks the style techniques may pick


@dataclass
class AppState:
    """Server-wide state, stored on ``app.state.convlens``.

    Models: requests may name only the served ``models`` (``serve --model A --model B``; the first,
    ``model_name``, is the default) and the style network techniques pick themselves
    (``default_style_model()``: offline, or already in the torch cache). Anything else is refused, so
    no request makes the server download or keep a model; at most ``model_cache`` stay loaded (least
    recently used first out).
    """
    model_name: str = "mobilenet_v2"
    models: tuple = ()                 # every model requests may name (default: just model_name)
    model_cache: int = 3               # loaded models kept at once
    weights: str = "default"
    store: Path | None = None          # an embedding store folder for the projector (optional)
    data_dir: Path | None = None       # uploads, job results, caches; a temp folder by default
    workers: int = 1                   # job pool size
    threads: int | None = None         # torch threads per worker (default: cores // workers)
    image_folders: dict = field(default_factory=dict)  # name -> folder of the user's images (`serve --images`)
    orphan_timeout: float | None = 60.0  # cancel a job nobody followed for this long (seconds; None: never)
    token: str = field(default="", repr=False)  # state-changing requests carry it (web/security.py)
    _models: OrderedDict = field(default_factory=OrderedDict, repr=False)
    _caches: dict = field(default_factory=dict, repr=False)
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
        self.models = tuple(dict.fromkeys((self.model_name, *self.models)))
        if not self.token:
            self.token = new_token()
        if self.jobs is None:
            self.jobs = JobPool(workers=self.workers, threads=self.threads, orphan_timeout=self.orphan_timeout)

    def folder(self, name: str) -> Path:
        """One of the app's own data folders: uploads, results, cache."""
        return self.data_dir / name

    def cache(self, name: str, size: int = 64) -> LRU:
        """This server's cache called ``name`` (an ``LRU`` of ``size`` entries, made on first use)."""
        hit = self._caches.get(name)
        if hit is None:
            with self._lock:   # held only the first time (it also guards model loading)
                hit = self._caches.setdefault(name, LRU(size))
        return hit

    def allowed_models(self) -> list[str]:
        """The models requests may name: the served ones, then the texture recipes' style networks (the
        default one, and the offline VGG-16 feature nets: shipped in packages, so nothing is downloaded)."""
        return list(dict.fromkeys((*self.models, default_style_model(), *STYLE_NETWORKS)))

    def check_model(self, name: str | None) -> str:
        """``name`` (default: the server's model) if this server serves it, else a ConvlensError listing them."""
        name = name or self.model_name
        if name in self.models:
            return name
        allowed = self.allowed_models()
        if name not in allowed:
            require_known_model(name, also=f"; this server serves: {', '.join(allowed)}")
            raise ConvlensError(f"model '{str(name)[:60]}' is not served here; this server serves: {', '.join(allowed)} "
                                f"(start it with `convlens serve --model {str(name)[:60]}` to use another)")
        return name

    def model(self, name: str | None = None, weights: str | None = None):
        """The loaded ``convlens.Model`` of an allowed ``name`` (default: the server's model), from a
        bounded LRU cache; served models use the server's weights unless ``weights`` is given."""
        name = self.check_model(name)
        weights = weights or (self.weights if name in self.models else "default")
        key = (name, weights)
        with self._lock:
            if key not in self._models:
                self._models[key] = load_model(name, weights=None if str(weights).lower() == "none" else weights)
                while len(self._models) > max(1, self.model_cache):
                    self._models.popitem(last=False)
            self._models.move_to_end(key)
            return self._models[key]

    def image(self, ref: str):
        """The image a request names: a bundled sample (``chelsea``) or an upload id (``uploads/<id>.png``).

        Returns (1, 3, H, W) float32 in [0, 1] at its own size; callers fit it to the model.
        """
        if ref in SAMPLES:
            return sample_image(ref)
        if isinstance(ref, str) and re.fullmatch(r"[0-9a-f]{16}", ref):
            path = safe_child(self.folder("uploads"), f"{ref}.png", what="image id")
            if path.exists():
                return load_image(path)
        raise ConvlensError(f"unknown image '{str(ref)[:60]}'; use a sample name ({closest(str(ref), SAMPLES)}) "
                            "or the id returned by POST /api/images")

    def close(self) -> None:
        self.jobs.shutdown()
        if self._tmp is not None:
            self._tmp.cleanup()


def save_upload(state: AppState, arr) -> str:
    """Store an (H, W, 3) uint8 image as an upload (``uploads/<id>.png``, the id a hash of the pixels,
    as ``POST /api/images`` names them); returns the id every ``image`` parameter takes."""
    image_id = hashlib.sha256(arr.tobytes() + repr(arr.shape).encode()).hexdigest()[:16]
    path = safe_child(state.folder("uploads"), f"{image_id}.png", what="image id")
    if not path.exists():
        save_png(arr, path)
    return image_id


def app_state(request: Request) -> AppState:
    """The server's ``AppState`` (use as ``state: AppState = Depends(app_state)``)."""
    return request.app.state.convlens


MAX_UPLOAD_BYTES = 12 * 1024 * 1024      # 12 MB
MAX_UPLOAD_PIXELS = 40_000_000           # 40 megapixels (a phone photo is ~12)


def limits(state: AppState) -> tuple[int, int]:
    """(bytes, pixels) upload limits of this server (``state.upload_limits`` overrides the defaults)."""
    return getattr(state, "upload_limits", None) or (MAX_UPLOAD_BYTES, MAX_UPLOAD_PIXELS)
