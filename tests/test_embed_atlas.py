"""embed/atlas.py (Morton order, atlas images), embed/colours.py (colour codes) and embed/stores.py
(store discovery, reopen): values against hand computation."""
from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from convlens.embed import EmbeddingStore
from convlens.embed.atlas import ATLAS_SIDE, PER_ATLAS, atlas_count, atlas_image, atlas_order, atlas_png, morton_codes
from convlens.embed.colours import MAX_CATEGORIES, categorize, colour_codes
from convlens.embed.stores import find_stores, is_store, reopen
from convlens.errors import ConvlensError


def test_morton_codes_interleave_x_on_even_bits_and_y_on_odd_bits():
    # (x, y) -> code by hand: x = 0b10 -> 0b0100, y = 0b11 -> 0b1010; (3, 3) -> 0b1111
    xy = [[0, 0], [1, 0], [0, 1], [1, 1], [2, 0], [0, 2], [3, 3], [2, 3], [5, 0], [65535, 0], [0, 65535]]
    want = [0, 1, 2, 3, 4, 8, 15, 14, 0b10001, 0x55555555, 0xAAAAAAAA]
    assert morton_codes(xy).tolist() == want


def test_atlas_order_of_a_4x4_grid_is_the_z_curve():
    # the Z curve over a 4 x 4 grid, by hand: 2 x 2 blocks in Z order, each visited in Z order
    z = [(0, 0), (1, 0), (0, 1), (1, 1), (2, 0), (3, 0), (2, 1), (3, 1),
         (0, 2), (1, 2), (0, 3), (1, 3), (2, 2), (3, 2), (2, 3), (3, 3)]
    rng = np.random.default_rng(0)
    rows = rng.permutation(16)                       # row r of the store holds grid point z[rows[r]]
    coords = np.array([z[k] for k in rows], np.float64) * 2.5 - 7   # any scale and offset
    order = atlas_order(coords)
    assert order.dtype == np.uint32
    assert [z[rows[r]] for r in order] == z


def test_atlas_order_keeps_ties_in_row_order_and_handles_edge_cases():
    coords = np.array([[1.0, 1.0], [0.0, 0.0], [1.0, 1.0], [0.0, 0.0], [5.0, 5.0]])
    assert atlas_order(coords).tolist() == [1, 3, 0, 2, 4]
    assert atlas_order(np.zeros((3, 2))).tolist() == [0, 1, 2]       # one point repeated: span 0
    assert atlas_order(np.zeros((0, 2))).tolist() == []
    assert atlas_order(np.array([[0.0, 0.0, 9.0], [1.0, 0.0, -9.0]])).tolist() == [0, 1]   # x, y only


def test_atlas_count():
    assert [atlas_count(n) for n in (0, 1, PER_ATLAS, PER_ATLAS + 1, 3 * PER_ATLAS)] == [0, 1, 1, 2, 3]


class _Thumbs:
    """A store's read interface as atlas_image uses it: metadata() with a thumbnail column."""

    def __init__(self, thumbs):
        self.table = pa.table({"thumbnail": pa.array(thumbs, pa.binary())})

    def metadata(self):
        return self.table


