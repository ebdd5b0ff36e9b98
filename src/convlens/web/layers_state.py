"""What the layer browser's routes share: the request parameters, the checks of a model, layer,
channel and image source, the cached activations of a layer, and the view's PNG cache.

Request names never reach the filesystem except through ``safe_child`` (image folders under
``<data_dir>/images/``). Layers are looked up in the model, channels range-checked, images resolved
by ``state.image``.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from fastapi import Query
from fastapi.responses import Response

from ..embed.store import EmbeddingStore
from ..errors import ConvlensError, closest
from ..images import fit, list_images
from ..inspect import sample_dataset
from ..inspect.stages import browsable
from ..probe import Probe
from .state import LRU, AppState, safe_child, safe_name

IMAGE_FOLDERS_ENV = "CONVLENS_IMAGES"  # a folder of the user's images, named by its basename as a patch source
MAX_SAMPLES = 2000

ModelQ = Query(None, description="model name; must be the server's model (default)")
ImageQ = Query("chelsea", description="a bundled sample name or an upload id (POST /api/images)")
SourceQ = Query("samples", description="'samples' (the bundled sample set) or the name of an image folder "
                "(GET /api/layers/sources)")
NQ = Query(200, ge=1, le=MAX_SAMPLES, description="images of the sample set (folders: at most this many files)")
KQ = Query(9, ge=1, le=32, description="patches per channel")


# --- per-server state of this view ---------------------------------------------------------------

def view_cache(state: AppState) -> LRU:
    """Maps and PNG bytes of the layer browser (model, layer, channel, image, ...)."""
    return state.cache("layers", 96)


# --- layers -------------------------------------------------------------------------------------

def browsable_layer(model, layer: str):
    """The LayerInfo of a browsable layer, or a ConvlensError naming the fix."""
    names = {li.name: li for li in browsable(model)}
    if layer not in names:
        all_names = {li.name for li in model.layers()}
        if layer in all_names:
            shape = model.layer_info(layer).shape
            raise ConvlensError(f"layer '{layer}' has output shape {tuple(shape)}, not (C, H, W); pick a conv "
                                f"layer (closest: {closest(layer, list(names))}; all at GET /api/layers)")
        raise ConvlensError(f"unknown layer '{layer[:80]}'; closest: {closest(layer, list(names))} "
                            "(all layers at GET /api/layers)")
    return names[layer]


def check_channel(li, channel: int) -> int:
    """``channel`` if the layer has it, else a ConvlensError naming the range."""
    if not 0 <= channel < li.shape[0]:
        raise ConvlensError(f"channel {channel} out of range 0..{li.shape[0] - 1} for layer {li.name}")
    return channel


# --- images and sources -------------------------------------------------------------------------

def fit_image(state: AppState, model, image: str) -> torch.Tensor:
    """The image a request names, resized and centre-cropped to the model's input."""
    return fit(state.image(image), model.input_size)


def image_folders(state: AppState) -> dict[str, Path]:
    """Named folders of the user's images: ``<data_dir>/images/<name>`` and ``$CONVLENS_IMAGES``."""
    out = {}
    root = state.data_dir / "images"
    if root.is_dir():
        for p in sorted(root.iterdir()):
            if p.is_dir():
                try:
                    out[p.name] = safe_child(root, p.name, what="image folder")
                except ConvlensError:
                    continue  # a symlink out of the data folder is not served
    env = os.environ.get(IMAGE_FOLDERS_ENV)
    if env and Path(env).expanduser().is_dir():
        p = Path(env).expanduser().resolve()
        out.setdefault(p.name, p)
    for name, p in state.image_folders.items():
        out.setdefault(name, Path(p).resolve())
    return out


class LazyImages(Sequence):
    """Images in [0, 1] made on first access by ``_decode(i)`` (uint8 or float, kept as made), then read
    from memory: a pass streams while they decode, and the next pass reads them in microseconds."""

    _images: list
    _names: list

    def _decode(self, i: int) -> torch.Tensor:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self._images)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        x = self._images[i]
        if x is None:
            self._images[i] = x = self._decode(i)
        return x.float() / 255 if x.dtype == torch.uint8 else x

    def name(self, i: int) -> str:
        return self._names[i]

    @property
    def names(self) -> list[str]:
        return list(self._names)


class DecodedImages(LazyImages):
    """A sample set kept by the server once decoded: each image exactly as ``SampleDataset`` makes it
    (the crops are 8-bit, kept as uint8; the few whole photos resized in float, kept as float32). Generating
    200 crops took 6-13 s a pass here."""

    def __init__(self, ds):
        self.ds, self._images, self._names = ds, [None] * len(ds), ds.names

    def _decode(self, i: int) -> torch.Tensor:
        x = self.ds[i]
        u8 = (x * 255).round()
        return u8.to(torch.uint8) if torch.equal(u8 / 255, x) else x


def sample_images(state: AppState, n: int) -> Sequence:
    """The first ``n`` images of the bundled sample set, decoded once per server (kept for the largest
    ``n`` asked; a smaller ``n`` reads its first images: ``sample_dataset(n)`` is a prefix of larger ones)."""
    cache = state.cache("layers.samples", 2)
    hit = cache.get("set")
    if hit is None or len(hit) < n:
        hit = cache.put("set", DecodedImages(sample_dataset(n)))
    return hit if len(hit) == n else _Prefix(hit, n)


