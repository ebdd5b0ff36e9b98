"""RISE (Petsiuk et al. 2018): the authors' masks, a naive loop, a linear model's known answer, the cat.

No installed library implements RISE (Captum 0.9 and Quantus 0.6 do not); the masks are checked against
the authors' construction (skimage ``resize(order=1, mode="reflect")`` of the grid, then the crop), the
map against a plain per-mask loop, and its meaning on a model whose score is a known function of the pixels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import convlens
from convlens.attribution.rise import RiseConfig, RiseMasks, rise
from convlens.errors import ConvlensError

ARTIFACTS = Path(__file__).parent / "artifacts"


def linear_model(weight: torch.Tensor, dtype=torch.float64) -> convlens.Model:
    """Two logits: ``<weight, x>`` (a conv as large as the image) and 0; no normalization."""
    C, H, W = weight.shape
    conv = nn.Conv2d(C, 2, (H, W), bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0] = weight
    net = nn.Sequential(conv, nn.Flatten(1)).to(dtype)
    return convlens.Model.wrap(net, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), classes=["w", "zero"], input_size=(H, W))


def test_masks_are_the_authors_construction():
    """Each mask equals skimage's bilinear resize (mode "reflect") of its grid to (s + 1) x cell, cropped at its
    shift: the authors' generate_masks, to float rounding; and a slice does not depend on the chunking."""
    from skimage.transform import resize
    for (H, W), s in [((224, 224), 8), ((37, 50), 7), ((16, 16), 2)]:
        m = RiseMasks(12, (H, W), s, 0.5, seed=3)
        got = m[3:9].numpy()
        for j, i in enumerate(range(3, 9)):
            up = resize(m.grids[i].numpy(), ((s + 1) * m.cell[0], (s + 1) * m.cell[1]), order=1, mode="reflect",
                        anti_aliasing=False)
            dy, dx = int(m.dy[i]), int(m.dx[i])
            np.testing.assert_allclose(got[j], up[dy:dy + H, dx:dx + W], atol=1e-12)
        assert torch.equal(torch.cat([m[0:5], m[5:12]]), m[0:12])
    m = RiseMasks(4000, (32, 32), 4, 0.3, seed=1)
    assert abs(float(m.grids.mean()) - 0.3) < 0.01          # cells kept with probability p
    assert 0 <= int(m.dy.min()) and int(m.dy.max()) == m.cell[0] - 1   # shifts in [0, cell)


def test_rise_equals_a_naive_loop_and_is_seeded():
    """One mask at a time, by hand: S = sum_i softmax(f(x * M_i))[t] M_i / (N p); any chunking, same map."""
    torch.manual_seed(0)
    model = linear_model(torch.randn(3, 20, 24) * 0.05)
    x = torch.rand(2, 3, 20, 24, dtype=torch.float64)
    t = torch.tensor([0, 1])
    N, p = 37, 0.4
    masks = RiseMasks(N, (20, 24), 5, p, seed=7)
    want = torch.zeros(2, 20, 24, dtype=torch.float64)
    for n in range(2):
        for i in range(N):
            m = masks[i:i + 1][0]
            prob = model.net(x[n:n + 1] * m).softmax(-1)[0, t[n]]
            want[n] += prob * m
    want /= N * p
    for bs in (5, 64):
        got = rise(model, x, t, masks=N, grid=5, p=p, seed=7, batch_size=bs, backend="torch")
        torch.testing.assert_close(got.map, want, rtol=0, atol=1e-12)
    other = rise(model, x, t, masks=N, grid=5, p=p, seed=8, backend="torch").map
    assert (other - want).abs().max() > 1e-3                      # another seed, other masks


class LinearProb(nn.Module):
    """Two logits (log s, log(1 - s)) with s = <w, x>: the softmax probability of class 0 is exactly s."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(w, requires_grad=False)

    def forward(self, z):
        s = (z * self.w).flatten(1).sum(1)
        return torch.stack([s.log(), (1 - s).log()], 1)


def test_rise_of_a_linear_score_converges_to_the_weight_map():
    """P_target(x * M) = <w, x * M>, x = 1: the map E[<w, M> M] / p = sum_k w_k E[M_k M_j] / p is w smoothed by
    the masks' correlation (an 8 px cell here), so a weight image smooth at that scale is recovered: correlation
    0.60 with 100 masks, 0.97 with 2,000 (0.98 at 10,000)."""
    H = W = 32
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    w = torch.exp(-((yy - 10) ** 2 + (xx - 21) ** 2) / (2 * 9.0 ** 2))
    model = convlens.Model.wrap(LinearProb((w / w.sum() * 0.3).expand(3, H, W).clone()), mean=(0.0, 0.0, 0.0),
                                std=(1.0, 1.0, 1.0), classes=["s", "1-s"], input_size=(H, W))
    x = torch.ones(1, 3, H, W, dtype=torch.float64)
    corr = {n: float(np.corrcoef(rise(model, x, 0, masks=n, grid=4, backend="torch").map[0].ravel().numpy(),
                                 w.ravel().numpy())[0, 1]) for n in (100, 2000)}
    assert corr[2000] > 0.9
    assert corr[100] < corr[2000] - 0.2


def test_config_is_checked_and_interrupt_keeps_the_masks_done():
    with pytest.raises(ConvlensError, match="--p must be in"):
        RiseConfig(p=0)
    with pytest.raises(ConvlensError, match="masks"):
        rise(linear_model(torch.zeros(3, 8, 8)), torch.rand(1, 3, 8, 8), masks=0)
    model = linear_model(torch.rand(3, 8, 8) * 0.1)
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64)

    def stop(done, total):
        if done >= 20:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt) as e:
        rise(model, x, 0, masks=100, grid=2, batch_size=10, backend="torch", progress=stop)
    part = e.value.partial
    assert part.info["finished"] == 20 and part.info["total"] == 100
    m = RiseMasks(100, (8, 8), 2, 0.5, seed=0)[0:20]               # the run's first 20 masks, by hand
    probs = model.net(x * m[:, None]).softmax(-1)[:, 0]
    torch.testing.assert_close(part.map[0], (probs[:, None, None] * m).sum(0) / (20 * 0.5), rtol=0, atol=1e-12)


def corner_cat(size: int = 224, part: int = 96) -> torch.Tensor:
    """The chelsea photo shrunk into the bottom-left corner of a grey image."""
    img = torch.full((1, 3, size, size), 0.5)
    img[..., size - part:, :part] = convlens.sample_image("chelsea", part)
    return img


@pytest.mark.slow
def test_rise_finds_the_cat_in_its_corner(offline_model):
    x = corner_cat()
    r = rise(offline_model, x, masks=1000)
    assert r.labels[0].startswith("Egyptian cat")
    heat = r.map[0]
    inside = heat[-96:, :96].mean()
    assert inside > heat[:128, 96:].mean() + 0.02                 # the cat's corner over the grey rest
    iy, ix = divmod(int(heat.argmax()), heat.shape[1])
    assert iy >= 224 - 96 - 16 and ix < 96 + 16                   # the peak lies on (or at the edge of) the cat
    ARTIFACTS.mkdir(exist_ok=True)
    r.save(ARTIFACTS / "rise_corner_cat.png")
