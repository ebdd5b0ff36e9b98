"""Extraction: run a CNN over many images and keep one vector per image in an ``EmbeddingStore``.

This module is the writer's front: ``embed_images`` (and ``open_store``, ``check_options``, which the
Ray engine shares) put together the pieces below it, each with one job: ``sources`` (which images),
``feed`` (decoded groups), ``forward`` (the backend and the pooled forward pass), ``writer`` (resume
planning, shard repair, ``StoreWriter``). It imports ``store`` because it creates and returns the
facade (``EmbeddingStore``) users query; nothing below it does (docs/embeddings.md, "Module layout").

Files are decoded (JPEG draft mode), resized and hashed by decoding threads (or, with
``decoder="processes"``, worker processes of a torch ``DataLoader``, one torch and one OpenCV thread
each) while the main thread runs the forward pass (``ExtractForward``: ``batched_forward``'s torch
path or its onnxruntime session, one backend for the whole store, the thread budget). Spatial
outputs are global-average-pooled. Items are processed in groups of ``batch_size`` and the store
commits a shard of exactly ``shard_size`` vectors as soon as it has them. A resumed run embeds the
files not in the store yet, matched by identity (path, size, mtime; ``plan_items``), and first
re-extracts damaged shards (``repair_shards``); per-image vectors do not depend on their batch, so
the result is bit-equal to a fresh run on the final folder (docs/embeddings.md).
"""
from __future__ import annotations

import itertools
import tempfile
from typing import Sequence

import numpy as np

from ..drivers.forward import default_threads
from ..errors import ConvlensError
from ..images.digits import digits_images  # noqa: F401 - importable here as before
from ..models.model import Model
from ..progress import ProgressFn, call
# the pieces' names, importable from here as before
from .decode import THUMB, _fast_jpeg, _thumb_bytes, decode_bytes, decode_file, pool  # noqa: F401
from .feed import (DECODE_NICE, DECODERS, file_groups, image_groups, image_item, lane_results,  # noqa: F401
                   thread_groups)
from .forward import ORT_MIN_ITEMS, ExtractForward, default_layer, extraction_backend, forward_group  # noqa: F401
from .sources import Source, describe_source, file_identity, resolve_source, source_record  # noqa: F401
from .store import EmbeddingStore
from .vectors import VERSION
from .writer import StoreWriter, plan_items, repair_shards  # noqa: F401

# the old private names (``scale`` and tests used some)
_resolve_source, _where, _image_item, _forward_group = resolve_source, describe_source, image_item, forward_group
_file_groups, _image_groups, _thread_groups, _lane_results = file_groups, image_groups, thread_groups, lane_results


def check_options(batch_size: int, shard_size: int, workers: int | None = None, threads: int | None = None,
                  lanes: int | None = None, thumb: int = THUMB, decoder: str = "threads") -> None:
    """Every extraction option, before anything is created (one line naming the rule)."""
    for name, v, lo in (("batch_size", batch_size, 1), ("shard_size", shard_size, 1), ("workers", workers, 0),
                        ("threads", threads, 1), ("lanes", lanes, 1), ("thumb", thumb, 8)):
        if v is not None and (not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo):
            raise ConvlensError(f"{name} (--{name.replace('_', '-')}) must be an integer >= {lo}, got {v!r}")
    if decoder not in DECODERS:
        raise ConvlensError(f"decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")


