"""Image loading in every format the issue lists, bad inputs with clear errors, atomic PNG writes."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

import convlens
from convlens.images import io as imio


def _rgb_array(h=20, w=30, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("fmt,ext", [("PNG", "png"), ("BMP", "bmp"), ("TIFF", "tif"), ("WEBP", "webp")])
def test_lossless_formats_roundtrip_exactly(tmp_path, fmt, ext):
    a = _rgb_array()
    path = tmp_path / f"x.{ext}"
    Image.fromarray(a).save(path, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    t = convlens.load_image(path)
    assert t.dtype == torch.float32 and t.shape == (1, 3, 20, 30)
    assert torch.equal((t[0].permute(1, 2, 0) * 255).round().to(torch.uint8), torch.from_numpy(a))


def test_jpeg_close_to_source(tmp_path):
    a = np.full((16, 16, 3), (200, 30, 90), np.uint8)
    Image.fromarray(a).save(tmp_path / "x.jpg", quality=95)
    t = convlens.load_image(tmp_path / "x.jpg")
    assert torch.allclose(t[0, :, 8, 8], torch.tensor([200, 30, 90]) / 255, atol=0.03)


def test_greyscale_palette_and_16bit(tmp_path):
    Image.fromarray(np.full((4, 5), 51, np.uint8), "L").save(tmp_path / "g.png")
    g = convlens.load_image(tmp_path / "g.png")
    assert g.shape == (1, 3, 4, 5) and torch.allclose(g, torch.full_like(g, 0.2))

    p = Image.new("P", (3, 2))
    p.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    p.putpixel((1, 0), 1)
    p.save(tmp_path / "p.png")
    t = convlens.load_image(tmp_path / "p.png")
    assert t[0, :, 0, 0].tolist() == [1.0, 0.0, 0.0] and t[0, :, 0, 1].tolist() == [0.0, 0.0, 1.0]

    a16 = np.array([[0, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(a16).save(tmp_path / "d.png")
    t16 = convlens.load_image(tmp_path / "d.png")
    assert torch.allclose(t16[0, 0, 0], torch.tensor([0.0, 32768 / 65535, 1.0]), atol=1e-6)


def test_rgba_is_composited_on_background(tmp_path):
    a = np.zeros((2, 2, 4), np.uint8)
    a[0, 0] = (255, 0, 0, 255)     # opaque red
    a[0, 1] = (255, 0, 0, 0)       # fully transparent -> background
    a[1, 0] = (0, 0, 0, 128)       # half black over white -> ~0.5 grey
    Image.fromarray(a, "RGBA").save(tmp_path / "a.png")
    t = convlens.load_image(tmp_path / "a.png")
    assert t[0, :, 0, 0].tolist() == [1.0, 0.0, 0.0]
    assert t[0, :, 0, 1].tolist() == [1.0, 1.0, 1.0]
    assert torch.allclose(t[0, :, 1, 0], torch.full((3,), 1 - 128 / 255), atol=1e-6)
    t2 = convlens.load_image(tmp_path / "a.png", background=(0, 0, 0))
    assert t2[0, :, 0, 1].tolist() == [0.0, 0.0, 0.0]


def test_exif_orientation_is_applied(tmp_path):
    a = np.zeros((10, 20, 3), np.uint8)
    a[:, :10] = 255  # left half white
    img = Image.fromarray(a)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img.save(tmp_path / "r.jpg", exif=exif, quality=95)
    t = convlens.load_image(tmp_path / "r.jpg")
    assert t.shape == (1, 3, 20, 10)  # displayed upright: portrait
    assert t[0, :, :8].mean() > 0.9 and t[0, :, 12:].mean() < 0.1  # white half ends on top


def test_arrays_tensors_and_pil_inputs():
    a = _rgb_array(4, 6)
    t = convlens.load_image(a)
    assert torch.equal(convlens.load_image(Image.fromarray(a)), t)
    assert torch.equal(convlens.load_image(t[0]), t)
    assert convlens.load_image(np.zeros((4, 6), np.float32)).shape == (1, 3, 4, 6)
    with pytest.raises(convlens.ConvlensError, match=r"\(H, W, 3\)"):
        convlens.load_image(np.zeros((4, 6, 5)))
    with pytest.raises(convlens.ConvlensError, match="NaN"):
        convlens.load_image(np.full((2, 2), np.nan, np.float32))
    with pytest.raises(convlens.ConvlensError, match="cannot read an image from int"):
        convlens.load_image(3)


def test_bad_files_name_the_file(tmp_path):
    with pytest.raises(convlens.ConvlensError, match="not found: .*missing.png"):
        convlens.load_image(tmp_path / "missing.png")
    (tmp_path / "notes.png").write_text("this is not an image")
    with pytest.raises(convlens.ConvlensError, match="notes.png: not a readable image"):
        convlens.load_image(tmp_path / "notes.png")
    buf = io.BytesIO()
    Image.fromarray(_rgb_array(64, 64)).save(buf, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    with pytest.raises(convlens.ConvlensError, match="cut.jpg: not a readable image"):
        convlens.load_image(tmp_path / "cut.jpg")
    with pytest.raises(convlens.ConvlensError, match="is a folder"):
        convlens.load_image(tmp_path)


def _huge_png(w: int, h: int) -> bytes:
    """A valid 1-bit black PNG of w x h pixels, written row by row (10000 x 10000: ~12 KB)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    z, row, parts = zlib.compressobj(9), b"\0" * (1 + (w + 7) // 8), []
    for _ in range(h):
        parts.append(z.compress(row))
    parts.append(z.flush())
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # PIL's, in the extraction
def test_huge_image_is_refused_from_its_header_before_decoding(tmp_path, monkeypatch):
    """10000 x 10000 (100 MP) is over the 64 MP limit: refused by load_image, check_image_header
    and the embedding extraction, and no pixel is decoded (issue 19.13)."""
    from PIL import ImageFile

    from convlens.embed.extract import decode_bytes
    data = _huge_png(10_000, 10_000)
    assert len(data) < 200_000
    (tmp_path / "huge.png").write_bytes(data)
    with pytest.warns(Image.DecompressionBombWarning), Image.open(tmp_path / "huge.png") as im:  # a real PNG
        assert im.size == (10_000, 10_000) and im.mode == "1"
    loads = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: loads.append(self.size) or real_load(self))
    msg = r"huge.png: 10000x10000 = 100 megapixels, over convlens's limit of 64 megapixels"
    with pytest.raises(convlens.ConvlensError, match=msg):
        convlens.load_image(tmp_path / "huge.png")
    with pytest.raises(convlens.ConvlensError, match=msg):
        imio.check_image_header(str(tmp_path / "huge.png"))
    f = io.BytesIO(data)
    with pytest.raises(convlens.ConvlensError, match="upload.png: 10000x10000"):  # a file object (the web)
        imio.check_image_header(f, "upload.png")
    assert f.tell() == 0  # left where it was, for the caller's own read
    r = decode_bytes(data, (224, 224))
    assert not r["ok"] and "10000x10000 = 100 megapixels" in r["reason"]
    assert loads == []
    assert imio.check_image_header(_huge_png(8000, 8000)) == (8000, 8000)  # at the limit: accepted


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    Image.new("L", (200, 200)).save(tmp_path / "big.png")
    monkeypatch.setattr(imio, "MAX_PIXELS", 10_000)  # 200x200 = 40,000 > limit
    with pytest.raises(convlens.ConvlensError, match="big.png: 200x200 = 0.04 megapixels, over convlens's limit"):
        convlens.load_image(tmp_path / "big.png")
    with pytest.raises(convlens.ConvlensError, match="<PIL image>: 200x200"):
        convlens.load_image(Image.new("L", (200, 200)))
    bomb = _huge_png(20_000, 10_000)  # 200 MP: over PIL's own limit too (its error, in our words)
    with pytest.raises(convlens.ConvlensError, match="image: Image size .200000000 pixels.*limit of 0.01 megapixels"):
        imio.check_image_header(bomb)


