"""inspect/units.py (the conv behind a unit, one channel of a top-k pass) and inspect/figures.py
(the activation atlas): values on tiny hand-weighted nets."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import convlens
from convlens.errors import ConvlensError
from convlens.inspect import ConvInputs, activation_atlas, atlas_layout, channel_top, conv_inputs, top_activations


def _net() -> convlens.Model:
    net = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Conv2d(3, 4, 3, padding=1, bias=False), torch.nn.ReLU(),
                              torch.nn.Conv2d(4, 4, 1, groups=2, bias=False))
    with torch.no_grad():
        net[1].weight.zero_()
        net[1].weight[2, 0] = 1.0          # kernel norm 3
        net[1].weight[2, 1] = 2.0          # kernel norm 6
        net[1].weight[0, 2] = 1.0
        net[3].weight.zero_()
        net[3].weight[3, 0] = 1.0          # unit 3 is in group 1: its inputs are channels 2 and 3
        net[3].weight[3, 1] = -5.0
    return convlens.Model.wrap(net, input_size=(8, 8), mean=(0, 0, 0), std=(1, 1, 1))


def test_conv_inputs_names_the_producing_conv_and_its_strongest_inputs():
    m = _net()
    u = conv_inputs(m, "2", 2)                       # the ReLU after conv "1"
    assert isinstance(u, ConvInputs) and u.conv == "1" and u.kernel == (3, 3) and u.first_layer
    assert (u.in_channels, u.groups) == (3, 1)
    assert u.weight_norm == pytest.approx(math.sqrt(9 + 36))
    assert [i for i, _ in u.strongest] == [1, 0, 2]
    assert [n for _, n in u.strongest] == pytest.approx([6.0, 3.0, 0.0])
    g = conv_inputs(m, "3", 3, top=1)
    assert g.conv == "3" and not g.first_layer and g.groups == 2 and g.strongest == [(3, pytest.approx(5.0))]
    assert conv_inputs(m, "0", 1) is None            # the input itself: no conv made it


def test_channel_top_equals_a_pass_over_that_channel_alone():
    m = _net()
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(1, 3, 8, 8, generator=g) for _ in range(7)]
    every = top_activations(m, images, "2", None, 3)
    for c in (0, 2):
        want = top_activations(m, images, "2", [c], 3)
        got = channel_top(every, c)
        assert got.channels == [c] and got.n_images == 7 and got.layer == "2"
        assert torch.equal(got.values, want.values) and torch.equal(got.image_index, want.image_index)
        assert torch.equal(got.positions, want.positions)
    got.values.zero_()                                # a copy: the layer's pass is untouched
    assert float(every.values[2].abs().sum()) > 0
    with pytest.raises(ConvlensError, match="channel 9 is not in this top-k pass"):
        channel_top(top_activations(m, images, "2", [0, 1], 3), 9)


def test_activation_atlas_tiles_channel_c_at_row_c_div_cols():
    lay = atlas_layout(5, 4, 4)
    # cols = round(sqrt(1.6 * 5)) = 3, rows 2; tile = min(96, 960 // 3 - 2, 4 * 8) = 32
    assert lay == {"cols": 3, "rows": 2, "tile": 32, "pad": 2, "width": 3 * 34 + 2, "height": 2 * 34 + 2}
    maps = torch.arange(5, dtype=torch.float32).view(5, 1, 1).expand(5, 4, 4).clone()
    maps[3, :2] = 0                                   # channel 3: top half 0, bottom half its max
    img, got = activation_atlas(maps, "channel")      # each map to its own max: 0 black, max white
    assert got == lay and img.size == (lay["width"], lay["height"])
    a = np.asarray(img)

    def px(c, fy=0.5):
        r, q = divmod(c, 3)
        return tuple(a[2 + r * 34 + int(fy * 32), 2 + q * 34 + 16])
    assert px(0) == (0, 0, 0) and px(1) == px(2) == px(4) == (255, 255, 255)
    assert px(3, 0.2) == (0, 0, 0) and px(3, 0.8) == (255, 255, 255)
    assert tuple(a[0, 0]) == (255, 255, 255) and a[2 + 34:, 2 + 2 * 34:].min() == 255   # pad and the empty 6th tile
