"""Decoding one image file the way a store's images are decoded (read, hash, JPEG draft decode,
resize the shorter side, centre crop, thumbnail), and the pooling of a layer's output to a vector.

Extraction (``extract.py``) and image queries (``search.py``) both use these, so a query image is
embedded exactly as the store's files were.
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import torch

from ..images.io import check_image_header, cover_box, from_pil, to_uint8

THUMB = 96


def pool(act: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) -> global average over h, w; (N, D) unchanged; anything else flattened."""
    if act.ndim == 4:
        return act.float().mean((2, 3))
    return act.float().flatten(1)


# --- decoding (runs in decoding threads or worker processes) ------------------------------------

def thumb_bytes(rgb: np.ndarray, side: int) -> bytes:
    """A ``side`` x ``side`` JPEG (quality 88) of a square crop: OpenCV's area resize and encoder
    (0.16 ms against Pillow's 0.28 for 224 -> 96 px)."""
    import cv2
    small = cv2.resize(rgb, (side, side), interpolation=cv2.INTER_AREA) if max(rgb.shape[:2]) > side else rgb
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(small[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 88])
    if not ok:
        raise ValueError("the thumbnail could not be encoded")
    return buf.tobytes()


def decode_file(path: str, size: tuple[int, int], thumb: int = THUMB, draft: bool = True) -> dict:
    """Read, hash, decode (JPEG draft mode), resize the shorter side and centre-crop one file.

    ``draft``: JPEGs are decoded by libjpeg's DCT-domain downscaling to the smallest of 1/1, 1/2,
    1/4, 1/8 of their size that still covers ``size`` (``PIL.Image.draft``), then resized as usual:
    about 2x cheaper for photos twice the input size or more, and slightly different pixels from a
    full decode (docs/embeddings.md, "Decoding"); ``draft=False`` decodes every pixel.
    Returns {"ok": True, "rgb": uint8 (H, W, 3), "hash", "width", "height", "thumbnail"} or
    {"ok": False, "reason": ...}; never raises for a bad file.
    """
    try:
        data = Path(path).read_bytes()
    except Exception as e:  # noqa: BLE001 - unreadable files go to the skip list
        return {"ok": False, "reason": f"{type(e).__name__}: {str(e)[:100]}"}
    return decode_bytes(data, size, thumb, draft)


def decode_bytes(data: bytes, size: tuple[int, int], thumb: int = THUMB, draft: bool = True) -> dict:
    """``decode_file`` on a file's bytes (any file system: the Ray engine reads URIs with pyarrow / fsspec)."""
    from PIL import Image, ImageOps
    try:
        h = hashlib.sha1(data).hexdigest()
        im = Image.open(io.BytesIO(data))
        check_image_header(im)  # a too-large image is refused from its header, before decoding
        W0, H0 = im.size
        th, tw = size
        if draft and im.format == "JPEG" and im.mode in ("RGB", "L"):
            rgb = fast_jpeg(data, im, size)
            if rgb is not None:
                return {"ok": True, "rgb": rgb, "hash": h, "width": W0, "height": H0,
                        "thumbnail": thumb_bytes(rgb, thumb)}
        if draft and im.format == "JPEG":
            im.draft("RGB", (max(th, tw), max(th, tw)))  # DCT-domain downscale: decode only what is needed
        try:
            im = ImageOps.exif_transpose(im)
        except Exception:  # noqa: BLE001 - a broken EXIF block does not make the image unreadable
            pass
        if getattr(im, "n_frames", 1) > 1:
            im.seek(0)
        if im.mode not in ("RGB", "L"):
            # alpha, 16-bit, palette...: the foundation's rules
            im = Image.fromarray(to_uint8(from_pil(im, (1.0, 1.0, 1.0), "<image>")))
        im = im.convert("RGB")
        nh, nw, top, left = cover_box(im.height, im.width, th, tw)
        im = im.resize((nw, nh), Image.BILINEAR)  # PIL's bilinear is antialiased when shrinking
        rgb = np.asarray(im.crop((left, top, left + tw, top + th)))
        return {"ok": True, "rgb": rgb, "hash": h, "width": W0, "height": H0, "thumbnail": thumb_bytes(rgb, thumb)}
    except Exception as e:  # noqa: BLE001 - unreadable files go to the skip list
        import re
        msg = re.sub(r" at 0x[0-9a-fA-F]+", "", str(e))  # no memory addresses: the same file gives the same reason
        return {"ok": False, "reason": f"{type(e).__name__}: {msg[:100]}"}


def fast_jpeg(data: bytes, im, size: tuple[int, int]) -> np.ndarray | None:
    """The draft-mode path for plain RGB / grey JPEGs without an EXIF rotation (a 640x480 file:
    1.39 ms with hash and thumbnail against 1.74 ms on Pillow's path, docs/embeddings.md): OpenCV's
    libjpeg-turbo decode with the same DCT-domain scale as ``PIL.Image.draft`` (the same pixels:
    measured equal), then torch's uint8 antialiased bilinear resize (Pillow's bilinear to one grey
    level, 3x faster) and the centre crop. None when the decode fails: Pillow's path then runs."""
    import cv2
    try:
        if im.getexif().get(0x0112, 1) not in (0, 1):  # rotated by EXIF: Pillow's exif_transpose path
            return None
    except Exception:  # noqa: BLE001
        return None
    th, tw = size
    need = max(th, tw)
    scale = min(im.size[0] // need, im.size[1] // need)  # PIL.Image.draft's rule
    f = next((d for d in (8, 4, 2) if scale >= d), 1)
    flag = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}[f] | cv2.IMREAD_IGNORE_ORIENTATION
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if bgr is None or bgr.ndim != 3:
        return None
    x = torch.from_numpy(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).permute(2, 0, 1)[None]  # (1, 3, H, W) channels_last
    nh, nw, top, left = cover_box(*x.shape[-2:], th, tw)
    if (nh, nw) != tuple(x.shape[-2:]):
        x = torch.nn.functional.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
    return np.ascontiguousarray(x[0, :, top:top + th, left:left + tw].permute(1, 2, 0).numpy())


_thumb_bytes, _fast_jpeg = thumb_bytes, fast_jpeg  # the old private names
