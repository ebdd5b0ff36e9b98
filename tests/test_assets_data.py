"""Data read out of installed packages: the qres reader, the reassembled paintings, the labelled photo sets."""
from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from convlens.errors import ConvlensError
from convlens.images.qrc import COMPRESSED, DIRECTORY, QResource, read_qres


def qt_hash(name: str) -> int:
    h = 0
    for ch in name:
        h = ((h << 4) + ord(ch)) & 0xFFFFFFFF
        h ^= (h & 0xF0000000) >> 23
        h &= 0x0FFFFFFF
    return h


def build_qres(tree: dict, version: int = 3) -> bytes:
    """A qres blob written by hand after Qt's rcc: {"dir": {"file": bytes}}; a name ending in '.z' is zlib'd."""
    names, data, nodes = bytearray(), bytearray(), []

    def name_off(n):
        off = len(names)
        names.extend(struct.pack(">HI", len(n), qt_hash(n)) + n.encode("utf-16-be"))
        return off

    nodes.append(None)
    queue = [(0, "", tree)]  # breadth-first like rcc: each directory's children contiguous
    while queue:
        idx, name, children = queue.pop(0)
        first = len(nodes)
        items = sorted(children.items(), key=lambda kv: qt_hash(kv[0]))
        nodes.extend([None] * len(items))
        nodes[idx] = ("dir", name, len(items), first)
        for k, (child, val) in enumerate(items):
            if isinstance(val, dict):
                queue.append((first + k, child, val))
            else:
                payload = struct.pack(">I", len(val)) + zlib.compress(val) if child.endswith(".z") else val
                nodes[first + k] = ("file", child, COMPRESSED if child.endswith(".z") else 0, len(data))
                data.extend(struct.pack(">I", len(payload)) + payload)
    tree_bytes = bytearray()
    for node in nodes:
        n_off = name_off(node[1]) if node[1] else 0
        if node[0] == "dir":
            tree_bytes += struct.pack(">IHII", n_off, DIRECTORY, node[2], node[3])
        else:
            tree_bytes += struct.pack(">IHHHI", n_off, node[2], 0, 0, node[3])
        if version >= 2:
            tree_bytes += b"\0" * 8
    header = 20 + (4 if version >= 3 else 0)
    tree_off, data_off = header, header + len(tree_bytes)
    names_off = data_off + len(data)
    head = b"qres" + struct.pack(">IIII", version, tree_off, data_off, names_off) + (b"\0\0\0\0" if version >= 3 else b"")
    return head + bytes(tree_bytes) + bytes(data) + bytes(names)


@pytest.mark.parametrize("version", [1, 2, 3])
def test_qres_round_trip_on_a_hand_built_blob(version):
    files = {"a": {"board.qml": b"x: 0.5", "pic.z": bytes(range(256)) * 20, "sub": {"deep.txt": "中文".encode()}},
             "top.bin": b"\x00\x01"}
    got = read_qres(build_qres(files, version))
    assert got == {"a/board.qml": b"x: 0.5", "a/pic.z": bytes(range(256)) * 20, "a/sub/deep.txt": "中文".encode(),
                   "top.bin": b"\x00\x01"}


def test_qres_refuses_garbage_in_one_line():
    with pytest.raises(ConvlensError, match="not a Qt resource file"):
        QResource(b"PK\x03\x04" + b"\0" * 40)
    blob = build_qres({"f.z": b"hello" * 50})
    with pytest.raises(ConvlensError, match="truncated or damaged"):
        QResource(blob[:30])


def seam_ratio(rgb, owner) -> float:
    """Mean |step| between neighbouring pixels from different pieces / the same for pixels of one piece."""
    f = rgb.astype(np.float64)
    dx, dy = np.abs(np.diff(f, axis=1)).mean(-1), np.abs(np.diff(f, axis=0)).mean(-1)
    ox = (owner[:, 1:], owner[:, :-1])
    oy = (owner[1:], owner[:-1])
    seam = np.concatenate([dx[(ox[0] != ox[1]) & (ox[0] >= 0) & (ox[1] >= 0)],
                           dy[(oy[0] != oy[1]) & (oy[0] >= 0) & (oy[1] >= 0)]])
    within = np.concatenate([dx[ox[0] == ox[1]], dy[oy[0] == oy[1]]])
    return seam.mean() / within.mean()


