"""Dataset passes on Ray Data: embedding extraction and per-channel top-k (max-activating patches).

The pass is one ``Dataset.map_batches`` over an actor pool: each actor holds one copy of the model
(sent once through the object store), a thread budget (its Ray ``num_cpus``) or a GPU, and runs on
every batch what the local engine runs: read the file's bytes (local path or any pyarrow / fsspec
URI), decode + resize + centre-crop (``embed.decode.decode_bytes``), the forward to the layer
(``batched_forward``: truncated, channels_last, its fastest backend), then global-average pooling
(embeddings) or the batch's top-k candidates per channel (``inspect.topk.batch_candidates``).

Results come back to the driver in item order (``preserve_order``) and go through the local
engine's own writer (``embed.writer.StoreWriter``: same shards, manifest, metadata, skip list,
resumable) or its own exact top-k merge (``inspect.topk.merge_candidates``: keys are global
stream positions, so the merge of per-batch top-ks from any number of workers equals the
single-process top-k, ties included).
"""
from __future__ import annotations

import io
import math
import os
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from ..drivers import batched_forward
from ..embed.decode import THUMB, decode_bytes
from ..embed.extract import check_options, open_store
from ..embed.forward import ExtractForward, extraction_backend
from ..embed.sources import source_record
from ..embed.writer import StoreWriter, plan_items, repair_shards
from ..errors import ConvlensError
from ..images.io import fit, load_image
from ..inspect.patches import max_activating_patches
from ..inspect.topk import batch_candidates, merge_candidates, open_state, resolve_channels
from ..models.model import Model
from ..progress import ProgressFn, call
from .runtime import plan_pool, ray_error, ray_session
from .sources import Files, RemoteImages, list_files, read_bytes


