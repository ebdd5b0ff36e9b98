"""Score-CAM (Wang et al. 2020): a naive per-channel loop on a tiny CNN, the known cases, the cat in its corner.

No installed library implements Score-CAM (Captum 0.9, Quantus 0.6); the reference is the authors' algorithm
written as a plain loop (one channel, one masked image, one forward at a time), with the paper's increase
over the black baseline.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import convlens
from convlens.attribution.scorecam import ScoreCamConfig, score_cam
from convlens.errors import ConvlensError
from helpers import Snapshot, tiny_convnet

ARTIFACTS = Path(__file__).parent / "artifacts"


def naive_score_cam(net: nn.Module, layer: nn.Module, x: torch.Tensor, target: int) -> torch.Tensor:
    """The authors' loop (haofanwang/Score-CAM), one image: a hook for A, then per channel upsample, min-max
    normalize, mask, forward, softmax; weight = increase over the black image; ReLU(sum_k w_k A_k)."""
    acts = {}
    h = layer.register_forward_hook(lambda m, i, o: acts.__setitem__("a", o.detach().clone()))
    with torch.no_grad():
        net(x)
    h.remove()
    A = acts["a"][0]
    with torch.no_grad():
        base = net(torch.zeros_like(x)).softmax(-1)[0, target]
        cam = torch.zeros(A.shape[1:], dtype=A.dtype)
        for k in range(A.shape[0]):
            up = F.interpolate(A[k][None, None], size=x.shape[-2:], mode="bilinear", align_corners=False)
            if up.max() == up.min():
                continue
            mask = (up - up.min()) / (up.max() - up.min())
            score = net(x * mask).softmax(-1)[0, target]
            cam += (score - base) * A[k]
    return torch.relu(cam)


def tiny(dtype=torch.float64):
    net = tiny_convnet(seed=3, classes=4).to(dtype)
    return net, convlens.Model.wrap(net, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), input_size=(16, 16))


def test_score_cam_equals_the_naive_loop_on_a_tiny_cnn():
    net, model = tiny()
    snap = Snapshot(net)
    x = torch.rand(3, 3, 16, 16, dtype=torch.float64)
    targets = [0, 2, 3]
    nonzero = []
    for layer in ("0", "3"):   # conv1 (4 channels at 16 x 16), conv2 (6 at 3 x 3)
        for bs in (1, 5):
            r = score_cam(model, x, targets, layer=layer, batch_size=bs, backend="torch")
            for n, t in enumerate(targets):
                want = naive_score_cam(net, net[int(layer)], x[n:n + 1], t)
                torch.testing.assert_close(r.map[n], want, rtol=0, atol=1e-6)
                nonzero.append(bool(want.max() > 1e-3))
        assert r.info["layer"] == layer and r.map.shape[-2:] == want.shape
    assert sum(nonzero) >= len(nonzero) // 2          # the ReLU does not leave an empty map to compare
    snap.assert_unchanged()


def test_weights_are_the_increase_over_the_black_baseline():
    """The baseline is P_target(black image); constant (dead) channels weigh 0 and are not run; no target: the
    predicted class."""
    net, model = tiny()
    x = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    r = score_cam(model, x, 1, layer="3", backend="torch")
    with torch.no_grad():
        base = net(torch.zeros_like(x)).softmax(-1)[0, 1]
    torch.testing.assert_close(r.info["baseline"][0], base, rtol=0, atol=1e-12)
    with convlens.Probe(model, "3") as p:
        p.run(x)
        acts = p["3"][0].detach()
    dead = (acts.flatten(1).amax(1) == acts.flatten(1).amin(1))
    assert torch.all(r.info["weights"][0][dead] == 0)
    assert r.info["live_channels"] == int((~dead).sum())
    # the target resolved from the model's prediction when none is given
    pred = int(net(x).argmax())
    assert int(score_cam(model, x, layer="3", backend="torch").target[0]) == pred


def test_config_and_layer_errors():
    _, model = tiny()
    x = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    with pytest.raises(ConvlensError, match="batch_size|--batch-size"):
        score_cam(model, x, batch_size=0)
    with pytest.raises(ConvlensError, match="nosuch"):
        score_cam(model, x, layer="nosuch")
    with pytest.raises(ConvlensError, match=r"\(C, h, w\)"):
        score_cam(model, x, layer="7")
    assert ScoreCamConfig().layer is None


def corner_cat(size: int = 224, part: int = 96) -> torch.Tensor:
    img = torch.full((1, 3, size, size), 0.5)
    img[..., size - part:, :part] = convlens.sample_image("chelsea", part)
    return img


@pytest.mark.slow
def test_score_cam_finds_the_cat_in_its_corner(offline_model):
    """MobileNetV2, the default layer (features.18, 1,280 channels at 7 x 7): the cat shrunk into the bottom-left
    corner of a grey image; the map's peak is in that corner and the rest is near zero."""
    x = corner_cat()
    r = score_cam(offline_model, x)
    assert r.labels[0].startswith("Egyptian cat") and r.info["layer"] == "features.18"
    heat = r.map[0]
    iy, ix = divmod(int(heat.argmax()), heat.shape[1])
    assert iy >= 4 and ix <= 2                                   # the cat covers rows 4-6, columns 0-2 of 7
    assert heat[:3, 4:].max() < 0.1 * heat.max()
    ARTIFACTS.mkdir(exist_ok=True)
    r.save(ARTIFACTS / "score_cam_corner_cat.png")


def test_rise_and_score_cam_through_sanity_check_and_evaluate():
    """Both are attribution methods by name: sanity_check runs them (keywords passed through), and evaluate
    scores their maps at the image's size next to the baselines."""
    _, model = tiny(torch.float32)
    x = torch.rand(1, 3, 16, 16)
    s = convlens.sanity_check("scorecam", model, x, groups=2, layer="0")
    assert s.method == "scorecam" and len(s.rows) == 2 and s.maps[0].shape == (16, 16)
    s = convlens.sanity_check("rise", model, x, groups=2, masks=64, grid=4)
    assert len(s.rows) == 2 and all(-1 <= r <= 1 for _, r, _ in s.rows)
    ev = convlens.evaluate(model, x, methods=["rise", "score_cam"], metrics=["sparseness"])
    assert {"rise", "score_cam"} <= set(ev.methods) and ev.maps["rise"].shape == (1, 16, 16)
    assert all(0 <= v <= 1 for v in ev.value("sparseness", "score_cam"))