def embed_images(model: Model, source, layer: str | None = None, *, out=None, batch_size: int = 32,
                 workers: int | None = None, shard_size: int = 1024, labels: Sequence | None = None,
                 dtype: str = "float32", thumb: int = THUMB, resume: bool = True, overwrite: bool = False,
                 threads: int | None = None, seed: int = 0, size=None,
                 progress: ProgressFn | None = None, backend: str | None = None, draft: bool = True,
                 decoder: str = "threads", lanes: int | None = None, append: bool = False) -> EmbeddingStore:
    """Embed every image of ``source`` with ``model`` at ``layer``; write them to a store and return it.

    Args:
        model: a ``convlens.Model``.
        source: a folder (recursive; sub-folder names become labels), a list of paths, an
            (N, 3, H, W) tensor in [0, 1], or any iterable of images (``sample_dataset(n)``...).
        layer: dotted layer name; default ``default_layer(model)`` (the input of the classifier:
            AlexNet/VGG FC7, ResNet avgpool, MobileNetV2's pooled features). Spatial outputs are
            global-average-pooled.
        out: the store folder (default: a new temporary folder).
        batch_size: images per forward pass; workers: decoding threads for files (default 1 for
            jobs of more than 4 batches, else 0: decode in the forward's thread); shard_size:
            vectors per committed shard (exactly; the last one holds the rest).
        labels: one label per item (default: folder names for a folder source).
        dtype: "float32" or "float16" shards; thumb: thumbnail side in pixels (JPEG, in the metadata).
        resume: continue an existing store made the same way (the default): files are matched by
            identity (path, size, mtime), so exactly the files not in the store yet are embedded,
            and damaged shards (``store.verify()``) are re-extracted first; overwrite: start again
            (deletes only the files the store's manifest lists); append: add another folder's files
            to a store (else refused).
        threads: the forward pass's thread budget (default: all cores).
        size: input side (int or (H, W)); default the model's input size.
        progress: ``progress(items_done, total)``.
        backend: the forward's backend for the whole store, "auto" (default), "torch" or
            "onnxruntime" (``extraction_backend``; recorded in the manifest, a resumed run keeps it).
        draft: decode JPEGs in draft mode (DCT-domain downscaling, the default; part of the store's
            identity); False decodes every pixel (``decode_file``).
        decoder: "threads" (default) or "processes" (a torch DataLoader of ``workers`` processes,
            one torch / OpenCV thread each) for the decoding workers.
        lanes: files with the onnxruntime backend only (its session runs concurrent calls; torch's
            probe hooks do not): this many threads each decode a whole batch and run its forward on
            one thread (``workers`` is then unused). Default: the thread budget for jobs of more
            than 4 batches with ``decoder="threads"`` (2 lanes here: 0.71-0.72x the pure forward
            against 0.67x for a decoding thread beside a 2-thread forward, docs/embeddings.md),
            else 1 (that design).
    Returns:
        the ``EmbeddingStore``; ``store.report()`` lists unreadable items (skipped, never a zero
        vector) and duplicate files. Ctrl-C commits the finished batches, then re-raises.
    Example:
        >>> store = convlens.embed_images(convlens.load_model(), "photos/", out="photos.emb")
        >>> store.neighbors(0, k=5).paths
    """
    if not isinstance(model, Model):
        raise ConvlensError("embed_images needs a convlens.Model; wrap your module with convlens.Model.wrap(module)")
    check_options(batch_size, shard_size, workers, threads, lanes, thumb, decoder)
    src = resolve_source(source, labels)
    kind, items, names, labels, total = src
    if kind == "files" and not items:
        raise ConvlensError("no image files to embed; pass a folder of images or a list of image paths")
    store, layer, size = open_store(model, layer, out, size=size, dtype=dtype, resume=resume, overwrite=overwrite,
                                    shard_size=shard_size, seed=seed, total=total, draft=draft)
    identities = [file_identity(pth) for pth in names] if kind == "files" else None
    damaged = store.verify() if len(store) else []
    if damaged:  # before anything else: the rows of a damaged shard are not "done"
        fwd = ExtractForward(model, layer, size, threads, extraction_backend(store, model, layer, size, None, backend))
        repair_shards(store, damaged, fwd, size, batch_size, thumb, draft)
    todo = plan_items(store, kind, names, identities, src.record, append,
                      items if kind == "images" else None, size, total)
    if todo is not None and not todo:
        store.manifest["total"] = total
        store.write_manifest()
        return store
    start = int(store.manifest["items_done"]) if kind == "images" else 0
    n_left = len(todo) if todo is not None else None
    if workers is None:  # one decoding thread leaves the forward its cores (decoding ~3 ms vs ~40 ms of forward
        workers = 1 if n_left is None or n_left > 4 * batch_size else 0  # per image here); small jobs inline
    budget = threads if threads is not None else default_threads()
    if lanes is None:
        lanes = budget if kind == "files" and decoder == "threads" and n_left > 4 * batch_size else 1
    lanes = max(1, int(lanes)) if kind == "files" else 1
    chosen = extraction_backend(store, model, layer, size, n_left, backend)
    if chosen != "onnxruntime":  # torch's probe hooks belong to the model: one forward at a time
        lanes = 1
    forward = ExtractForward(model, layer, size, 1 if lanes > 1 else threads, chosen)
    if lanes > 1 and forward.backend != "onnxruntime":  # the export failed: torch, one lane
        lanes, forward = 1, ExtractForward(model, layer, size, threads, "torch")
    todo_items = [items[i] for i in todo] if kind == "files" else None
    if lanes > 1:
        results = lane_results(todo_items, size, batch_size, lanes, thumb, draft,
                               lambda group: _forward_group(forward, group, "files"))
    else:
        if kind == "files":
            groups = file_groups(todo_items, size, batch_size, workers, thumb, draft, decoder)
        else:
            groups = image_groups(itertools.islice(iter(items), start, None), size, batch_size, thumb)
        results = ((group, _forward_group(forward, group, kind)) for group in groups)
    writer = StoreWriter(store, names, labels, todo, identities, total)
    try:
        for group, vec in results:
            writer.add_group(group, vec)
            call(progress, writer.done, total)
    except KeyboardInterrupt:
        writer.flush()
        raise
    return writer.close()


