"""Image input and output at the API edge: float32 (1, 3, H, W) in [0, 1] in, atomic PNGs out."""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from ..errors import ConvlensError
from ..files import atomic_write

# The largest image convlens decodes: 64 megapixels (8000 x 8000; 0.77 GB as float32 RGB). Checked
# from the header before any pixel is decoded (check_image_header), wherever images enter: load_image,
# the embedding extraction, the explorer's uploads. Raise it (convlens.images.io.MAX_PIXELS = ...)
# for bigger scans.
MAX_PIXELS = 64_000_000
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"}


def load_image(source, size: int | tuple | None = None, background=(1.0, 1.0, 1.0)) -> torch.Tensor:
    """Any image -> float32 tensor (1, 3, H, W) in [0, 1].

    Args:
        source: a path (JPEG, PNG, WebP, BMP, TIFF, GIF...), a ``PIL.Image``, a numpy array
            (H, W), (H, W, 3|4) of uint8, uint16 or floats in [0, 1], or a tensor (3, H, W) /
            (1, 3, H, W) already in [0, 1].
        size: optional; an int resizes the shorter side then centre-crops to a square,
            (H, W) does the same to that shape (see ``fit``).
        background: RGB in [0, 1] under transparent pixels (RGBA, LA, palette transparency).
    Handles greyscale, palette, 16-bit, CMYK and EXIF orientation; refuses decompression bombs
    and unreadable files with an error naming the file.
    """
    if isinstance(source, torch.Tensor):
        t = source.detach().float()
        if t.ndim == 3:
            t = t[None]
        if t.ndim != 4 or t.shape[1] not in (1, 3):
            raise ConvlensError(f"image tensor must be (3, H, W) or (N, 3, H, W), got {tuple(source.shape)}")
        t = t.expand(-1, 3, -1, -1) if t.shape[1] == 1 else t
    elif isinstance(source, np.ndarray):
        t = _from_array(source)
    elif isinstance(source, Image.Image):
        t = from_pil(source, background, name="<PIL image>")
    elif isinstance(source, (str, os.PathLike)):
        t = from_pil(_open(Path(source)), background, name=str(source))
    else:
        raise ConvlensError(f"cannot read an image from {type(source).__name__}; pass a path, PIL image, array or tensor")
    t = t.clamp(0, 1).contiguous()
    return fit(t, size) if size is not None else t


def _too_large(name: str, detail: str) -> ConvlensError:
    return ConvlensError(f"{name}: {detail}, over convlens's limit of {MAX_PIXELS / 1e6:g} megapixels "
                         "(convlens.images.io.MAX_PIXELS); downscale it first")


def _open_lazily(fp, name: str) -> Image.Image:
    """``Image.open`` (reads the header only), PIL's own bomb error turned into ours."""
    try:
        with warnings.catch_warnings():  # PIL warns above its own limit; ours is lower and refuses
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(fp)
    except Image.DecompressionBombError as e:
        raise _too_large(name, str(e).split(",")[0]) from None


def check_image_header(source, name: str | None = None) -> tuple[int, int]:
    """(width, height) from an image's header, refusing more than ``MAX_PIXELS`` before decoding.

    Args:
        source: a path, bytes, a binary file object (its position is restored), or a PIL image
            opened but not loaded (``Image.open`` reads only the header).
        name: how the error names the image (default: the path, else "image").
    Raises ``ConvlensError`` (one line: the size, the limit, the fix) for an image too large, and
    for a file that is missing or not an image. The web upload and the embedding extraction call
    it before decoding; ``load_image`` does too.
    """
    if isinstance(source, (str, os.PathLike)):
        name = name or str(source)
        path = Path(source)
        if not path.exists():
            raise ConvlensError(f"image file not found: {path}")
        if path.is_dir():
            raise ConvlensError(f"{path} is a folder; pass an image file")
    name = name or "image"
    if isinstance(source, Image.Image):
        w, h = source.size
    else:
        fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
        pos = fp.tell() if hasattr(fp, "tell") else None
        try:
            with _open_lazily(fp, name) as im:
                w, h = im.size
        except ConvlensError:
            raise
        except Exception as e:  # noqa: BLE001 - PIL raises several types for non-image files
            raise ConvlensError(f"{name}: not a readable image ({type(e).__name__}: {str(e)[:80]})") from None
        finally:
            if pos is not None:
                fp.seek(pos)
    if w * h > MAX_PIXELS:
        raise _too_large(name, f"{w}x{h} = {w * h / 1e6:.4g} megapixels")
    return w, h


def _open(path: Path) -> Image.Image:
    check_image_header(path)  # missing, a folder, not an image, too large: refused before decoding
    try:
        img = _open_lazily(path, str(path))
        img.load()
        return img
    except ConvlensError:
        raise
    except Exception as e:  # PIL raises several types for truncated / non-image files
        raise ConvlensError(f"{path}: not a readable image ({type(e).__name__}: {str(e)[:80]})") from None


