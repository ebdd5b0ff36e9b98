"""Meaning on the offline MobileNetV2 (ImageNet weights): the cat's maps lie on the cat; the
randomization test separates saliency from guided backprop; the CLI works end to end."""
from __future__ import annotations

import pytest
import torch

import convlens
from convlens.cli import run

# The chelsea photo is almost all cat, so a box "around the cat" would be the whole frame. Instead the
# cat (the model's centre crop, 128 px) is pasted onto a grey canvas at a known place: the box is exact.
BOX = (60, 188, 84, 212)  # top, bottom, left, right in a 224 x 224 canvas


@pytest.fixture(scope="module")
def composite():
    canvas = torch.full((1, 3, 224, 224), 0.5)
    top, bottom, left, right = BOX
    canvas[..., top:bottom, left:right] = convlens.sample_image("chelsea", 128)
    return canvas


def mass_in_box(m: torch.Tensor) -> float:
    top, bottom, left, right = BOX
    return float(m[top:bottom, left:right].sum() / m.sum())


AREA = (BOX[1] - BOX[0]) * (BOX[3] - BOX[2]) / 224 ** 2  # 0.33


@pytest.mark.slow
def test_cat_saliency_mass_lies_on_the_cat(offline_model, composite):
    m = offline_model
    top = convlens.predict(m, composite, 1)[0][0]
    assert top.label == "Egyptian cat"
    for fn in (convlens.saliency, convlens.smoothgrad, convlens.guided_backprop, convlens.grad_cam):
        r = fn(m, composite, "Egyptian cat")
        heat = r.upsampled(0)[0]
        heat = heat.clamp(min=0) if fn is convlens.grad_cam else heat.abs()
        frac = mass_in_box(heat)
        assert frac > 0.5 and frac > 1.5 * AREA, (r.method, frac)


@pytest.mark.slow
def test_cat_occlusion_peak_on_the_cat(offline_model, composite):
    r = convlens.occlusion(offline_model, composite, "Egyptian cat", window=32, stride=16, baseline="grey")
    grid = r.info["grid"][0]
    i, j = divmod(int(grid.argmax()), grid.shape[1])
    y, x = i * 16 + 16, j * 16 + 16  # centre of the most important window
    top, bottom, left, right = BOX
    assert top <= y < bottom and left <= x < right
    assert float(grid.max()) > 0.1  # hiding part of the cat costs real probability
    assert mass_in_box(r.map[0].clamp(min=0)) > 0.5


@pytest.mark.slow
def test_sanity_check_separates_saliency_from_guided(offline_model, cat):
    img = convlens.fit(cat, 128)
    s = convlens.sanity_check("saliency", offline_model, img, groups=4)
    g = convlens.sanity_check("guided_backprop", offline_model, img, groups=4)
    assert s.depends_on_model and s.rows[0][1] < 0.6
    assert not g.depends_on_model and g.rows[0][1] > 0.9  # Adebayo et al.: guided backprop barely changes


@pytest.mark.slow
def test_grabcut_on_coffee_keeps_the_cup(offline_model):
    img = convlens.sample_image("coffee", 224)
    g = convlens.grabcut(img, convlens.smoothgrad(offline_model, img, samples=8))
    assert g.mask[30:100, 60:140].float().mean() > 0.8  # the cup (upper centre of the crop)
    assert g.mask[180:, :60].float().mean() < 0.2  # the saucer's rim and the table, lower left
    assert 0.1 < g.foreground_fraction < 0.8


def test_cli_saliency_by_class_name(tmp_path, capsys):
    out = tmp_path / "sal.png"
    assert run(["saliency", "chelsea", "--target", "Egyptian cat", "-o", str(out)]) == 0
    assert "Egyptian cat (285)" in capsys.readouterr().out
    from PIL import Image
    assert Image.open(out).size[0] > 224
    assert run(["gradcam", "chelsea", "--target", "281", "-o", str(tmp_path / "cam.png")]) == 0
    assert "tabby (281)" in capsys.readouterr().out


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert run(["saliency", "chelsea", "--target", "Egyptain cat", "-o", str(tmp_path / "a.png")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("convlens: error: unknown class") and "egyptian cat" in err.lower() and "\n" not in err
    assert run(["guided", "chelsea", "--channel", "3", "-o", str(tmp_path / "b.png")]) == 1
    assert "need a layer" in capsys.readouterr().err
    assert run(["occlusion", "chelsea", "--stride", "40", "-o", str(tmp_path / "c.png")]) == 1
    assert "stride" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("cmd", [["guided", "--layer", "features.14", "--channel", "7"], ["deconvnet"],
                                 ["occlusion", "--window", "56", "--stride", "56"],
                                 ["occlusion", "--window", "56", "--stride", "56", "--whole"], ["smoothgrad", "--samples", "4"],
                                 ["ig", "--steps", "4"], ["grabcut"], ["sanity", "saliency", "--groups", "2"],
                                 ["saliency", "--model", "resnet18", "--weights", "none"]])
def test_cli_every_command(tmp_path, capsys, cmd):
    out = tmp_path / "x.png"
    if cmd[0] == "sanity":
        args = ["sanity", cmd[1], "chelsea", *cmd[2:], "-o", str(out)]
    else:
        args = [cmd[0], "chelsea", *cmd[1:], "-o", str(out)]
    assert run(args) == 0, capsys.readouterr().err
    assert out.exists() and out.stat().st_size > 1000