def open_store(model: Model, layer: str | None, out, *, size=None, dtype: str = "float32", resume: bool = True,
               overwrite: bool = False, shard_size: int = 1024, seed: int = 0, total: int | None = None,
               engine: str | None = None, draft: bool = True) -> tuple[EmbeddingStore, str, tuple[int, int]]:
    """Create or resume the store of an extraction: (store, layer, (H, W)). The identity written
    (model, weights, layer, pooling, preprocessing, dim, dtype) is the same for every engine, so
    a store started by one engine can be resumed by another."""
    if dtype not in ("float32", "float16"):
        raise ConvlensError(f"dtype must be float32 or float16, got {dtype}")
    layer = layer or default_layer(model)
    model.module(layer)  # unknown layer -> error listing the closest names
    size = tuple(model.input_size) if size is None else ((size, size) if isinstance(size, int) else tuple(size))
    shape = model.layer_info(layer).shape  # from the model's cached shape pass: no extra forward
    dim = int(shape[0]) if len(shape) in (1, 3) else int(np.prod(shape))
    identity = {"model": model.name, "weights": str(getattr(model, "weights", None)), "layer": layer,
                "pooling": "global average", "dim": dim, "dtype": dtype, "version": VERSION,
                "preprocessing": {"size": list(size), "resize": "shorter side to size, centre crop, bilinear "
                                  "(antialiased); JPEG decoded " + (
                                      "in draft mode (OpenCV's DCT-domain downscale, torch's uint8 resize)"
                                      if draft else "at full size"),
                                  "mean": model.mean.flatten().tolist(),
                                  "std": model.std.flatten().tolist()}}
    if out is None:
        out = tempfile.mkdtemp(prefix="convlens-embed-")
    extra = {"seed": int(seed), "total": total, **({"engine": engine} if engine else {})}
    store = EmbeddingStore.create_or_resume(out, identity, resume=resume, overwrite=overwrite,
                                            shard_size=shard_size, extra=extra)
    return store, layer, size
