"""Issue 3 front doors: `convlens filters / activations / patches`, and the demo sections."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

import convlens
from convlens.cli import run


def test_filters_cli(tmp_path, capsys):
    out = tmp_path / "f.png"
    assert run(["filters", "--model", "mobilenet_v2", "--layer", "features.0", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "features.0.0: (32, 3, 3, 3) (rgb)" in text
    g = convlens.filters(convlens.load_model(), "features.0")
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(g.figure))


def test_activations_cli_prints_the_summary(tmp_path, capsys):
    out = tmp_path / "a.png"
    assert run(["activations", "chelsea", "--layer", "features.3", "--order", "mean", "--top", "3",
                "-o", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    a = convlens.activations(convlens.load_model(), "chelsea", "features.3", order="mean")
    best = a.summary(3)
    assert [int(line.split()[0]) for line in lines[2:5]] == [c for c, *_ in best]
    assert abs(float(lines[2].split()[1]) - best[0][1]) < 1e-4
    assert Image.open(out).size == a.figure.size


def test_patches_cli_on_samples_and_a_folder(tmp_path, capsys):
    out = tmp_path / "p.png"
    assert run(["patches", "samples:12", "--layer", "features.4", "--channels", "0,3", "--k", "4",
                "--batch-size", "6", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "top-4 over 12 images, receptive field 27 px" in text
    p = convlens.max_activating_patches(convlens.load_model(), convlens.sample_dataset(12), "features.4", [0, 3], k=4)
    m = re.search(r"ch 0: ([\d.]+) \((.+?) @(\d+),(\d+)\)", text)
    assert abs(float(m.group(1)) - float(p.top.values[0, 0])) < 1e-3
    assert m.group(2) == p.names[int(p.top.image_index[0, 0])]
    # a folder of user images, top-k whole images, with a checkpoint file
    folder = tmp_path / "imgs"
    for i in range(3):
        convlens.save_png(convlens.sample_dataset(3, size=96)[i], folder / f"{i}.png")
    st = tmp_path / "state.pt"
    assert run(["patches", str(folder), "--layer", "features.4", "--channels", "1", "--k", "2", "--whole",
                "--state", str(st), "-o", str(tmp_path / "w.png")]) == 0
    assert st.exists() and convlens.TopActivations.load(st).n_images == 3
    assert re.search(r"ch 1: [\d.]+ \([012]\.png @\d+,\d+\)", capsys.readouterr().out)


def test_patches_interrupt_keeps_the_images_seen(tmp_path, monkeypatch, capsys):
    m, data = convlens.load_model(), convlens.sample_dataset(12)

    def stop_after(n):
        def progress(done, total=None):
            if done >= n:
                raise KeyboardInterrupt
        return progress
    with pytest.raises(KeyboardInterrupt) as e:
        convlens.max_activating_patches(m, data, "features.4", [0, 3], k=4, batch_size=4, progress=stop_after(8))
    part = e.value.partial
    first8 = convlens.max_activating_patches(m, data[:8], "features.4", [0, 3], k=4)
    assert isinstance(part, convlens.inspect.patches.Patches) and part.top.n_images == 8
    assert torch.equal(part.top.image_index, first8.top.image_index)
    assert torch.allclose(part.crops, first8.crops)
    # the CLI writes them, says so, and exits 130
    real = convlens.inspect.max_activating_patches
    monkeypatch.setattr(convlens.inspect, "max_activating_patches",
                        lambda *a, **k: real(*a, **{**k, "progress": stop_after(8)}))
    out = tmp_path / "p.png"
    assert run(["patches", "samples:12", "--layer", "features.4", "--channels", "0,3", "--k", "4",
                "--batch-size", "4", "-o", str(out)]) == 130
    assert "interrupted after 8 of 12 images" in capsys.readouterr().out
    assert Image.open(out).size == part.render().size


@pytest.mark.parametrize("args,msg", [
    (["filters", "--layer", "features.99", "-o", "x.png"], "unknown layer"),
    (["activations", "chelsea", "--layer", "features.3", "--order", "size", "-o", "x.png"], "order must be"),
    (["patches", "samples:4", "--layer", "features.4", "--channels", "0,99", "-o", "x.png"], "out of range"),
    (["patches", "no/such/dir", "--layer", "features.4", "-o", "x.png"], "not a folder"),
])
def test_cli_errors_are_one_line(args, msg, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and msg in err[0]


@pytest.mark.parametrize("cmd", ["filters", "activations", "patches"])
def test_help_has_an_example(cmd, capsys):
    assert run([cmd, "--help"]) == 0
    assert f"Example: convlens {cmd}" in capsys.readouterr().out


def test_demo_sections_quick(tmp_path):
    from convlens.demo import run_demo
    path, failures = run_demo(tmp_path, quick=True, only=["filters", "activations", "patches"], log=lambda m: None)
    assert failures == []
    html = path.read_text()
    for name in ("filters_first.png", "acts_mid.png", "patches.png", "patches_whole.png"):
        assert name in html and (tmp_path / name).exists()
    assert "convlens patches samples:48 --layer features.6" in html


def test_demo_small_batch_sections_take_every_core_only_when_idle():
    from convlens.demo.threads import section_threads
    assert section_threads(2.0, 2) == 2 and section_threads(1.8, 2) == 2     # quiet: both cores
    assert section_threads(1.2, 2) == 1 and section_threads(0.0, 2) == 1     # another process holds one
    assert section_threads(None, 2) == 1 and section_threads(1.0, 1) == 1    # unknown: one; one core: one