def test_fit_resizes_shorter_side_and_centre_crops():
    x = torch.zeros(1, 3, 100, 200)
    x[..., 50:150] = 1.0  # the centre square is white
    y = convlens.fit(x, 50)
    assert y.shape == (1, 3, 50, 50)
    assert y[..., 1:-1].min() > 0.99 and y[..., [0, -1]].min() > 0.8  # antialiasing blends 1 px at most


def test_samples_are_bundled_and_offline():
    assert {"chelsea", "coffee", "astronaut", "rocket", "china", "flower", "grace_hopper", "brick", "grass",
            "gravel"} <= set(convlens.sample_names())
    for name in convlens.sample_names():
        t = convlens.sample_image(name)
        assert t.ndim == 4 and t.shape[1] == 3 and 0 <= t.min() and t.max() <= 1 and t.std() > 0.02
    assert convlens.sample_image("brick")[0, 0].equal(convlens.sample_image("brick")[0, 1])  # grey texture
    with pytest.raises(convlens.ConvlensError, match="closest: chelsea"):
        convlens.sample_image("chelsae")


def test_save_png_is_atomic_and_deterministic(tmp_path):
    t = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    p1 = convlens.save_png(t, tmp_path / "a.png")
    p2 = convlens.save_png(t, tmp_path / "b.png")
    assert p1.read_bytes() == p2.read_bytes()
    assert p1.stat().st_mode & 0o044 == 0o044  # readable by others, like any ordinary output file
    assert torch.allclose(convlens.load_image(p1), t, atol=0.5 / 255 + 1e-6)
    before = p1.read_bytes()

    class Broken:
        def __array__(self, *a, **k):
            raise RuntimeError("disk on fire")
    with pytest.raises(Exception):
        convlens.save_png(Broken(), p1)
    assert p1.read_bytes() == before  # old file intact
    assert not list(tmp_path.glob("*.part")) and not list(tmp_path.glob(".*part"))
    with pytest.raises(convlens.ConvlensError, match="use a .png"):
        convlens.save_png(t, tmp_path / "x.jpg")
