"""The image lab's endpoints: uploads, top-5, the technique registry, running a technique, results.

    POST /api/images              multipart ``file`` -> {"id": 16 hex, ...}; stored as uploads/<id>.png
    GET  /api/images/{id}.png     an upload
    POST /api/predict             {"image": "chelsea" | id, "model": ...} -> top-5
    GET  /api/techniques          every technique with its form fields (from the CLI's config dataclasses)
    POST /api/run                 {"technique", "image", "params", "model", "wait"} -> {"job": id}; follow
                                  /api/jobs/{id}/events (or, with "wait", the finished job with its images inline)
    GET  /api/results/{name}      a result image of a finished job

Uploads are limited in bytes (413) and pixels (decompression bombs, 400), checked by content (the
image decoder, not the name), re-encoded as PNG under a content-hash name: no request string ever
becomes a path.
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import re

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from ...drivers.predict import predict as _predict
from ...errors import ConvlensError
from ...images import load_image
from ...images.io import save_png, to_uint8
from .. import techniques as tech
from ..jobs import QueueFull, job_key
from ..security import UPLOAD_OVERHEAD, size_text
from ..state import MAX_UPLOAD_BYTES, MAX_UPLOAD_PIXELS, AppState, app_state, limits, safe_child  # noqa: F401

router = APIRouter(prefix="/api", tags=["lab"])

FORMATS = {"PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF"}
_ID = re.compile(r"^[0-9a-f]{16}$")
_RESULT = re.compile(r"^[0-9a-f]{24}-[0-9]{1,3}\.png$")
MAX_WAIT = 2.0                      # seconds POST /api/run may hold a request for a short job
MAX_INLINE = 4 << 20                # bytes of PNG a finished job's answer may carry inline


def decode_upload(data: bytes, max_pixels: int):
    """Bytes -> (1, 3, H, W) tensor, if they are an image of an accepted format within ``max_pixels``."""
    from PIL import Image
    try:
        with Image.open(io.BytesIO(data)) as probe:   # reads the header only: no decoding yet
            fmt, (w, h) = probe.format, probe.size
    except Image.DecompressionBombError:              # PIL refuses giant headers itself
        raise ConvlensError(f"the image has far more than {max_pixels / 1e6:.0f} megapixels (possible decompression "
                            "bomb); downscale it first") from None
    except Exception:  # noqa: BLE001 - anything PIL cannot identify is not an image
        raise ConvlensError("the upload is not an image; send a PNG, JPEG, GIF, BMP, WebP or TIFF file") from None
    if fmt not in FORMATS:
        raise ConvlensError(f"image format {fmt} is not accepted; send PNG, JPEG, GIF, BMP, WebP or TIFF")
    if w * h > max_pixels:
        raise ConvlensError(f"the image is {w}x{h} = {w * h / 1e6:.0f} megapixels, above the limit of "
                            f"{max_pixels / 1e6:.0f} (possible decompression bomb); downscale it first")
    old = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = max_pixels
        img = Image.open(io.BytesIO(data))
        img.load()
    except Exception as e:  # noqa: BLE001 - truncated or corrupt files
        raise ConvlensError(f"the upload could not be decoded as {fmt} ({type(e).__name__}); send a valid image") from None
    finally:
        Image.MAX_IMAGE_PIXELS = old
    return load_image(img)


class _TooLarge(Exception):
    pass


async def read_upload(request: Request, max_bytes: int) -> bytes:
    """The bytes of the multipart field ``file``, read as the body streams in: the body is counted
    while it arrives and refused (413) the moment it passes ``max_bytes`` plus the multipart framing;
    the part is held in memory (never a temporary file), so an aborted upload leaves nothing behind.
    (A declared Content-Length above the limit was already refused before reading: ``security.Guard``.)"""
    from starlette.datastructures import UploadFile as StarletteUpload
    from starlette.formparsers import MultiPartException, MultiPartParser

    budget = max_bytes + UPLOAD_OVERHEAD

    async def counted():
        n = 0
        async for chunk in request.stream():
            n += len(chunk)
            if n > budget:
                raise _TooLarge
            yield chunk
    parser = MultiPartParser(request.headers, counted(), max_files=1, max_fields=8)
    parser.spool_max_size = budget + 1          # in memory: an upload never touches the disk
    try:
        form = await parser.parse()
    except _TooLarge:
        raise HTTPException(413, f"upload too large: at most {size_text(max_bytes)}") from None
    except (MultiPartException, KeyError) as e:
        raise ConvlensError(f"the upload is not valid multipart/form-data ({e}); send the image in the field "
                            "'file'") from None
    try:
        f = form.get("file")
        if not isinstance(f, StarletteUpload):
            raise ConvlensError("the upload has no file; send the image in the multipart field 'file'")
        return await f.read()
    finally:
        await form.close()


_UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary", "description": "an image file"}}}}}}}


@router.post("/images", openapi_extra=_UPLOAD_BODY)
async def upload_image(request: Request, state: AppState = Depends(app_state)):
    """Upload an image (multipart field ``file``). Returns its id (16 hex digits, a hash of the pixels)
    for every other endpoint's ``image`` parameter. 413 if too many bytes (refused from the declared
    length before reading, or the moment the streamed body passes the limit), 400 if not an image or
    too many pixels."""
    max_bytes, max_pixels = limits(state)
    data = await read_upload(request, max_bytes)
    if len(data) > max_bytes:
        raise HTTPException(413, f"upload too large: at most {size_text(max_bytes)}")
    if not data:
        raise ConvlensError("the upload is empty; send an image file in the multipart field 'file'")
    from starlette.concurrency import run_in_threadpool

    img = await run_in_threadpool(decode_upload, data, max_pixels)
    arr = to_uint8(img)
    image_id = hashlib.sha256(arr.tobytes() + repr(arr.shape).encode()).hexdigest()[:16]
    path = safe_child(state.folder("uploads"), f"{image_id}.png", what="image id")
    if not path.exists():
        await run_in_threadpool(save_png, arr, path)
    return {"id": image_id, "width": int(arr.shape[1]), "height": int(arr.shape[0]),
            "url": f"/api/images/{image_id}.png"}


@router.get("/images/{image_id}.png", response_class=FileResponse)
def upload_png(image_id: str, state: AppState = Depends(app_state)):
    """An uploaded image as stored (PNG)."""
    if not _ID.match(image_id):
        raise HTTPException(400, "an image id is 16 hex digits, as returned by POST /api/images")
    path = safe_child(state.folder("uploads"), f"{image_id}.png", what="image id")
    if not path.exists():
        raise HTTPException(404, f"no upload '{image_id}'; upload it again with POST /api/images")
    return FileResponse(path, media_type="image/png")


class PredictRequest(BaseModel):
    image: str = Field(..., max_length=100, description="a sample name (chelsea) or an upload id")
    model: str | None = Field(None, max_length=100, description="model name (default: the server's)")
    topk: int = Field(5, ge=1, le=20, description="how many classes")


@router.post("/predict")
def predict(req: PredictRequest, state: AppState = Depends(app_state)):
    """The top classes of an image with their softmax probabilities. One forward pass, run in the
    request's thread with a 1-thread torch budget, so it answers even while long jobs hold the workers."""
    model = state.model(req.model)
    image = state.image(req.image)
    preds = _predict(model, image, topk=req.topk, threads=1, backend="torch")[0]
    return {"image": req.image, "model": state.check_model(req.model),
            "top": [{"index": p.index, "label": p.label, "prob": p.prob} for p in preds]}


