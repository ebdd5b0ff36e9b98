"""What a lab technique's runner gets (``Ctx``) and the helpers runners share.

``Ctx`` carries the server state, the model, the input image, the parsed parameters and the job;
``ctx.progress`` raises ``Cancelled`` (a ``KeyboardInterrupt``) once the job is cancelled, which every
library loop treats like Ctrl-C, returning the best result so far; ``ctx.callback`` posts a preview
image at most every 0.25 s; ``ctx.save`` keeps a result image (a PNG under ``results/``).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..images import fit
from ..images.io import save_png, to_uint8
from ..render import grid
from .encode import png_bytes, webp_lossless_bytes
from .state import safe_child

PREVIEW_EVERY = 0.25  # seconds between preview images of an iterative job


class Cancelled(KeyboardInterrupt):
    """Raised inside a job's progress callback once the job is cancelled (library loops treat it as Ctrl-C)."""


class JobFeed:
    """A job as a library loop's ``progress`` and ``callback``: ``progress`` raises ``Cancelled`` once the job
    is cancelled (every loop treats it as Ctrl-C and keeps the best so far: the one cancel style of the
    explorer), ``callback`` posts a preview image at most every ``PREVIEW_EVERY`` s, and on the first and
    last step (the one preview throttle)."""

    def __init__(self, job):
        self.job = job
        self._last = 0.0

    def progress(self, done: int, total: int | None = None) -> None:
        self.job.progress(done, total)
        if self.job.cancelled():
            raise Cancelled()

    def callback(self, info) -> None:
        now = time.monotonic()
        if now - self._last >= PREVIEW_EVERY or info.step in (1, info.total):
            self._last = now
            img = info.image
            if img.shape[0] > 1:
                img = grid(list(img.clamp(0, 1)), [""] * img.shape[0], ncol=min(img.shape[0], 4),
                           tile=min(224, img.shape[-1]))
                img = np.asarray(img.convert("RGB"))
            else:
                img = img.clamp(0, 1)
            self.job.set_preview(png_bytes(img))


@dataclass
class Ctx:
    """What a technique's ``run`` gets: the server state, the model, the input, the parameters, the job."""

    state: Any
    model: Any
    image: torch.Tensor | None           # (1, 3, H, W) in [0, 1] at its own size (None if not needed)
    params: dict                         # the fixed parameters, parsed
    config: Any                          # the config dataclass instance (or None)
    job: Any
    key: str
    images: list = field(default_factory=list)
    feed: JobFeed = field(init=False)

    def __post_init__(self):
        self.feed = JobFeed(self.job)

    def fit(self) -> torch.Tensor:
        """The input fitted to the model (shorter side + centre crop), as the CLI does."""
        return fit(self.image, self.model.input_size)

    def progress(self, done: int, total: int | None = None) -> None:
        self.feed.progress(done, total)

    def callback(self, info) -> None:
        """Per-step hook of the optimization loop (``JobFeed.callback``)."""
        self.feed.callback(info)

    def save(self, image, label: str = "") -> dict:
        """A result image (tensor, array or PIL image); returns its URL entry. Its PNG under results/ is
        written once the job is done (``Job.defer``: the answer to a waiting client does not wait for PNG
        encoding; ``GET /api/results`` waits for the file); a client waiting on the job gets the pixels
        inline as lossless WebP (``Job.inline``)."""
        if isinstance(image, Image.Image):
            image = np.asarray(image.convert("RGB"))
        arr = to_uint8(image)
        name = f"{self.key}-{len(self.images)}.png"
        path = safe_child(self.state.folder("results"), name, what="result name")
        self.job.files.append(path)
        self.job.defer(lambda: save_png(arr, path))
        if self.job.inline is not None:
            self.job.inline.append(("image/webp", webp_lossless_bytes(arr)))
        entry = {"url": f"/api/results/{name}", "label": label, "width": int(arr.shape[1]), "height": int(arr.shape[0])}
        self.images.append(entry)
        return entry

    def stopped(self, stopped: str) -> str:
        """A loop's ``stopped`` as the page shows it: "cancelled" when the job was."""
        return "cancelled" if self.job.cancelled() or stopped in ("interrupted", "callback") else stopped


def jsonable(x):
    """Tensors, arrays and numbers as plain JSON (NaN/inf -> None)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(float(x)) else None
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (str, int, bool)) or x is None:
        return x
    return str(x)


def curve(history: torch.Tensor, n: int = 200) -> list:
    """The mean objective per step, at most ``n`` points (for the page's plot)."""
    if history is None or len(history) == 0:
        return []
    h = history.float().mean(dim=1) if history.ndim == 2 else history.float()
    idx = np.unique(np.linspace(0, len(h) - 1, min(n, len(h))).round().astype(int))
    return [[int(i) + 1, jsonable(float(h[i]))] for i in idx]


def target_value(model, value):
    """A class index or name from a form (None when empty); ConvlensError naming close classes."""
    if value in (None, ""):
        return None
    s = str(value).strip()
    t = int(s) if s.lstrip("-").isdigit() else s
    model.class_index(t)
    return t


def layer_value(model, name):
    """A layer name from a form (None when empty); ConvlensError naming close layers."""
    if name in (None, ""):
        return None
    model.module(name)
    return name
