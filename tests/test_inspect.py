"""Issue 3: filter grids, activation grids, streaming top-k, max-activating patches, sample set."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

import convlens
from convlens.errors import ConvlensError
from convlens.images import to_uint8
from convlens.inspect import TopActivations, filters, max_activating_patches, sample_dataset, top_activations
from convlens.inspect.topk import select_topk

from helpers import Snapshot, tiny_convnet


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def tile_pixels(fig: Image.Image, box) -> np.ndarray:
    x, y, w, h = box
    return np.asarray(fig.crop((x, y, x + w, y + h)))


def upscaled(tile: torch.Tensor, box) -> np.ndarray:
    """What a (C, kh, kw) tile in [0, 1] must look like on the canvas: uint8, nearest-upscaled."""
    a = to_uint8(tile.expand(3, -1, -1) if tile.shape[0] == 1 else tile)
    _, _, w, h = box
    fy, fx = h // a.shape[0], w // a.shape[1]
    return a.repeat(fy, 0).repeat(fx, 1)


# --- filters -------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch,layer,ksize", [("alexnet", "features.0", 11), ("resnet18", "conv1", 7),
                                              ("resnet101", "conv1", 7), ("densenet121", "features.conv0", 7)])
def test_lecture_first_layers_tile_count_and_size(arch, layer, ksize):
    torch.manual_seed(0)
    net = torchvision.models.get_model(arch, weights=None)
    snap = Snapshot(net)
    g = filters(net, layer)
    assert g.kind == "rgb" and g.layer == layer
    assert tuple(g.tiles.shape) == (64, 3, ksize, ksize)
    assert len([b for b in g.boxes if b]) == 64
    f = g.boxes[0][2] // ksize
    assert all(b[2] == b[3] == ksize * f for b in g.boxes)  # integer upscale of a kxk kernel
    w = dict(net.named_modules())[layer].weight.detach()
    s = w.flatten(1).abs().amax(1).view(-1, 1, 1, 1)
    assert torch.allclose(g.tiles, 0.5 + w / (2 * s))
    snap.assert_unchanged()


def hand_net() -> nn.Module:
    """conv1 3->2 (2x2, known weights), conv2 2->3 (2x2), no biases."""
    net = nn.Sequential(nn.Conv2d(3, 2, 2, bias=False), nn.ReLU(), nn.Conv2d(2, 3, 2, bias=False))
    with torch.no_grad():
        w = torch.zeros(2, 3, 2, 2)
        w[0, 0] = torch.tensor([[1.0, -1.0], [0.5, 0.0]])      # R of filter 0: max |w| = 1
        w[0, 1] = torch.tensor([[0.0, 0.25], [-0.5, 0.0]])
        w[1, 2] = torch.tensor([[2.0, 0.0], [0.0, -2.0]])      # filter 1: only B, max |w| = 2
        w[1, 0] = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
        net[0].weight.copy_(w)
        net[2].weight.copy_(torch.arange(24, dtype=torch.float32).view(3, 2, 2, 2) - 12)
    return net


def test_hand_weighted_filter_values_are_the_tile_pixels():
    net = hand_net()
    g = filters(net, "0")
    assert g.kind == "rgb" and g.tiles.shape == (2, 3, 2, 2)
    fig = g.figure
    # filter 0 per_filter: pixel = 0.5 + w / 2 -> R channel of its top-left is 1.0 -> 255; top-right 0.0 -> 0
    x, y, w_, h_ = g.boxes[0]
    assert fig.getpixel((x, y)) == (255, 128, 128)                      # w = (1, 0, 0) -> (1, .5, .5)
    assert fig.getpixel((x + w_ - 1, y)) == (0, 159, 128)               # w = (-1, .25, 0) -> (0, .625, .5)
    assert fig.getpixel((x, y + h_ - 1)) == (191, 64, 128)              # w = (.5, -.5, 0) -> (.75, .25, .5)
    x, y, w_, h_ = g.boxes[1]                                            # filter 1: s = 2
    assert fig.getpixel((x, y)) == (191, 128, 255)                      # w = (1, 0, 2) -> (.75, .5, 1)
    assert fig.getpixel((x + w_ - 1, y + h_ - 1)) == (128, 128, 0)      # w = (0, 0, -2)
    for t, b in zip(g.tiles, g.boxes):
        assert np.array_equal(tile_pixels(fig, b), upscaled(t, b))
    # shared scale: s = 2 for both filters
    gs = filters(net, "0", scale="shared")
    x, y, _, _ = gs.boxes[0]
    assert gs.figure.getpixel((x, y)) == (191, 128, 128)
    assert torch.allclose(gs.scales, torch.tensor([2.0, 2.0]))


def test_later_layer_grey_tiles_rows_out_cols_in():
    net = hand_net()
    g = filters(net, "2")
    w = net[2].weight.detach()
    assert g.kind == "grey" and (g.rows, g.cols) == (3, 2) and g.tiles.shape == (6, 1, 2, 2)
    for i, b in enumerate(g.boxes):
        o, c = divmod(i, 2)
        assert (g.out_index[i], g.in_index[i]) == (o, c)
        expect = 0.5 + w[o, c] / (2 * w[o].abs().max())
        assert torch.allclose(g.tiles[i, 0], expect)
        assert np.array_equal(tile_pixels(g.figure, b), upscaled(g.tiles[i], b))
    # a hand value: w[0, 0, 0, 0] = -12, max |w[0]| = 12 -> black
    assert g.figure.getpixel(g.boxes[0][:2]) == (0, 0, 0)


def test_grouped_depthwise_and_too_large_layers():
    dw = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3, groups=8), nn.Conv2d(8, 6, 3, groups=2),
                       nn.Conv2d(6, 70, 3), nn.Conv2d(70, 40, 3))
    g = filters(dw, "1")
    assert g.kind == "depthwise" and g.tiles.shape == (8, 1, 3, 3) and "Depthwise" in g.note
    assert g.in_index == list(range(8))
    g = filters(dw, "2")
    assert g.kind == "grouped" and (g.rows, g.cols) == (6, 4) and "groups=2" in g.note
    assert g.in_index[3 * 4:4 * 4] == [4, 5, 6, 7]  # output 3 is in group 1: inputs 4..7
    g = filters(dw, "4", max_out=16, max_in=20)
    assert (g.rows, g.cols) == (16, 20) and g.tiles.shape == (320, 1, 3, 3)
    assert "0..15 of 40" in g.note and "0..19 of 70" in g.note


def test_mobilenet_depthwise_and_block_names(offline_model):
    g = filters(offline_model, "features.2.conv.1")
    assert g.layer == "features.2.conv.1.0" and g.kind == "depthwise" and "block" in g.note
    with pytest.raises(ConvlensError, match="closest"):
        filters(offline_model, "features.2.conv.9")
    with pytest.raises(ConvlensError, match="scale"):
        filters(offline_model, None, scale="weird")


# --- activations -------------------------------------------------------------------------------

def test_activation_summary_hand_computed():
    net = nn.Sequential(nn.Conv2d(3, 3, 1, bias=False))
    with torch.no_grad():
        net[0].weight.zero_()
        net[0].weight[0, :, 0, 0] = 1.0          # c0 = R + G + B
        net[0].weight[1, 0, 0, 0] = -1.0         # c1 = -R
        net[0].weight[2, 1, 0, 0] = 2.0          # c2 = 2 G
    m = convlens.Model.wrap(net, mean=[0, 0, 0], std=[1, 1, 1], input_size=2, classes=["x"])
    img = torch.tensor([[[0.0, 1.0], [0.5, 0.0]], [[0.0, 0.0], [0.25, 1.0]], [[0.0, 0.0], [0.0, 0.0]]])[None]
    a = convlens.activations(m, img, "0", order="mean", highlight=1)
    assert torch.allclose(a.maps[0], torch.tensor([[0.0, 1.0], [0.75, 1.0]]))
    assert torch.allclose(a.mean, torch.tensor([2.75 / 4, -1.5 / 4, 2.5 / 4]))
    assert torch.allclose(a.max, torch.tensor([1.0, 0.0, 2.0]))
    assert torch.allclose(a.active, torch.tensor([0.75, 0.0, 0.5]))
    assert a.order == [0, 2, 1] and a.strongest == [0]
    assert [r[0] for r in a.summary(by="max")] == [2, 0, 1]


def test_activations_equal_the_probe(offline_model, cat):
    a = convlens.activations(offline_model, "chelsea", "features.6", order="mean")
    with convlens.Probe(offline_model, "features.6") as p:  # an independent, full, untruncated pass
        with torch.inference_mode():
            offline_model(cat)
    assert torch.equal(a.maps, p["features.6"][0])
    assert a.order == torch.argsort(a.maps.mean((1, 2)), descending=True).tolist()
    assert len(a.boxes) == 32


# --- streaming top-k ---------------------------------------------------------------------------

def brute_topk(acts: torch.Tensor, channels, k, per_image=False):
    """Sort every (image, y, x) of each channel by value desc, then stream order (reference)."""
    N, C, H, W = acts.shape
    vals, imgs, pos = [], [], []
    for c in channels:
        a = acts[:, c]
        if per_image:
            flat = a.reshape(N, H * W)
            v, p = flat.max(1)
            entries = sorted(((float(v[i]), i, int(p[i])) for i in range(N)), key=lambda e: (-e[0], e[1]))
            entries = [(v_, i * H * W + p_) for v_, i, p_ in entries]
        else:
            flat = a.reshape(-1)
            entries = sorted(((float(flat[j]), j) for j in range(flat.numel())), key=lambda e: (-e[0], e[1]))
        entries = entries[:k]
        vals.append([e[0] for e in entries])
        imgs.append([e[1] // (H * W) for e in entries])
        pos.append([((e[1] % (H * W)) // W, e[1] % W) for e in entries])
    return torch.tensor(vals), torch.tensor(imgs), torch.tensor(pos)


@pytest.fixture(scope="module")
def tiny():
    return convlens.Model.wrap(tiny_convnet(), input_size=16)


@pytest.fixture(scope="module")
def stream():
    torch.manual_seed(1)
    return torch.rand(37, 3, 16, 16)


@pytest.mark.parametrize("layer", ["0", "3"])
@pytest.mark.parametrize("per_image", [False, True])
def test_streaming_topk_equals_brute_force(tiny, stream, layer, per_image):
    chans = [0, 2, 3]
    top = top_activations(tiny, stream, layer, chans, k=7, batch_size=5, per_image=per_image)
    acts = convlens.layer_activations(tiny, stream, layer)
    v, i, p = brute_topk(acts, chans, 7, per_image)
    assert top.n_images == 37 and top.map_size == tuple(acts.shape[-2:])
    assert torch.equal(top.image_index, i) and torch.equal(top.positions, p)
    assert torch.allclose(top.values, v, atol=1e-5)
    # each stored value is the activation at the stored place
    for r, c in enumerate(chans):
        for j in range(7):
            y, x = top.positions[r, j]
            assert abs(float(acts[top.image_index[r, j], c, y, x]) - float(top.values[r, j])) < 1e-5
    if per_image:
        assert all(len(set(row.tolist())) == 7 for row in top.image_index)


def test_ties_go_to_stream_order(tiny):
    """Images of the mean colour (0 after normalization): layer 0 outputs its bias everywhere, so
    every unit ties; the first ones in stream order win."""
    zeros = tiny.mean.expand(6, 3, 16, 16).clone()
    top = top_activations(tiny, zeros, "0", None, k=5, batch_size=4)
    assert (top.image_index == 0).all()
    assert top.positions[0].tolist() == [[0, 0], [0, 1], [0, 2], [0, 3], [0, 4]]
    assert torch.equal(top.values[:, 0], tiny.net[0].bias)
    top = top_activations(tiny, zeros, "0", None, k=5, batch_size=4, per_image=True)
    assert top.image_index[0].tolist() == [0, 1, 2, 3, 4] and (top.positions == 0).all()
    v, key = select_topk(torch.tensor([[1.0, 3.0, 3.0, 2.0, 3.0]]), torch.tensor([[9, 8, 1, 7, 5]]), 2)
    assert v.tolist() == [[3.0, 3.0]] and key.tolist() == [[1, 5]]


def test_fewer_images_than_k_pads_with_minus_inf(tiny, stream):
    top = top_activations(tiny, stream[:2], "3", [1], k=5, per_image=True)
    assert top.image_index[0, :2].tolist() in ([0, 1], [1, 0])
    assert torch.isinf(top.values[0, 2:]).all() and (top.image_index[0, 2:] == -1).all()
    assert len(top.row(1)) == 2


def test_iterables_lists_and_folders_give_the_same_topk(tiny, stream, tmp_path):
    ref = top_activations(tiny, stream, "3", None, k=4, batch_size=8)
    gen = top_activations(tiny, (im for im in stream), "3", None, k=4, batch_size=8)
    lst = top_activations(tiny, [im[None] for im in stream], "3", None, k=4, batch_size=3)
    for t in (gen, lst):
        assert torch.equal(t.image_index, ref.image_index) and torch.equal(t.positions, ref.positions)
    # a folder: PNGs are 8-bit, so compare with the quantized tensor; files are read in sorted order
    q = torch.stack([torch.from_numpy(to_uint8(im)).permute(2, 0, 1).float() / 255 for im in stream[:12]])
    for j in range(12):
        convlens.save_png(q[j], tmp_path / f"img{j:02d}.png")
    fold = top_activations(tiny, tmp_path, "3", None, k=4, batch_size=5)
    ref_q = top_activations(tiny, q, "3", None, k=4, batch_size=5)
    assert torch.equal(fold.image_index, ref_q.image_index) and torch.allclose(fold.values, ref_q.values)


def test_interrupt_keeps_results_and_resume_equals_full_pass(tiny, stream, tmp_path):
    full = top_activations(tiny, stream, "3", [0, 5], k=6, batch_size=5)

    def stop_after(n, total_expected=37):
        def progress(done, total):
            assert total == total_expected
            if done >= n:
                raise KeyboardInterrupt
        return progress
    with pytest.raises(KeyboardInterrupt) as e:
        top_activations(tiny, stream, "3", [0, 5], k=6, batch_size=5, progress=stop_after(10))
    part = e.value.partial
    assert part.n_images == 10
    assert torch.equal(part.values, top_activations(tiny, stream[:10], "3", [0, 5], k=6).values)
    resumed = top_activations(tiny, stream, "3", [0, 5], k=6, batch_size=5, state=part)
    assert resumed is part and resumed.n_images == 37
    assert torch.equal(resumed.image_index, full.image_index) and torch.equal(resumed.positions, full.positions)
    # through a checkpoint file, as a new process would
    ck = tmp_path / "state.pt"
    with pytest.raises(KeyboardInterrupt):
        top_activations(tiny, (x for x in stream), "3", [0, 5], k=6, batch_size=5, state=ck,
                          progress=stop_after(15, None))
    assert TopActivations.load(ck).n_images == 15
    again = top_activations(tiny, (x for x in stream), "3", [0, 5], k=6, batch_size=5, state=ck)
    assert torch.equal(again.image_index, full.image_index) and torch.allclose(again.values, full.values)
    with pytest.raises(ConvlensError, match="does not match"):
        top_activations(tiny, stream, "3", [0, 4], k=6, state=ck)


def test_bad_channels_and_layers(tiny, stream):
    with pytest.raises(ConvlensError, match="out of range"):
        top_activations(tiny, stream, "3", [6])
    with pytest.raises(ConvlensError, match="not \\(C, H, W\\)"):
        top_activations(tiny, stream, "7", [0])


# --- patches -----------------------------------------------------------------------------------

def test_every_crop_is_the_receptive_field_slice(tiny, stream):
    """tiny_convnet layer 3: unit (y, x) sees input rows 4y-1 .. 4y+6 (hand-derived), padded, not shifted."""
    p = max_activating_patches(tiny, stream, "3", [0, 1, 4], k=9, batch_size=8, fill=0.25)
    assert p.rf.size == (8, 8) and p.rf.stride == (4, 4) and p.rf.offset == (-1, -1)
    padded = torch.nn.functional.pad(stream, (1, 8, 1, 8), value=0.25)  # index shift of +1
    borders = 0
    for r in range(3):
        for j in range(9):
            i, (y, x) = int(p.top.image_index[r, j]), p.top.positions[r, j].tolist()
            expect = padded[i, :, 4 * y:4 * y + 8, 4 * x:4 * x + 8]
            assert torch.equal(p.crops[r, j], expect)
            assert p.boxes[r, j].tolist() == [4 * y - 1, 4 * x - 1, 4 * y + 7, 4 * x + 7]
            borders += (y == 0) or (x == 0)
    assert borders > 0  # some crops did leave the image: their first row / column is padding


def test_crop_alone_reproduces_the_unit_value():
    """On a net without padding the receptive field is everything a unit sees: the crop alone gives
    the same activation as the whole image."""
    torch.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 5, 3, stride=2))
    m = convlens.Model.wrap(net, input_size=15, classes=["x"])
    images = torch.rand(9, 3, 15, 15)
    p = max_activating_patches(m, images, "2", [0, 3], k=5, batch_size=4)
    assert p.rf.size == (5, 5) and p.rf.offset == (0, 0)
    for r in range(2):
        for j in range(5):
            out = convlens.layer_activations(m, p.crops[r, j][None], "2")
            assert out.shape[-2:] == (1, 1)
            assert abs(float(out[0, p.channels[r], 0, 0]) - float(p.top.values[r, j])) < 1e-5


def test_one_shot_iterable_keeps_the_right_images(tiny, stream):
    ref = max_activating_patches(tiny, stream, "3", [2, 3], k=5, batch_size=6)
    gen = max_activating_patches(tiny, (x for x in stream), "3", [2, 3], k=5, batch_size=6)
    assert torch.equal(gen.crops, ref.crops)
    assert len(gen.images) <= 10 and set(gen.images) == set(ref.images)
    w = max_activating_patches(tiny, (x for x in stream), "3", [2], k=4, per_image=True)
    fig = w.render(whole=True)
    assert fig.width > 4 * 100


def test_same_seed_same_png_bytes(tiny):
    ds1, ds2 = sample_dataset(12, size=32, seed=5), sample_dataset(12, size=32, seed=5)
    pa = max_activating_patches(tiny, ds1, "3", [0, 1], k=4).render()
    pb = max_activating_patches(tiny, ds2, "3", [0, 1], k=4).render()
    assert png_bytes(pa) == png_bytes(pb)
    fa = filters(convlens.load_model("resnet18", weights=None, seed=3), "conv1").figure
    fb = filters(convlens.load_model("resnet18", weights=None, seed=3), "conv1").figure
    fc = filters(convlens.load_model("resnet18", weights=None, seed=4), "conv1").figure
    assert png_bytes(fa) == png_bytes(fb) != png_bytes(fc)


# --- sample set --------------------------------------------------------------------------------

def test_sample_dataset_is_deterministic_and_documented():
    a, b, c = sample_dataset(40, size=48, seed=0), sample_dataset(40, size=48, seed=0), sample_dataset(40, size=48, seed=1)
    ta = a.tensor()
    assert ta.shape == (40, 3, 48, 48) and ta.min() >= 0 and ta.max() <= 1
    assert torch.equal(ta, b.tensor()) and not torch.equal(ta[30:], c.tensor()[30:])
    assert a.names[0] == "chelsea whole"
    assert torch.equal(a[0], convlens.fit(convlens.sample_image("chelsea"), 48))
    # a crop image is exactly what its name says: that square of the source, resized (and flipped)
    from convlens.inspect.samples import _source_pil
    import re
    for i in range(len(a.sources), 40):
        src, side, top, left, flip = re.match(r"(\w+) crop (\d+)px@\((\d+),(\d+)\)( flip)?", a.names[i]).groups()
        side, top, left = int(side), int(top), int(left)
        pil = _source_pil(src).crop((left, top, left + side, top + side)).resize((48, 48), Image.BILINEAR)
        if flip:
            pil = pil.transpose(Image.FLIP_LEFT_RIGHT)
        assert torch.equal(a[i][0], torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1).float() / 255)
    assert len({n.split()[0] for n in sample_dataset(300).names}) == len(a.sources)


def test_model_left_untouched(tiny, stream):
    net = tiny_convnet()
    snap = Snapshot(net)
    m = convlens.Model.wrap(net, input_size=16, copy=False)
    max_activating_patches(m, stream[:8], "3", [0], k=3)
    convlens.activations(m, stream[:1], "3")
    filters(m, "3")
    assert convlens.probe.hook_count(net) == 0
    assert torch.equal(net[0].weight, snap.state["0.weight"])


def test_patches_from_a_selected_state_equal_a_second_pass(monkeypatch):
    """``top.select(channels)`` as the state of ``max_activating_patches``: the same patches as a second
    pass over the images, and no forward runs for them."""
    m = convlens.Model.wrap(tiny_convnet(), input_size=32)
    torch.manual_seed(0)
    imgs = torch.rand(12, 3, 32, 32)
    layer = "features.3" if "features.3" in dict(m.net.named_modules()) else [n for n, _ in m.net.named_modules()
                                                                              if isinstance(_, nn.Conv2d)][-1]
    top = top_activations(m, imgs, layer, None, k=4, per_image=True, batch_size=5)
    chosen = [top.channels[-1], top.channels[0]]
    want = max_activating_patches(m, imgs, layer, chosen, k=4, per_image=True, batch_size=5)
    sub = top.select(chosen)
    assert sub.channels == chosen and torch.equal(sub.values[0], top.values[-1])
    import convlens.inspect.topk as topk
    real, seen = topk.batched_forward, []   # images through the network while the patches are cut

    def counted(*a, **kw):
        for batch in real(*a, **kw):
            seen.append(len(batch))
            yield batch
    monkeypatch.setattr(topk, "batched_forward", counted)
    got = max_activating_patches(m, imgs, layer, chosen, k=4, per_image=True, batch_size=5, state=sub)
    max_activating_patches(m, imgs[:5], layer, chosen, k=4, per_image=True)
    assert sum(seen) == 5          # only the control call's 5 images: the selected state ran none
    assert torch.equal(got.crops, want.crops) and torch.equal(got.boxes, want.boxes)
    assert torch.equal(got.top.image_index, want.top.image_index) and got.top.n_images == 12
    with pytest.raises(ConvlensError, match="not tracked"):
        top.select([10_000])