@router.get("/techniques")
def list_techniques():
    """Every technique of the lab: name, family, title, whether it streams previews, whether it needs an
    input image, and its form fields (name, kind, default, help, choices), generated from the same
    config dataclasses as the CLI's flags."""
    return [t.schema() for t in tech.techniques().values()]


class RunRequest(BaseModel):
    technique: str = Field(..., max_length=60, description="a name from GET /api/techniques")
    image: str | None = Field("chelsea", max_length=100, description="a sample name or an upload id")
    params: dict = Field(default_factory=dict, description="form values; unknown names are refused")
    model: str | None = Field(None, max_length=100, description="model name (default: the server's)")
    wait: float = Field(0.0, ge=0.0, le=MAX_WAIT, description=(
        "seconds to wait for the job to finish: if it does, the answer is the finished job with its result "
        "images inline (data URLs), which saves the event stream and the image fetches of a short job"))


def inline_result(state: AppState, job) -> dict | None:
    """A finished job's result with each image inline (``data``: a data URL) beside its ``url``: the bytes the
    job kept for a waiting client (lossless WebP), else its PNG files; up to ``MAX_INLINE`` bytes in all
    (larger results keep only their URLs)."""
    result = job.result
    if not result or not result.get("images"):
        return result
    images = result["images"]
    blobs = job.inline if job.inline is not None and len(job.inline) == len(images) else None
    if blobs is None:                   # a cached job run without a waiting client: its files
        state.jobs.wait_files(job.key)
        blobs = []
        for im in images:
            name = im["url"].rsplit("/", 1)[-1]
            path = safe_child(state.folder("results"), name, what="result name") if _RESULT.match(name) else None
            if path is None or not path.exists():
                return result
            blobs.append(("image/png", path.read_bytes()))
    if sum(len(b) for _, b in blobs) > MAX_INLINE:
        return result
    return {**result, "images": [{**im, "data": f"data:{mime};base64," + base64.b64encode(b).decode("ascii")}
                                 for im, (mime, b) in zip(images, blobs)]}