@pytest.mark.parametrize("name,shape", [("great_wave", (450, 665, 3)), ("mona_lisa", (500, 322, 3)),
                                        ("van_gogh", (469, 599, 3))])
def test_paintings_reassemble_without_seams(name, shape):
    from convlens.images import paintings
    rgb, owner = paintings.build_painting(name)
    assert rgb.shape == shape
    assert (owner >= 0).mean() > 0.999  # every pixel from a piece (no crack to fill)
    assert seam_ratio(rgb, owner) < 1.4  # a one-pixel step or gap at the joins gives > 2
    # the same pieces with one of them misplaced: the seam check sees it
    from convlens.images.paintings import PREFIX, _rcc_path, assemble, board_pieces
    from convlens.images.qrc import QResource
    from PIL import Image
    import io
    res = QResource.open(_rcc_path())
    qml = res.read(f"{PREFIX}board/board{paintings.PAINTINGS[name].board}_0.qml").decode()
    pieces = [(Image.open(io.BytesIO(res.read(PREFIX + p))), x, y) for p, x, y in board_pieces(qml)]
    im, x, y = pieces[len(pieces) // 2]
    pieces[len(pieces) // 2] = (im, x + 12 / paintings.BOARD_W, y + 12 / paintings.BOARD_H)  # beyond registration
    bad = paintings.assemble(pieces)
    assert seam_ratio(*bad) > seam_ratio(rgb, owner) + 0.2


def test_paintings_are_samples_with_attribution():
    import convlens
    from convlens.images.samples import PAINTINGS, SAMPLES
    names = convlens.sample_names()
    for n in ("starry_night", "great_wave", "kandinsky", "mona_lisa", "van_gogh", "bruegel_harvesters"):
        assert n in names and n in PAINTINGS
    assert "Hokusai" in SAMPLES["great_wave"][1] and "public domain" in SAMPLES["kandinsky"][1]
    img = convlens.sample_image("kandinsky")
    assert img.shape == (1, 3, 460, 665) and 0.2 < float(img.mean()) < 0.9


def test_labelled_sets_parse_their_labels():
    import convlens
    g = convlens.labelled_photos("gcompris")
    assert g.counts() == {"fish": 28, "monument": 76, "animal": 57, "windmill": 15, "hammer": 9, "solar panel": 8,
                          "measuring tape": 6, "dam": 5, "plier": 4, "scissors": 4, "screwdriver": 4}
    assert all(p.parent.name == g.label_of(i) for i, p in enumerate(g.paths))
    f = convlens.labelled_photos("imagenet20")
    assert len(f) == 20 and f.imagenet[0] == 243 and f.label_of(0) == "bull mastiff"
    assert f.counts()["jeep"] == 2 and convlens.imagenet_classes()[f.imagenet[14]] == "spoonbill"
    with pytest.raises(ConvlensError, match="unknown labelled photo set"):
        convlens.labelled_photos("cifar")


def test_loo_1nn_accuracy_by_hand():
    from convlens.images.labelled import loo_1nn_accuracy
    v = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [0.8, 0.3]])
    # nearest others by cosine: 0->1, 1->0, 2->3, 3->2, 4->1; labels a a b b b: item 4 is wrong
    assert loo_1nn_accuracy(v, list("aabbb")) == pytest.approx(4 / 5)


@pytest.mark.slow
def test_gcompris_1nn_accuracy_features_beat_pixels(offline_model):
    import torch

    from convlens.images.labelled import labelled_photos, loo_1nn_accuracy
    s = labelled_photos("gcompris")
    x = s.images(224)
    with torch.inference_mode():
        from convlens.embed.extract import default_layer, pool
        from convlens import Probe
        layer = default_layer(offline_model)
        feats = []
        for a in range(0, len(x), 32):
            with Probe(offline_model, layer) as p:
                offline_model(x[a:a + 32])
            feats.append(pool(p[layer]))
        feats = torch.cat(feats).numpy()
    small = torch.nn.functional.interpolate(x, size=32, mode="area").flatten(1).numpy()
    acc, pix = loo_1nn_accuracy(feats, s.labels), loo_1nn_accuracy(small, s.labels)
    assert acc >= 0.85 and acc > pix + 0.25
