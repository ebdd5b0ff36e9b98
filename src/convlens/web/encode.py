"""Encoders the routes and the lab's jobs share: tensors and arrays as PNG bytes and responses."""
from __future__ import annotations

import io

from fastapi.responses import Response
from ..images.io import to_uint8


def png_bytes(image) -> bytes:
    """A (1, 3, H, W) tensor in [0, 1] or an (H, W, 3) uint8 array as PNG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buf, format="PNG")
    return buf.getvalue()


def webp_lossless_bytes(image) -> bytes:
    """The same pixels as lossless WebP: a quarter of PNG's encoding time at its fastest setting (7.6 ms
    against 34 ms for three 224 px results, measured) and about two thirds of its size; for results sent
    inline to the page, where every millisecond before the result is on screen counts."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buf, format="WEBP", lossless=True, method=0, quality=0)
    return buf.getvalue()


def png_response(image, cache: bool = True) -> Response:
    headers = {"Cache-Control": "max-age=3600"} if cache else {}
    return Response(png_bytes(image), media_type="image/png", headers=headers)
