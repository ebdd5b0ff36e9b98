"""Front doors of issue 11: `convlens texture`, `convlens style`, `convlens fast-style train|apply`."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from convlens.cli import run
from convlens.images import save_png
from convlens.texture import efros_leung, quilting
from convlens.texture.samples import prepare_sample


def test_texture_cli_matches_the_api(tmp_path, capsys):
    out = tmp_path / "q.png"
    assert run(["texture", "brick", "--crop", "256", "--sample-size", "48", "--method", "quilting", "--block", "16",
                "--size", "64", "--seed", "3", "-o", str(out)]) == 0
    ref = quilting(prepare_sample("brick", 256, 48), 64, block=16, seed=3)
    save_png(ref.image, tmp_path / "ref.png")
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(tmp_path / "ref.png")))
    out2 = tmp_path / "el.png"
    assert run(["texture", "brick", "--crop", "128", "--sample-size", "24", "--window", "7", "--size", "32",
                "-o", str(out2)]) == 0
    ref2 = efros_leung(prepare_sample("brick", 128, 24), 32, window=7)
    save_png(ref2.image, tmp_path / "ref2.png")
    assert np.array_equal(np.asarray(Image.open(out2)), np.asarray(Image.open(tmp_path / "ref2.png")))
    assert "wrote" in capsys.readouterr().out


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert run(["texture", "brick", "--method", "nope", "-o", str(tmp_path / "x.png")]) == 1
    assert run(["fast-style", "apply", "no_such_style", "chelsea", "-o", str(tmp_path / "x.png")]) == 1
    assert run(["style", "chelsea", "ihc", "--model", "mobilenet_v2", "--optimizer", "sgd", "-o",
                str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(e.startswith("convlens: error:") for e in err)
    assert "one of efros-leung" in err[0] and "shipped style" in err[1] and "lbfgs or adam" in err[2]


def test_fast_style_train_then_apply(tmp_path, capsys):
    model = tmp_path / "m.safetensors"
    assert run(["--threads", "1", "fast-style", "train", "--style", "gravel", "--steps", "2", "--crop", "32",
                "--width", "8", "--loss-model", "mobilenet_v2", "--out", str(model)]) == 0
    out = tmp_path / "y.png"
    assert run(["fast-style", "apply", str(model), "coffee", "--size", "41", "-o", str(out)]) == 0
    img = Image.open(out)
    assert img.size == (41, 27)  # coffee is 600 x 400: longer side 41, odd sizes kept
    torch.set_num_threads(int(__import__("os").environ.get("CONVLENS_TEST_THREADS", "2")))