def from_pil(img: Image.Image, background, name: str) -> torch.Tensor:
    check_image_header(img, name)
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:
        pass  # a broken EXIF block should not make a readable image unreadable
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "I;16N"):
        arr = np.asarray(img).astype(np.float64)
        scale = 65535.0 if arr.max() > 255 or img.mode.startswith("I;16") else 255.0
        return _from_array((arr / scale).astype(np.float32))
    if img.mode == "F":
        return _from_array(np.asarray(img).astype(np.float32))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "RGB" and "transparency" in img.info):
        rgba = np.asarray(img.convert("RGBA")).astype(np.float32) / 255.0
        a = rgba[..., 3:]
        rgb = rgba[..., :3] * a + np.asarray(background, np.float32) * (1 - a)
        return _from_array(rgb)
    if img.mode != "RGB":
        img = img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB...
    return _from_array(np.asarray(img))


_from_pil = from_pil  # the old private name


def _from_array(arr: np.ndarray) -> torch.Tensor:
    a = np.asarray(arr)
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    elif a.dtype == np.uint16:
        a = a.astype(np.float32) / 65535.0
    elif a.dtype == bool:
        a = a.astype(np.float32)
    else:
        a = a.astype(np.float32)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise ConvlensError(f"image array must be (H, W), (H, W, 3) or (H, W, 4), got {a.shape}")
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    if a.shape[2] == 4:
        a = a[..., :3] * a[..., 3:] + (1 - a[..., 3:])
    if not np.isfinite(a).all():
        raise ConvlensError("image array contains NaN or infinite values")
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None].float()


def resize_shorter(images: torch.Tensor, side: int) -> torch.Tensor:
    """Resize (antialiased bilinear) so the shorter side is ``side``, keeping the whole frame."""
    ih, iw = images.shape[-2:]
    s = side / min(ih, iw)
    size = (max(1, round(ih * s)), max(1, round(iw * s)))
    if size == (ih, iw):
        return images
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def cover_box(ih: int, iw: int, h: int, w: int) -> tuple[int, int, int, int]:
    """(nh, nw, top, left): the size an ih x iw image is resized to so that it covers h x w (the
    shorter side scaled to fit), and the corner of the centred h x w crop. ``fit`` and the
    extraction's decoders share it, so every path crops the same box."""
    s = max(h / ih, w / iw)
    nh, nw = max(h, round(ih * s)), max(w, round(iw * s))
    return nh, nw, (nh - h) // 2, (nw - w) // 2


def fit(images: torch.Tensor, size) -> torch.Tensor:
    """Resize the shorter side to ``size`` and centre-crop (torchvision's eval transform, antialiased).

    ``size`` is an int (square) or (H, W); images already of that shape are returned unchanged.
    """
    if size is None:
        return images
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if images.shape[-2:] == (h, w):
        return images
    nh, nw, top, left = cover_box(*images.shape[-2:], h, w)
    out = F.interpolate(images, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
    return out[..., top:top + h, left:left + w].clamp(0, 1)


def to_uint8(image) -> np.ndarray:
    """(3, H, W) / (1, 3, H, W) tensor in [0, 1], or an HxW(x3) array -> uint8 HxWx3 (or HxW)."""
    if isinstance(image, torch.Tensor):
        t = image.detach().float().cpu()
        if t.ndim == 4:
            if t.shape[0] != 1:
                raise ConvlensError(f"save one image at a time, got a batch of {t.shape[0]}")
            t = t[0]
        a = t.permute(1, 2, 0).numpy() if t.ndim == 3 else t.numpy()
        if a.ndim == 3 and a.shape[2] == 1:
            a = a[..., 0]
    else:
        a = np.asarray(image)
    if a.dtype != np.uint8:
        a = (np.clip(a.astype(np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)
    return a


def save_png(image, path, **pnginfo) -> Path:
    """Write a PNG atomically (temp file + rename: never a half-written file). Returns the path."""
    path = Path(path)
    img = image if isinstance(image, Image.Image) else Image.fromarray(to_uint8(image))
    if path.suffix.lower() not in (".png", ""):
        raise ConvlensError(f"{path}: convlens writes PNG; use a .png file name")
    path = path.with_suffix(".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    img.save(buf, format="PNG")  # no timestamps: the same pixels give the same bytes
    write_atomic(path, buf.getvalue())
    return path


def write_atomic(path, data: bytes | str) -> Path:
    """Write bytes/text to ``path`` atomically and durably (``convlens.files.atomic_write``)."""
    return atomic_write(path, data)


def list_images(folder) -> list[Path]:
    """Image files directly inside ``folder`` (recursively), sorted, by suffix."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConvlensError(f"{folder} is not a folder of images")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ConvlensError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found in {folder}")
    return files


def resize_long(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """Resize (antialiased) so the longer side is ``size``; None keeps it."""
    if size is None:
        return x
    h, w = x.shape[-2:]
    s = size / max(h, w)
    hw = (max(8, round(h * s)), max(8, round(w * s)))
    if hw == (h, w):
        return x
    return F.interpolate(x, size=hw, mode="bilinear", align_corners=False, antialias=s < 1).clamp(0, 1)
