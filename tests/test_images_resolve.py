"""images.resolve_images: the one reader of "which images" (samples:N, digits:N, labelled sets, a
folder, a file, a sample name, a URI, a list of these), every form against what it names and every
bad input refused in one line naming the forms; the extraction and image_from_arg read through it."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import convlens
from convlens.errors import ConvlensError
from convlens.images import image_from_arg, resolve_images, sample_dataset, sample_image
from convlens.images.resolve import FORMS, sample_name
from helpers import tiny_convnet


def _png(path, value: int):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((12, 10, 3), value, np.uint8)).save(path, format="JPEG" if path.suffix == ".jpg" else "PNG")
    return path


def test_samples_and_digits_name_the_bundled_sets():
    r = resolve_images("samples:5", seed=3, size=32)
    ref = sample_dataset(5, size=32, seed=3)
    assert r.kind == "samples" and len(r.source) == 5 and r.source.names == ref.names
    assert all(torch.equal(a, b) for a, b in zip(r.source, ref))
    assert len(resolve_images("samples", n=7).source) == 7  # no :N -> n
    d = resolve_images("digits:12")
    from sklearn.datasets import load_digits
    assert d.kind == "digits" and d.source.shape == (12, 3, 64, 64)
    assert d.labels == [str(t) for t in load_digits().target[:12]]
    assert float(d.source.min()) >= 0 and float(d.source.max()) <= 1


def test_folders_files_names_uris_and_lists(tmp_path, monkeypatch):
    a = _png(tmp_path / "photos" / "cats" / "a.png", 10)
    b = _png(tmp_path / "photos" / "b.jpg", 200)
    (tmp_path / "photos" / "notes.txt").write_text("not an image")
    f = resolve_images(tmp_path / "photos")
    assert f.kind == "folder" and f.source == tmp_path / "photos"
    assert f.files() == [b, a]  # recursive, sorted, by suffix ("b.jpg" < "cats/")
    one = resolve_images(str(a))
    assert one.kind == "files" and one.source == [a] and one.files() == [a]
    s = resolve_images("chelsea")
    assert s.kind == "images" and len(s.source) == 1 and torch.equal(s.source[0], sample_image("chelsea"))
    assert torch.equal(resolve_images("sample:coffee").source[0], sample_image("coffee"))
    assert resolve_images("s3://bucket/photos").kind == "uri"
    both = resolve_images([tmp_path / "photos", str(a)])
    assert both.kind == "files" and both.source == [b, a, a]
    mixed = resolve_images([str(a), "chelsea", "samples:2"])
    assert mixed.kind == "images" and len(mixed.source) == 4 and mixed.source[0] == a
    assert torch.equal(mixed.source[1], sample_image("chelsea"))
    # an existing file named like a sample wins over the sample, as in image_from_arg (not with sample:)
    monkeypatch.chdir(tmp_path)
    _png(tmp_path / "chelsea", 77)
    assert resolve_images("chelsea").kind == "files" and sample_name("chelsea") is None
    assert sample_name("sample:chelsea") == "chelsea"
    assert float(image_from_arg("chelsea").mean()) == pytest.approx(77 / 255, abs=1e-6)


def test_labelled_sets_resolve_to_their_folders():
    g = resolve_images("gcompris")
    assert g.kind == "folder" and g.source.is_dir()
    assert len(g.files()) == len(convlens.labelled_photos("gcompris").paths)


@pytest.mark.parametrize("spec, says", [
    ("samples:x", "'samples:x': the number of images must be an integer >= 1 (e.g. samples:300), got 'x'"),
    ("samples:0", "must be an integer >= 1"),
    ("digits:-3", "'digits:-3': the number of images must be an integer >= 1 (e.g. digits:300)"),
    ("no/such/dir", "'no/such/dir' is not a folder, an image file or a sample name; pass " + FORMS),
    ("chelse", "(did you mean the sample chelsea?)"),
    ([], "an empty list of image sources"),
    (3, "cannot read images from a int"),
    ("  ", "an empty image source"),
    (["chelsea", "nope.png"], "'nope.png' is not a folder"),
])
def test_bad_specs_are_one_line_naming_the_forms(spec, says):
    with pytest.raises(ConvlensError) as e:
        resolve_images(spec)
    msg = str(e.value)
    assert says in msg and "\n" not in msg
    if "number of images" not in msg:
        assert "samples[:N]" in msg


def test_extraction_reads_specs_through_it(tmp_path):
    """embed_images("digits:6") embeds the digits with their labels; a missing folder is the same
    one line as the CLI's; a single file is a list of one path (recorded as paths, not a folder)."""
    m = convlens.Model.wrap(tiny_convnet(), input_size=16)
    st = convlens.embed_images(m, "digits:6", out=tmp_path / "d", workers=0, threads=1)
    assert len(st) == 6 and st.labels() == ["0", "1", "2", "3", "4", "5"]
    with pytest.raises(ConvlensError, match="is not a folder, an image file or a sample name"):
        convlens.embed_images(m, tmp_path / "missing", out=tmp_path / "x")
    one = _png(tmp_path / "one.png", 128)
    s1 = convlens.embed_images(m, str(one), out=tmp_path / "f", workers=0, threads=1)
    assert s1.column("path") == [str(one)] and s1.manifest["sources"] == [{"kind": "paths"}]
    _png(tmp_path / "f2src" / "q.png", 5)
    folder = convlens.embed_images(m, str(tmp_path / "f2src"), out=tmp_path / "f2", workers=0, threads=1)
    assert folder.manifest["sources"] == [{"kind": "folder", "path": str(tmp_path / "f2src")}]
    with pytest.raises(ConvlensError, match="URI is read by the Ray engine"):
        convlens.embed_images(m, "s3://bucket/photos", out=tmp_path / "u")


def test_tensor_fits_every_image_in_order(tmp_path):
    """``ImageSet.tensor``: what facets and robustness take, each image fitted like ``convlens.fit``."""
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(40, 60), (50, 30), (64, 64)]):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    paths = sorted(tmp_path.glob("*.png"))
    want = torch.cat([convlens.fit(convlens.load_image(p), 24) for p in paths])
    assert torch.equal(resolve_images(tmp_path).tensor(24), want)
    assert torch.equal(resolve_images(tmp_path).tensor(24, limit=2), want[:2])
    s = resolve_images("samples:3", size=32)
    assert torch.equal(s.tensor(32), torch.cat(list(sample_dataset(3, size=32))))