class _Prefix(Sequence):
    def __init__(self, base, n):
        self.base, self.n = base, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.n))]
        if not -self.n <= i < self.n:
            raise IndexError(i)
        return self.base[i % self.n]

    def name(self, i: int) -> str:
        return self.base.name(i)

    @property
    def names(self) -> list[str]:
        return self.base.names[:self.n]


def pass_backend(n_images: int) -> str:
    """The backend of a patch pass: onnxruntime from the first batch (that batch runs in torch too and
    checks the export; a failed export or check falls back to torch with one warning). The export runs
    in a child process (drivers/onnx_worker.py), so requests running forwards on the shared model
    meanwhile are not disturbed (before, torch.onnx's tracer in this process broke them:
    tests/test_onnx_concurrency.py)."""
    return "onnxruntime"


STORE_SOURCE = "store"   # the server's --store, read from its thumbnails


class StoreThumbnails(LazyImages):
    """The first ``n`` rows of an embedding store as images: its stored thumbnails (``THUMB`` px squares
    of what the model saw, JPEG in the metadata), decoded once on first access. A pass over them reads no
    image file and runs at the thumbnail's size (96 px: (96/224)^2 = 0.18x the pixels of the model's)."""

    def __init__(self, store, n: int):
        self.store, self._images = store, [None] * min(n, len(store))
        meta = store.metadata()
        paths = meta.column("path").to_pylist()[:len(self._images)] if "path" in meta.column_names else []
        self._names = [Path(p).name if p else f"row {i}" for i, p in enumerate(paths)] or \
            [f"row {i}" for i in range(len(self._images))]

    def _decode(self, i: int) -> torch.Tensor:
        a = np.asarray(self.store.thumbnail(i), dtype=np.uint8)
        return torch.from_numpy(a.copy()).permute(2, 0, 1).contiguous()


def store_source(state: AppState):
    """The server's store, if it has thumbnails to run a pass over (else None)."""
    if state.store is None:
        return None
    cache = state.cache("layers.store", 1)
    store = cache.get_or_make(str(state.store), lambda old: EmbeddingStore.open(state.store))
    return store if store.has_thumbnails() else None


def source_size(source: str):
    """``top_activations``'s ``size`` for a source: the store's thumbnails keep theirs, the rest the model's."""
    return None if source == STORE_SOURCE else "model"


def image_source(state: AppState, source: str, n: int):
    """The images a patch search runs over: the bundled sample set (a ``SampleDataset``: decode it with
    ``sample_images`` inside the job) or a named user folder (its files)."""
    if source == "samples":
        return sample_dataset(n)
    if source == STORE_SOURCE:
        store = store_source(state)
        if store is None:
            raise ConvlensError("no store with thumbnails on this server; start it with --store STORE (made by "
                                "`convlens embed`), or use 'samples' or an image folder")
        cache = state.cache("layers.store_images", 2)
        hit = cache.get(n)
        return hit if hit is not None else cache.put(n, StoreThumbnails(store, n))
    safe_name(source, "image source")
    folders = image_folders(state)
    if source not in folders:
        raise ConvlensError(f"unknown image source '{source[:60]}'; use 'samples' or one of "
                            f"{sorted(folders) or 'no folders yet'} (put folders in <data_dir>/images/ "
                            f"or start the server with {IMAGE_FOLDERS_ENV}=FOLDER)")
    files = list_images(folders[source])[:n]
    if not files:
        raise ConvlensError(f"image folder '{source}' has no images")
    return files


# --- computations (cached) -----------------------------------------------------------------------

def layer_maps(state: AppState, name: str, layer: str, image: str) -> torch.Tensor:
    """(C, H, W) activations of ``image`` (fitted to the model's input) at ``layer``; cached."""
    cache = view_cache(state)
    key = ("maps", name, layer, image)
    hit = cache.get(key)
    if hit is not None:
        return hit
    m = state.model(name)
    img = fit_image(state, m, image)
    with Probe(m, layer, detach=True, stop=True) as probe, torch.inference_mode():
        probe.run(img.to(m.device))
        a = probe[layer]
    return cache.put(key, a[0].detach().float().cpu().clone())


def png(data: bytes) -> Response:
    """PNG bytes as a response (cached by the browser for 10 minutes)."""
    return Response(data, media_type="image/png", headers={"Cache-Control": "max-age=600"})


def cached_png(state: AppState, key: tuple, make) -> Response:
    """``png(make())``, the bytes kept in the view's cache under ``key``."""
    cache = view_cache(state)
    hit = cache.get(key)
    if hit is None:
        hit = cache.put(key, make())
    return png(hit)


def resolve_unit(state: AppState, model: str | None, layer: str, channel: int):
    """(model name, model, LayerInfo, channel) of the unit a request names, every part checked."""
    name = state.check_model(model)
    m = state.model(name)
    li = browsable_layer(m, layer)
    return name, m, li, check_channel(li, channel)
