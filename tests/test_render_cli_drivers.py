"""Rendering values, the batched forward driver, the CLI's error contract, the demo report."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import convlens
from convlens.render import normalize_map
from helpers import tiny_convnet

CLI = [sys.executable, "-m", "convlens"]


def test_grid_places_tiles_where_expected():
    red = torch.zeros(3, 4, 4); red[0] = 1
    blue = torch.zeros(3, 4, 4); blue[2] = 1
    img = np.asarray(convlens.grid([red, blue, blue], ncol=2, pad=1))
    assert img.shape == (1 + 2 * 5, 1 + 2 * 5, 3)
    assert tuple(img[1, 1]) == (255, 0, 0) and tuple(img[1, 6]) == (0, 0, 255) and tuple(img[6, 1]) == (0, 0, 255)
    assert tuple(img[6, 6]) == (255, 255, 255)  # empty 4th slot is background


def test_normalize_map_modes():
    m = torch.tensor([[-2.0, 0.0], [1.0, 2.0]])
    assert np.allclose(normalize_map(m, "minmax"), [[0, 0.5], [0.75, 1]])
    assert np.allclose(normalize_map(m, "signed"), [[0, 0.5], [0.75, 1]])
    assert np.allclose(normalize_map(m, "positive", percentile=100), [[0, 0], [0.5, 1]])
    assert np.allclose(normalize_map(m, "abs", percentile=100), [[1, 0], [0.5, 1]])
    chw = torch.tensor([[[1.0]], [[-3.0]], [[2.0]]])
    assert np.allclose(normalize_map(chw * torch.ones(3, 2, 2), "abs", percentile=100), 1.0)


def test_overlay_blends_and_colorbar_widens():
    img = torch.zeros(1, 3, 10, 10)
    heat = torch.zeros(10, 10); heat[5, 5] = 1
    o = convlens.overlay(img, heat, alpha=1.0)
    a = np.asarray(o)
    assert a.shape == (10, 10, 3) and a[5, 5].sum() > a[0, 0].sum()
    assert convlens.overlay(img, heat, colorbar=True).width > 10


def test_batched_forward_equals_one_by_one_and_truncates():
    m = convlens.Model.wrap(tiny_convnet(), input_size=12, classes=["a", "b", "c"])
    x = torch.rand(7, 3, 12, 12)
    done = []
    batches = list(convlens.batched_forward(m, x, batch_size=3, size=None, progress=done.append))
    assert [b.start for b in batches] == [0, 3, 6] and done == [3, 6, 7]
    logits = torch.cat([b.logits for b in batches])
    with torch.inference_mode():
        ref = torch.cat([m(x[i:i + 1]) for i in range(7)])
    assert torch.allclose(logits, ref, atol=1e-5)
    trunc = list(convlens.batched_forward(m, x, "3", batch_size=4, size=None))
    assert all(b.logits is None for b in trunc)
    acts = torch.cat([b.activations["3"] for b in trunc])
    assert torch.allclose(acts, convlens.layer_activations(m, x, "3"), atol=1e-5)


def test_batched_forward_reads_paths(tmp_path):
    paths = []
    for i in range(3):
        paths.append(convlens.save_png(torch.rand(1, 3, 20, 30), tmp_path / f"{i}.png"))
    m = convlens.Model.wrap(tiny_convnet(), input_size=16, classes=["a", "b", "c"])
    out = list(convlens.batched_forward(m, paths, batch_size=2))
    assert [len(b) for b in out] == [2, 1] and out[0].images.shape[-2:] == (16, 16)
    assert convlens.list_images(tmp_path) == sorted(paths)


def _cli(*args, timeout=300):
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=timeout)


def test_cli_predict_and_errors_are_one_line(tmp_path):
    r = _cli("predict", "chelsea", "--topk", "2")
    assert r.returncode == 0 and "Egyptian cat" in r.stdout
    for args, needle in [(("predict", "nope.jpg"), "image file not found: nope.jpg"),
                         (("predict", "chelsea", "--model", "resnt18"), "closest: resnet18"),
                         (("layers", "mobilenet_v2", "--weights", str(tmp_path / "w.pth")), "not found"),
                         (("predict",), "Missing argument")]:
        r = _cli(*args)
        assert r.returncode != 0, args
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0] and "Traceback" not in r.stderr, (args, r.stderr)
    r = _cli("--debug", "predict", "nope.jpg")
    assert "Traceback" in r.stderr


def test_every_command_has_help_with_example():
    from convlens.cli.main import _register_all, app
    import typer
    _register_all()
    cmd = typer.main.get_command(app)
    assert {"models", "layers", "predict", "demo", "samples"} <= set(cmd.commands)
    for name, sub in cmd.commands.items():
        assert "Example" in (sub.help or ""), f"`convlens {name} --help` lacks an example"


def test_demo_quick_writes_report(tmp_path):
    out = tmp_path / "demo"
    r = _cli("demo", "--quick", "--out", str(out), "--only", "predictions,layers", timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    html = (out / "index.html").read_text()
    assert "Predictions" in html and "Egyptian cat" in html and "convlens predict" in html
    assert (out / "predictions.png").stat().st_size > 10_000
    # a second run rebuilds the report in the same folder (the README's `scripts/demo`, run twice)
    (out / "index.html").unlink()
    r = _cli("demo", "--quick", "--out", str(out), "--only", "layers", timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Layers" in (out / "index.html").read_text()


def test_batched_forward_bn_folded_twin_matches_the_model():
    """Logits-only passes run a BN-folded channels_last copy: same function up to rounding."""
    m = convlens.load_model("resnet18", weights=None)
    x = torch.rand(5, 3, 64, 64)
    out = torch.cat([b.logits for b in convlens.batched_forward(m, x, batch_size=2, size=None)])
    with torch.inference_mode():
        ref = m(x)
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))
    assert getattr(convlens.drivers.forward.inference_twin(m, True, True), "_convlens_fused")


def test_report_strip_thumbnails_and_folded_tables(tmp_path):
    from convlens.render import Report
    rep = Report(tmp_path, title="t")
    a = rep.section("Pictures")
    a.figure(torch.rand(1, 3, 8, 8), "a.png", caption="first")
    a.figure(torch.rand(1, 3, 8, 8), "b.png", caption="second")
    b = rep.section("Long table")
    b.table(["k"], [[i] for i in range(30)])
    c = rep.section("Short table")
    c.table(["k"], [[1], [2]])
    page = rep.write().read_text()
    strip = page.split('<nav class="strip">')[1].split("</nav>")[0]
    assert strip.count("<a ") == 3 and '<img src="a.png"' in strip and "b.png" not in strip  # first figure only
    # sections without figures get a placeholder showing the start of their text (issue 23, item 10: no blank tile)
    assert strip.count('class="blank text"') == 2 and "table: 30 rows" in strip
    assert page.count("<details>") == 1 and "table: 30 rows" in page  # only the long table is folded
    assert (tmp_path / "a.png").exists() and (tmp_path / "b.png").exists()
