"""Issue 3, slow end-to-end checks on the offline MobileNetV2 (`scripts/test --slow`)."""
from __future__ import annotations

import pytest
import torch

import convlens

pytestmark = pytest.mark.slow


def test_mobilenet_topk_equals_brute_force_and_crops_are_rf_slices(offline_model):
    m = offline_model
    ds = convlens.sample_dataset(48)
    x = ds.tensor()
    layer, chans = "features.6", [1, 3, 21]
    p = convlens.max_activating_patches(m, ds, layer, chans, k=9, batch_size=16)
    acts = torch.cat([convlens.layer_activations(m, x[i:i + 16], layer) for i in range(0, 48, 16)])
    rf = convlens.receptive_field(m, layer)
    for r, c in enumerate(chans):
        flat = acts[:, c].reshape(-1)
        ref = flat.topk(9).values
        assert torch.allclose(p.top.values[r], ref, atol=1e-4)
        for j in range(9):
            i, (y, x_) = int(p.top.image_index[r, j]), p.top.positions[r, j].tolist()
            assert abs(float(acts[i, c, y, x_]) - float(p.top.values[r, j])) < 1e-4
            assert torch.equal(p.crops[r, j], rf.crop(x[i], y, x_, fill=0.5))
    # the demo's claim "rows share a pattern": star-field channel 1 is dominated by the hubble crops
    names = [p.names[int(i)] for i in p.top.image_index[0]]
    assert sum(n.startswith("hubble") for n in names) >= 5, names