def _items_dataset(ray, files: Files, todo, batch_size: int, actors: int):
    """Rows (item, path) for the listing positions ``todo`` (an int: from there on) in blocks that
    are whole multiples of ``batch_size``, so every batch an actor sees is one of the local engine's
    groups (same forward batches)."""
    import pyarrow as pa
    todo = list(range(todo, len(files))) if isinstance(todo, int) else list(todo)
    groups = math.ceil(len(todo) / batch_size)
    per_block = max(1, min(16, groups // (4 * actors)))  # >= 4 blocks per actor to balance the pool
    rows = batch_size * per_block
    tables = []
    for a in range(0, len(todo), rows):
        part = todo[a:a + rows]
        tables.append(pa.table({"item": pa.array(part, pa.int64()), "path": pa.array([files.paths[i] for i in part])}))
    return ray.data.from_arrow(tables)


def _actor_setup(model: Model, threads: int) -> Model:
    torch.set_num_threads(max(1, int(threads)))
    try:
        import cv2
        cv2.setNumThreads(1)
    except Exception:  # noqa: BLE001
        pass
    if torch.cuda.is_available():
        import ray
        if ray.get_gpu_ids():
            model = model.to("cuda")
    return model


class EmbedActor:
    """One model per actor: decode, forward, pool a batch of (item, path) rows."""

    def __init__(self, model: Model, layer: str, dim: int, size, thumb: int, threads: int, fs=None, backend=None,
                 draft: bool = True):
        self.model = _actor_setup(model, threads)
        self.layer, self.dim, self.size, self.thumb, self.draft = layer, dim, tuple(size), thumb, draft
        self.fs = fs
        # the local engine's forward: one backend for the whole store
        self.forward = ExtractForward(self.model, layer, self.size, threads, backend or "torch")

    def __call__(self, batch: dict) -> dict:
        dec = []
        for p in batch["path"]:
            try:
                data = read_bytes(str(p), self.fs)
            except Exception as e:  # noqa: BLE001 - unreadable files go to the skip list
                dec.append({"ok": False, "reason": f"{type(e).__name__}: {str(e)[:100]}"})
                continue
            dec.append(decode_bytes(data, self.size, self.thumb, self.draft))
        ok = [g for g in dec if g["ok"]]
        n = len(dec)
        vec = self.forward(self.forward.from_uint8(np.stack([g["rgb"] for g in ok]))) if ok else None
        out_vec = np.zeros((n, self.dim), np.float32)
        if vec is not None:
            out_vec[[j for j, g in enumerate(dec) if g["ok"]]] = vec
        return {"item": np.asarray(batch["item"], np.int64), "ok": np.array([g["ok"] for g in dec]),
                "reason": np.array([g.get("reason", "") for g in dec], dtype=object),
                "hash": np.array([g.get("hash", "") for g in dec], dtype=object),
                "width": np.array([g.get("width", 0) for g in dec], np.int32),
                "height": np.array([g.get("height", 0) for g in dec], np.int32),
                "thumbnail": np.array([g.get("thumbnail", b"") for g in dec], dtype=object), "vector": out_vec}


def embed_images_ray(model: Model, source, layer: str | None = None, *, out=None, batch_size: int = 32,
                     shard_size: int = 1024, labels: Sequence | None = None, dtype: str = "float32",
                     thumb: int | None = None, resume: bool = True, overwrite: bool = False, seed: int = 0, size=None,
                     address: str | None = None, workers: int | None = None, threads: int | None = None,
                     num_cpus: int | None = None, backend: str | None = None, draft: bool = True,
                     progress: ProgressFn | None = None, append: bool = False):
    """``embed_images`` on Ray: the same store (shards, manifest, metadata, skip list), computed by an
    actor pool.

    Args:
        source: a folder (recursive; sub-folders = labels), a list of image paths, or a folder URI
            (``s3://bucket/photos``, ``file:///data/photos``, any pyarrow / fsspec file system).
        address: None starts Ray in local mode (``num_cpus``: default this machine's cores; a
            session already initialized in the process is reused), "auto" or ``ray://HOST:PORT``
            joins a cluster.
        workers: actors (default: cluster CPUs / threads, or one per GPU); threads: each actor's
            thread budget (default: the CPUs shared equally); backend: ``batched_forward``'s.
            The other arguments are ``embed_images``'s; the store's items are numbered in the sorted
            listing order, so the store equals the local engine's on the same files.
    Returns:
        the ``EmbeddingStore``. Ctrl-C commits the finished groups (resumable by either engine).
    Example:
        >>> store = embed_images_ray(convlens.load_model(), "photos/", out="photos.emb", workers=2)
    """
    if not isinstance(model, Model):
        raise ConvlensError("embed_images_ray needs a convlens.Model; wrap your module with convlens.Model.wrap(module)")
    check_options(batch_size, shard_size, workers, threads, None, thumb or THUMB)
    files = list_files(source, labels)
    store, layer, size = open_store(model, layer, out, size=size, dtype=dtype, resume=resume, overwrite=overwrite,
                                    shard_size=shard_size, seed=seed, total=len(files), draft=draft)
    identities = files.identities()
    damaged = store.verify() if len(store) else []
    if damaged:  # re-extracted on the driver, as the local engine does
        fwd = ExtractForward(model, layer, size, threads, extraction_backend(store, model, layer, size, None, backend))
        repair_shards(store, damaged, fwd, size, batch_size, thumb or THUMB, draft)
    rec = source_record(source, "files") if isinstance(source, (str, os.PathLike)) else {"kind": "paths"}
    todo = plan_items(store, "files", files.names, identities, rec, append)
    if not todo:
        return store
    backend = extraction_backend(store, model, layer, size, len(todo), backend)  # recorded, as locally
    writer = StoreWriter(store, files.names, files.labels, todo, identities, len(files))
    with ray_session(address, num_cpus) as ray:
        pool = plan_pool(ray, workers, threads)
        ds = _items_dataset(ray, files, todo, batch_size, pool.actors).map_batches(
            EmbedActor, fn_constructor_kwargs=dict(model=model, layer=layer, dim=store.dim, size=size, thumb=thumb or THUMB,
                                                   threads=pool.threads, fs=files.fs, backend=backend, draft=draft),
            batch_size=batch_size, batch_format="numpy", **pool.map_kwargs(ray))
        try:
            for out_b in ds.iter_batches(batch_size=batch_size, batch_format="numpy", prefetch_batches=2):
                items = [int(i) for i in out_b["item"]]
                if items != list(todo[writer.pos:writer.pos + len(items)]):
                    raise ConvlensError(f"internal: the Ray pass returned items {items[0]}.. where "
                                        f"{todo[writer.pos]} was expected; nothing after the last shard was written")
                group = [{"ok": bool(ok), "reason": str(r), "hash": str(h), "width": int(w), "height": int(hh),
                          "thumbnail": bytes(t)}
                         for ok, r, h, w, hh, t in zip(out_b["ok"], out_b["reason"], out_b["hash"], out_b["width"],
                                                        out_b["height"], out_b["thumbnail"])]
                okm = np.asarray(out_b["ok"], bool)
                writer.add_group(group, out_b["vector"][okm] if okm.any() else None)
                call(progress, writer.done, len(files))
        except KeyboardInterrupt:
            writer.flush()
            raise
        except ConvlensError:
            writer.flush()
            raise
        except Exception as e:  # noqa: BLE001 - a worker's error, one line
            writer.flush()
            raise ray_error(e) from None
    store.manifest["engine"] = {"name": "ray", "actors": pool.actors, "threads_per_actor": pool.threads,
                                "gpus_per_actor": pool.gpus}
    return writer.close()


# --- top-k ----------------------------------------------------------------------------------------

class TopkActor:
    """One model per actor: load, fit, forward a batch and keep its top-k candidates per channel."""

    def __init__(self, model: Model, layer: str, chans: list[int], k: int, per_image: bool, size, threads: int,
                 fs=None, backend=None):
        self.model = _actor_setup(model, threads)
        self.layer, self.k, self.per_image, self.threads, self.fs, self.backend = layer, k, per_image, threads, fs, backend
        self.idx = torch.tensor(chans, dtype=torch.long)
        self.all_ch = chans == list(range(model.layer_info(layer).shape[0]))
        self.size = model.input_size if size == "model" else size

    def _load(self, path: str) -> torch.Tensor:
        if self.fs is None:
            t = load_image(path)
        else:
            im = Image.open(io.BytesIO(read_bytes(path, self.fs)))
            im.load()
            t = load_image(im)
        return fit(t, self.size) if self.size is not None else t

    def __call__(self, batch: dict) -> dict:
        items = torch.as_tensor(np.asarray(batch["item"], np.int64))
        x = torch.cat([self._load(str(p)) for p in batch["path"]])
        b = next(iter(batched_forward(self.model, x, self.layer, batch_size=len(x), size=None, threads=self.threads,
                                      backend=self.backend)))
        v, keys, hw = batch_candidates(b.activations[self.layer], self.layer, self.idx, self.all_ch, items, self.k,
                                       self.per_image)
        return {"values": v[None].numpy(), "keys": keys[None].numpy(), "hw": np.array([hw], np.int64),
                "last": np.array([int(items.max())], np.int64)}


def top_activations_ray(model: Model, images, layer: str, channels=None, k: int = 9, *, batch_size: int = 32,
                        per_image: bool = False, state=None, size="model", address: str | None = None,
                        workers: int | None = None, threads: int | None = None, num_cpus: int | None = None,
                        backend: str | None = None, progress: Callable[[int, int | None], None] | None = None):
    """``top_activations`` on Ray: the same ``TopActivations`` (values, images, positions, ties in
    stream order), with batches spread over an actor pool and merged exactly on the driver.

    ``images``: a folder, a list of image paths or a folder URI. ``state``: a ``TopActivations`` or a
    file path to resume (saved after every merged batch, as the local pass does). Ray arguments as in
    ``embed_images_ray``.
    """
    if not isinstance(model, Model):
        raise ConvlensError("top_activations_ray needs a convlens.Model; wrap your module with convlens.Model.wrap(module)")
    if k < 1:
        raise ConvlensError(f"k must be at least 1, got {k}")
    files = images if isinstance(images, Files) else list_files(images)
    chans = resolve_channels(model, layer, channels)
    total = len(files)
    state, path = open_state(state, layer, chans, k, per_image, total)
    if state.n_images == total:
        return state
    call(progress, state.n_images, total)
    with ray_session(address, num_cpus) as ray:
        pool = plan_pool(ray, workers, threads)
        ds = _items_dataset(ray, files, state.n_images, batch_size, pool.actors).map_batches(
            TopkActor, fn_constructor_kwargs=dict(model=model, layer=layer, chans=chans, k=k, per_image=per_image,
                                                  size=size, threads=pool.threads, fs=files.fs, backend=backend),
            batch_size=batch_size, batch_format="numpy", **pool.map_kwargs(ray))
        try:
            for r in ds.iter_rows():
                merge_candidates(state, torch.from_numpy(np.array(r["values"])), torch.from_numpy(np.array(r["keys"])),
                                 tuple(int(v) for v in r["hw"]), max(state.n_images, int(r["last"]) + 1))
                if path is not None:
                    state.save(path)
                call(progress, state.n_images, total)
        except KeyboardInterrupt as e:
            e.partial = state
            raise
        except ConvlensError:
            raise
        except Exception as e:  # noqa: BLE001
            raise ray_error(e) from None
    return state


def max_activating_patches_ray(model: Model, images, layer: str, channels=None, k: int = 9, *,
                               per_image: bool = False, batch_size: int = 32, state=None, fill: float = 0.5,
                               size="model", progress=None, **ray_kw):
    """``max_activating_patches`` on Ray: the top-k pass runs on the actor pool
    (``top_activations_ray``), then the crops are cut locally from the few images in some top-k
    (read again from their paths or URIs) by the local implementation itself."""
    files = list_files(images)
    top = top_activations_ray(model, files, layer, channels, k, batch_size=batch_size, per_image=per_image,
                              state=state, size=size, progress=progress, **ray_kw)
    stream = files.paths if files.fs is None else RemoteImages(files)
    return max_activating_patches(model, stream, layer, channels, k, per_image=per_image, state=top, fill=fill,
                                  size=size)