@router.post("/run")
def run_technique(req: RunRequest, state: AppState = Depends(app_state)):
    """Start a technique as a job. Returns ``{"job": id, "cached": bool}``; follow
    ``/api/jobs/{id}/events`` (server-sent events) for progress and previews; the finished job's
    ``result`` holds ``images`` (URLs) and ``figures`` (raw numbers). A repeated request with the same
    model, technique, parameters and input is served from the cache at once.

    With ``wait`` (seconds, at most 2), the answer comes when the job finishes, if it finishes within
    ``wait``: then it is the finished job (as ``GET /api/jobs/{id}``, plus ``job`` and ``cached``) and each
    result image also carries its pixels inline as ``data`` (a data URL: lossless WebP, or the PNG of a
    cached result). A job still running after ``wait`` is answered
    as without it, and the client follows its events."""
    t = tech.get(req.technique)
    fixed, cfg = t.parse(req.params)
    model_name = state.check_model(req.model)
    if fixed.get("model"):      # a technique's own network (style transfer): also only an allowed one
        state.check_model(fixed["model"])
    model = state.model(model_name)
    t.check(model, fixed, state)
    image = state.image(req.image) if t.needs_image else None
    key = job_key(model_name, state.weights, t.name, fixed, dataclasses.asdict(cfg) if cfg else None,
                  req.image if t.needs_image else None)

    def work(job):
        ctx = tech.Ctx(state=state, model=model, image=image, params=fixed, config=cfg, job=job, key=key)
        out = t.run(ctx)
        return {"technique": t.name, "family": t.family, "title": t.title, "images": ctx.images,
                "figures": tech.jsonable(out.get("figures", {}))}
    cached = state.jobs.cached(key) is not None
    try:
        job = state.jobs.submit(key, work, label=f"{t.name} on {req.image if t.needs_image else model_name}",
                                inline=bool(req.wait))
    except QueueFull as e:
        raise HTTPException(503, str(e)) from None
    if req.wait and job.wait_finished(req.wait):
        return {**job.as_dict(), "job": job.id, "cached": cached, "result": inline_result(state, job)}
    return {"job": job.id, "status": job.status, "cached": cached}


@router.get("/results/{name}", response_class=FileResponse)
def result_png(name: str, state: AppState = Depends(app_state)):
    """A result image of a job (the URLs in a finished job's ``result.images``)."""
    if not _RESULT.match(name):
        raise HTTPException(400, "a result name looks like <24 hex>-<n>.png, as listed in a job's result")
    path = safe_child(state.folder("results"), name, what="result name")
    state.jobs.wait_files(name[:24])    # a job just done writes its PNGs after answering its waiters
    if not path.exists():
        raise HTTPException(404, f"no result '{name}'; run the technique again")
    return FileResponse(path, media_type="image/png")