def _png(colour, size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def test_atlas_image_puts_slot_j_at_column_j_mod_16_row_j_div_16():
    colours = [(i * 13 % 256, i * 7 % 256, 200 - i) for i in range(20)]
    thumbs = [_png(c) for c in colours]
    thumbs[5] = None                                  # no thumbnail: a transparent cell
    thumbs[6] = b"not an image"                       # unreadable: transparent too
    store = _Thumbs(thumbs)
    rows = [19, 0, 17, 5, 6] + list(range(1, 5)) + list(range(7, 17)) + [18]   # slot -> store row
    cell = 32
    img = atlas_image(store, rows, cell)
    assert img.mode == "RGBA" and img.size == (ATLAS_SIDE * cell, ATLAS_SIDE * cell)
    a = np.asarray(img)
    for j, row in enumerate(rows):
        px = a[(j // ATLAS_SIDE) * cell + cell // 2, (j % ATLAS_SIDE) * cell + cell // 2]
        if row in (5, 6):
            assert px[3] == 0
        else:
            assert tuple(px) == (*colours[row], 255), (j, row)
    assert a[3 * cell:, :, 3].max() == 0              # 20 slots fill rows 0 and 1 only
    decoded = np.asarray(Image.open(io.BytesIO(atlas_png(store, rows, cell))))
    assert np.array_equal(decoded, a)


def test_categorize_orders_by_count_then_name_and_folds_the_rarest():
    vals = ["a", "b", "a", None, "c", "a", "b", ""]
    codes, cats, counts = categorize(vals)
    assert cats == ["a", "(none)", "b", "c"] and counts == [3, 2, 2, 1]     # "(none)" < "b": ties by name
    assert codes.dtype == np.uint8 and codes.tolist() == [0, 2, 0, 1, 3, 0, 2, 1]
    codes, cats, counts = categorize(vals, max_categories=3)
    assert cats == ["a", "(none)", "(other)"] and counts == [3, 2, 3] and codes.tolist() == [0, 2, 0, 1, 2, 0, 2, 1]
    many = [f"v{i:02d}" for i in range(30) for _ in range(30 - i)]          # v00 x30, v01 x29, ...
    _, cats, counts = categorize(many)
    assert len(cats) == MAX_CATEGORIES and cats[-1] == "(other)" and cats[:2] == ["v00", "v01"]
    assert counts[-1] == sum(30 - i for i in range(MAX_CATEGORIES - 1, 30)) and sum(counts) == len(many)
    with pytest.raises(ConvlensError, match="max_categories"):
        categorize(vals, max_categories=300)


class _Columns:
    def __init__(self, **cols):
        self.cols = cols

    def column(self, name):
        return self.cols[name]


def test_colour_codes_by_folder_label_and_size():
    s = _Columns(path=["/x/cats/1.jpg", "/y/dogs/2.jpg", "/z/cats/3.png", None], label=["c", "d", "c", None],
                 width=[640, 320, 800, 100], height=[1, 2, 3, 4])
    c = colour_codes(s, "folder")
    assert c.kind == "category" and c.categories == ["cats", "(none)", "dogs"] and c.codes.tolist() == [0, 2, 0, 1]
    assert colour_codes(s, "label").categories == ["c", "(none)", "d"]
    w = colour_codes(s, "width")
    assert w.kind == "numeric" and w.values.dtype == np.float32 and w.values.tolist() == [640, 320, 800, 100]
    assert (w.min, w.max) == (100.0, 800.0) and w.codes is None
    with pytest.raises(ConvlensError, match="unknown colour column 'path'"):
        colour_codes(s, "path")


def test_find_stores_and_reopen_keep_the_read_metadata_when_the_shards_are_the_same(tmp_path):
    rng = np.random.default_rng(0)
    thumbs = [Image.new("RGB", (8, 8), (i, 0, 0)) for i in range(6)]
    a = EmbeddingStore.from_vectors(tmp_path / "b-store", rng.normal(size=(6, 4)).astype(np.float32),
                                    labels=list("xyzxyz"), thumbnails=thumbs, shard_size=4)
    EmbeddingStore.from_vectors(tmp_path / "a-store", rng.normal(size=(3, 4)).astype(np.float32))
    (tmp_path / "not-a-store").mkdir()
    (tmp_path / "file.txt").write_text("x")
    assert find_stores(tmp_path) == [tmp_path / "a-store", tmp_path / "b-store"]
    assert find_stores(tmp_path / "missing") == [] and not is_store(tmp_path / "not-a-store")

    meta = a.metadata()
    other = EmbeddingStore.open(a.path)
    other.save_array("projection-pca", np.zeros((6, 2), np.float32), {"params": {"method": "pca"}})
    b = reopen(a)                                        # the manifest changed on disk, the shards did not
    assert "projection-pca" in b.manifest["projections"] and "projection-pca" not in a.manifest.get("projections", {})
    assert b.metadata() is meta                          # not read again
    EmbeddingStore.from_vectors(a.path, rng.normal(size=(5, 4)).astype(np.float32), labels=list("ppppp"),
                                overwrite=True)
    c = reopen(b)                                        # new shards: the metadata is read again
    assert len(c) == 5 and c.column("label") == list("ppppp")
