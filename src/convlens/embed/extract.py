"""Extraction: run a CNN over many images and keep one vector per image in an ``EmbeddingStore``.

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

import hashlib
import itertools
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from ..errors import ConvlensError
from ..models.model import Model
from ..progress import ProgressFn, call
from .decode import THUMB, _fast_jpeg, _thumb_bytes, decode_bytes, decode_file, pool  # noqa: F401 - importable here as before
from .store import EmbeddingStore
from .vectors import META_COLUMNS, VERSION


def default_layer(model: Model) -> str:
    """The layer whose output feeds the classifier: the one executed just before the last Linear.

    MobileNetV2 -> ``classifier.0`` (the pooled 1280-d vector), ResNet -> ``avgpool`` (512),
    AlexNet -> ``classifier.5`` (FC7 after its ReLU, 4096), VGG -> ``classifier.5`` (FC7).
    """
    layers = model.layers()
    lin = [i for i, li in enumerate(layers) if li.type == "Linear"]
    if not lin:
        spatial = [li for li in layers if li.shape]
        return spatial[-1].name
    last = layers[lin[-1]].name
    for li in reversed(layers[:lin[-1]]):
        if not last.startswith(li.name + "."):  # skip the containers holding the classifier
            return li.name
    return last


def _worker_init(_):
    torch.set_num_threads(1)
    try:
        import cv2
        cv2.setNumThreads(1)
    except Exception:  # noqa: BLE001
        pass


class _Files(torch.utils.data.Dataset):
    def __init__(self, paths, size, thumb, draft=True):
        self.paths, self.size, self.thumb, self.draft = paths, size, thumb, draft

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return decode_file(str(self.paths[i]), self.size, self.thumb, self.draft)


def _collate(x):
    return x


DECODERS = ("threads", "processes")


DECODE_NICE = int(os.environ.get("CONVLENS_DECODE_NICE", "5"))


def _decode_thread_init():
    """A decoding thread yields to the forward's threads when both want a core (Linux: per thread)
    and runs torch (the resize) on one thread."""
    if DECODE_NICE > 0 and hasattr(os, "setpriority"):
        try:
            import threading
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), DECODE_NICE)
        except OSError:
            pass
    torch.set_num_threads(1)  # the resize in decode_bytes: one thread (the budget is per thread)


def _thread_groups(paths, size, batch_size, workers, thumb, draft):
    """Groups decoded by ``workers`` threads, up to two groups ahead of the consumer, in order.

    Threads, not processes: Pillow's decoder and resampler, the JPEG encoder and hashlib release the
    GIL, so the decoding runs beside the forward pass (which releases it too) with no process
    start-up (~1-3 s a worker: each imports torch) and no pickling of decoded images."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor
    starts = range(0, len(paths), batch_size)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="convlens-decode",
                            initializer=_decode_thread_init) as ex:
        window: deque = deque()

        def submit(i):
            window.append([ex.submit(decode_file, str(p), size, thumb, draft) for p in paths[i:i + batch_size]])
        it = iter(starts)
        for i in itertools.islice(it, 3):  # the group being consumed and two ahead
            submit(i)
        try:
            while window:
                group = [f.result() for f in window.popleft()]
                nxt = next(it, None)
                if nxt is not None:
                    submit(nxt)
                yield group
        finally:  # an interrupted consumer: drop what has not started
            for fs in window:
                for f in fs:
                    f.cancel()


def _lane_results(paths, size, batch_size, lanes, thumb, draft, forward):
    """(group, vectors) per group, in order, from ``lanes`` threads that each decode a whole group
    and run its forward with one thread (``forward`` has a budget of 1): data parallelism, no
    third thread competing with a multi-threaded forward for the cores (docs/embeddings.md)."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    def work(i):
        group = [decode_file(str(p), size, thumb, draft) for p in paths[i:i + batch_size]]
        return group, _forward_group(forward, group, "files")
    it = iter(range(0, len(paths), batch_size))
    with ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="convlens-lane",
                            initializer=torch.set_num_threads, initargs=(1,)) as ex:
        window: deque = deque(ex.submit(work, i) for i in itertools.islice(it, 2 * lanes))
        try:
            while window:
                done = window.popleft().result()
                nxt = next(it, None)
                if nxt is not None:
                    window.append(ex.submit(work, nxt))
                yield done
        finally:  # an interrupted consumer: drop what has not started
            for f in window:
                f.cancel()


def _file_groups(paths, size, batch_size, workers, thumb, draft=True, decoder="threads"):
    if workers <= 0:
        for i in range(0, len(paths), batch_size):
            yield [decode_file(str(p), size, thumb, draft) for p in paths[i:i + batch_size]]
        return
    if decoder == "threads":
        yield from _thread_groups(paths, size, batch_size, workers, thumb, draft)
        return
    # forkserver, not fork: forking a process whose OpenMP / BLAS threads hold locks can deadlock the
    # workers (seen in a long test session); the fork server is a fresh process that forks them cleanly
    import multiprocessing
    loader = torch.utils.data.DataLoader(_Files(paths, size, thumb, draft), batch_size=batch_size, num_workers=workers,
                                         collate_fn=_collate, worker_init_fn=_worker_init, prefetch_factor=2,
                                         multiprocessing_context=multiprocessing.get_context("forkserver"))
    yield from loader


def _image_item(img, size, thumb) -> tuple[dict, torch.Tensor | None]:
    from ..images import fit, load_image, to_uint8
    try:
        t = load_image(img)
    except ConvlensError as e:
        return {"ok": False, "reason": str(e)[:120]}, None
    H0, W0 = t.shape[-2:]
    t = fit(t, size)
    u8 = to_uint8(t[0])
    return {"ok": True, "hash": hashlib.sha1(u8.tobytes()).hexdigest(), "width": int(W0), "height": int(H0),
            "thumbnail": _thumb_bytes(u8, thumb)}, t


def _image_groups(images: Iterable, size, batch_size, thumb):
    it = iter(images)
    while True:
        group = list(itertools.islice(it, batch_size))
        if not group:
            return
        out = []
        for img in group:
            info, t = _image_item(img, size, thumb)
            info["tensor"] = t
            out.append(info)
        yield out


def digits_images(n: int = 1797, side: int = 64) -> tuple[torch.Tensor, list[str]]:
    """scikit-learn's bundled 8x8 digits as (n, 3, side, side) images (white on black, bilinear
    upscaled) and their labels ("0".."9"): offline data for maps whose classes are known."""
    from sklearn.datasets import load_digits
    d = load_digits()
    x = torch.from_numpy(d.images[:n].astype(np.float32) / 16.0)[:, None]
    x = torch.nn.functional.interpolate(x, size=(side, side), mode="bilinear", align_corners=False).clamp(0, 1)
    return x.expand(-1, 3, -1, -1).contiguous(), [str(int(t)) for t in d.target[:n]]


# --- the forward pass -------------------------------------------------------------------------

ORT_MIN_ITEMS = 128  # auto: onnxruntime for extractions of at least this many items (or a checked export on disk)


def extraction_backend(store: EmbeddingStore, model: Model, layer: str, size, items_left: int | None,
                       backend: str | None = None) -> str:
    """The backend ("torch" or "onnxruntime") of the whole extraction into ``store``.

    Chosen once and recorded in the manifest (``backend``), so a resumed run uses the same one and
    writes bit-equal vectors. ``auto`` (the default, or ``$CONVLENS_BACKEND``) picks onnxruntime
    (1.3-2.3x faster than torch here, docs/forward.md) when the model is eligible and the job has
    at least ``ORT_MIN_ITEMS`` items or a checked export is on disk; a small job stays in torch
    (no export). An explicit ``backend`` applies to a new store only."""
    recorded = store.manifest.get("backend")
    if recorded in ("torch", "onnxruntime"):
        return recorded
    from ..drivers import onnx
    b = onnx.resolve_backend(backend)
    if b == "auto":
        ok = onnx.eligible(model) and onnx.ort_available() and onnx.providers_for(model.device) is not None
        big = items_left is None or items_left >= ORT_MIN_ITEMS
        b = "onnxruntime" if ok and (big or onnx.on_disk(model, [layer], True, tuple(size))) else "torch"
    store.manifest["backend"] = b
    store._write_manifest()
    return b


class ExtractForward:
    """``fwd(x) -> (B, dim) float32``: the extraction's forward pass to ``layer``, pooled, in one
    backend for every batch.

    With onnxruntime the session is made (or loaded) and checked against torch on a small random
    batch *before* the first real one (``batched_forward`` yields torch's result for the batch that
    checks a new export), so every batch of the store comes from the same backend. If the export
    cannot be used the extraction runs in torch (one warning line, as ``batched_forward``) and
    ``backend`` says so."""

    def __init__(self, model: Model, layer: str, size, threads: int | None = None, backend: str = "torch"):
        from ..drivers.forward import default_threads, torch_pass
        from ..drivers.onnx import Switch
        self.model, self.layer = model, layer
        self.budget = threads if threads is not None else default_threads()
        self.switch = Switch(model, [layer], True, self.budget, backend)
        self.torch_fn = torch_pass(model, [layer])
        self.backend = "torch"
        if self.switch.mode == "onnxruntime":
            g = torch.Generator().manual_seed(0)
            self(torch.rand(2, 3, *size, generator=g))  # export / load + check; the result is dropped
            r = self.switch.runners.get(tuple(int(s) for s in size))
            if r is not None and r.verified:
                self.backend = "onnxruntime"
            else:
                self.switch.mode = "torch"

    def from_uint8(self, rgb: np.ndarray) -> torch.Tensor:
        """(B, H, W, 3) uint8 -> (B, 3, H, W) float in [0, 1], laid out for the backend (NCHW for
        onnxruntime, channels_last for torch): one float pass, no layout copy afterwards."""
        u8 = torch.from_numpy(rgb).permute(0, 3, 1, 2)
        if self.backend == "onnxruntime":
            u8 = u8.contiguous()  # a 1-byte copy instead of a 4-byte one in the session's input
        return u8.float().div_(255)

    def __call__(self, x: torch.Tensor) -> np.ndarray:
        from ..drivers.forward import thread_budget
        with thread_budget(self.budget), torch.inference_mode():
            _, acts = self.switch.run(x.to(self.model.device), self.torch_fn)
        return pool(acts[self.layer]).cpu().numpy().astype(np.float32)


# --- the extraction ---------------------------------------------------------------------------

def _resolve_source(source, labels):
    """(kind, items, paths-as-strings, labels, total) for a folder / list of paths / images."""
    from ..images import list_images
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        root = Path(os.path.abspath(source))  # absolute: a row names its file whatever the working folder
        files = list_images(root)
        if labels is None:
            labels = [str(f.parent.relative_to(root)) if f.parent != root else None for f in files]
        return "files", files, [str(f) for f in files], labels, len(files)
    if isinstance(source, (str, os.PathLike)):
        raise ConvlensError(f"{source} is not a folder; pass a folder, a list of image paths, or images")
    if isinstance(source, torch.Tensor):
        if source.ndim != 4:
            raise ConvlensError(f"an image tensor source must be (N, 3, H, W), got {tuple(source.shape)}")
        names = [f"<image {i}>" for i in range(source.shape[0])]
        return "images", list(source[:, None].unbind(0)), names, labels, source.shape[0]
    if isinstance(source, Sequence) and source and all(isinstance(s, (str, os.PathLike)) for s in source):
        paths = [Path(os.path.abspath(s)) for s in source]
        return "files", paths, [str(s) for s in paths], labels, len(source)
    names = list(getattr(source, "names", []) or [])
    total = len(source) if hasattr(source, "__len__") else None
    return "images", source, names, labels, total


def file_identity(path) -> tuple[int, int]:
    """(size in bytes, mtime in ns) of a local file, (-1, -1) when it cannot be read: with the
    path, what resume matches store rows by."""
    try:
        st = os.stat(path)
    except OSError:
        return -1, -1
    return int(st.st_size), int(st.st_mtime_ns)


def source_record(source, kind: str) -> dict:
    """What a store records of its source: a folder's absolute path, or the kind (paths / images)."""
    if kind == "files" and isinstance(source, (str, os.PathLike)):
        return {"kind": "folder", "path": str(source) if "://" in str(source) else os.path.abspath(source)}
    return {"kind": "paths" if kind == "files" else "images"}


def _where(rec: dict) -> str:
    return f"folder {rec['path']}" if rec.get("kind") == "folder" else f"a list of {rec.get('kind')}"


def plan_items(store: EmbeddingStore, kind: str, names: Sequence[str], identities, source: dict,
               append: bool = False, images=None, size=None, total: int | None = None) -> list[int] | None:
    """The listing positions this run must embed, in listing order.

    Files: by identity, not position: a file whose (path, size, mtime_ns) is in the store (a row,
    or a skipped unreadable file) is done; every other file is embedded, so files added anywhere in
    the listing (even sorting first) are embedded exactly once. A file embedded before that has
    changed since is refused (a store never keeps old content for a path silently). A store made
    from another folder is refused unless ``append``. Images (tensors, iterables): by position
    (``items_done``), after checking that the images already embedded are the same ones."""
    m = store.manifest
    started = len(store) > 0 or bool(m.get("skipped"))
    known = m.get("sources") or []
    if started and source not in known and not append:
        raise ConvlensError(f"store {store.path} holds the embeddings of {_where(known[0]) if known else 'another source'}, "
                            f"not of {_where(source)}; pass --append (append=True) to add these images to it, "
                            "another --out, or --overwrite to start it again")
    if kind != "files" and append and started:
        raise ConvlensError("append=True adds files (a folder or paths) to a store; write these images to a folder first")
    if source not in known:
        m["sources"] = known + [source]
        store._write_manifest()
    if kind != "files":
        start = int(m["items_done"])
        if start and images is not None and iter(images) is not images:  # (a one-shot iterator cannot be re-read)
            _check_same_images(store, images, start, size)
        return None if total is None else list(range(start, total))
    done: dict[str, tuple[int, int]] = {}
    if len(store):
        t = store.read_columns(["path", "size", "mtime_ns"])  # not the thumbnails
        for pth, sz, mt in zip(t.column("path").to_pylist(), t.column("size").to_pylist(),
                               t.column("mtime_ns").to_pylist()):
            done[pth] = (sz, mt)
    want = dict(zip(names, identities))
    changed = [pth for pth, ident in done.items() if pth in want and want[pth] != ident]
    if changed:
        raise ConvlensError(f"{len(changed)} file(s) changed since they were embedded in {store.path} (e.g. {changed[0]}); "
                            "a store does not replace rows: re-create it with --overwrite (overwrite=True)")
    keep = []
    for sk in m.get("skipped", []):  # an unreadable file is done while it is unchanged
        ident = (sk.get("size", -2), sk.get("mtime_ns", -2))
        if want.get(sk["path"]) in (None, ident):
            done.setdefault(sk["path"], ident)
            keep.append(sk)
    if len(keep) != len(m.get("skipped", [])):
        m["skipped"] = keep
        store._write_manifest()
    return [i for i, pth in enumerate(names) if pth not in done]


def _check_same_images(store: EmbeddingStore, images, start: int, size) -> None:
    """The first ``start`` images of this run are the ones the store holds (their content hashes)."""
    t = store.read_columns(["item", "hash"])
    hashes = dict(zip(t.column("item").to_pylist(), t.column("hash").to_pylist()))
    for i, img in enumerate(itertools.islice(iter(images), start)):
        if i in hashes:
            info, _ = _image_item(img, size, 8)
            if info.get("hash") != hashes[i]:
                raise ConvlensError(f"image {i} differs from the one embedded in {store.path}: these are other images; "
                                    "use another --out, or --overwrite to start the store again")


def repair_shards(store: EmbeddingStore, damaged: list[dict], forward, size, batch_size: int, thumb: int,
                  draft: bool) -> list[int]:
    """Re-extract the vectors of damaged shards (``store.verify()``) from their files, in place.

    A shard's rows are known from its metadata (paths and content hashes): each file is decoded
    again, checked to be the same content, and embedded; the shard's vectors and norms are
    rewritten and their checksums recorded. A damaged metadata file, a missing or changed file, or
    a store of in-memory images is one line naming the fix (re-create the store)."""
    import pyarrow.parquet as pq
    fixed = []
    for k in sorted({d["shard"] for d in damaged}):
        sh = store._shards()[k]
        why = {d["file"]: d["reason"] for d in damaged if d["shard"] == k}
        if sh["meta"] in why:
            raise ConvlensError(f"shard file {sh['meta']} of store {store.path} is damaged ({why[sh['meta']]}): the "
                                "files of its rows are unknown, so it cannot be re-extracted; re-create the store "
                                "with --overwrite")
        t = pq.read_table(store.path / sh["meta"], columns=["path", "hash"])
        paths, hashes = t.column("path").to_pylist(), t.column("hash").to_pylist()
        vec = []
        for a in range(0, len(paths), batch_size):
            group = [decode_file(pth, size, thumb, draft) for pth in paths[a:a + batch_size]]
            for g, pth, h in zip(group, paths[a:a + batch_size], hashes[a:a + batch_size]):
                if not g["ok"] or g["hash"] != h:
                    raise ConvlensError(f"shard {sh['vectors']} of store {store.path} is damaged and its file {pth} is "
                                        "gone or changed, so it cannot be re-extracted; re-create the store with --overwrite")
            vec.append(forward(forward.from_uint8(np.stack([g["rgb"] for g in group]))))
        store.replace_shard_vectors(k, np.concatenate(vec))
        fixed.append(k)
    return fixed


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
    kind, items, names, labels, total = _resolve_source(source, labels)
    if kind == "files" and not items:
        raise ConvlensError("no image files to embed; pass a folder of images or a list of image paths")
    store, layer, size = open_store(model, layer, out, size=size, dtype=dtype, resume=resume, overwrite=overwrite,
                                    shard_size=shard_size, seed=seed, total=total, draft=draft)
    identities = [file_identity(pth) for pth in names] if kind == "files" else None
    damaged = store.verify() if len(store) else []
    if damaged:  # before anything else: the rows of a damaged shard are not "done"
        fwd = ExtractForward(model, layer, size, threads, extraction_backend(store, model, layer, size, None, backend))
        repair_shards(store, damaged, fwd, size, batch_size, thumb, draft)
    todo = plan_items(store, kind, names, identities, source_record(source, kind), append,
                      items if kind == "images" else None, size, total)
    if todo is not None and not todo:
        store.manifest["total"] = total
        store._write_manifest()
        return store
    start = int(store.manifest["items_done"]) if kind == "images" else 0
    n_left = len(todo) if todo is not None else None
    if workers is None:  # one decoding thread leaves the forward its cores (decoding ~3 ms vs ~40 ms of forward
        workers = 1 if n_left is None or n_left > 4 * batch_size else 0  # per image here); small jobs inline
    from ..drivers.forward import default_threads
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
        results = _lane_results(todo_items, size, batch_size, lanes, thumb, draft, forward)
    else:
        if kind == "files":
            groups = _file_groups(todo_items, size, batch_size, workers, thumb, draft, decoder)
        else:
            groups = _image_groups(itertools.islice(iter(items), start, None), size, batch_size, thumb)
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


def _forward_group(forward: ExtractForward, group: list[dict], kind: str) -> np.ndarray | None:
    """The vectors of a group's readable items (None when there are none)."""
    ok = [g for g in group if g["ok"]]
    if not ok:
        return None
    x = forward.from_uint8(np.stack([g["rgb"] for g in ok])) if kind == "files" else \
        torch.cat([g["tensor"] for g in ok])
    return forward(x)


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


class StoreWriter:
    """Appends groups of processed items to a store in stream order and commits a shard of exactly
    ``shard_size`` vectors as soon as that many are pending (the last shard holds the rest).

    ``todo``: the listing positions of the items the writer will receive, in order (default: from
    the store's ``items_done`` on); ``identities``: (size, mtime_ns) per listing position (files),
    recorded with each row so that a resumed run matches rows by file identity; ``total``: the
    listing's length (progress). A shard may end inside a group: what is not committed is simply
    not done, and a resumed run embeds it (per-image vectors do not depend on the batch: measured
    bit-equal for batch sizes 1, 5, 8 and 32, docs/embeddings.md)."""

    def __init__(self, store: EmbeddingStore, names: Sequence[str], labels: Sequence | None,
                 todo: Sequence[int] | None = None, identities=None, total: int | None = None):
        self.store, self.names, self.labels, self.identities = store, names, labels, identities
        self.todo = todo
        self.pos = 0  # items received so far
        first = int(store.manifest["items_done"])
        self.done = first if todo is None else (total if total is not None else len(names)) - len(todo)
        self._first = first
        self.shard_size = int(store.manifest["shard_size"])
        self.rows: list[tuple[int, dict]] = []  # (stream position, metadata) of pending vectors
        self.vec: list[np.ndarray] = []
        self.skipped: list[tuple[int, dict]] = []

    def _item(self, pos: int) -> int:
        return self._first + pos if self.todo is None else int(self.todo[pos])

    def _name(self, item: int) -> str:
        return self.names[item] if item < len(self.names) else f"<item {item}>"

    def add_group(self, group: list[dict], vectors: np.ndarray | None) -> None:
        """``group``: one dict per item (ok, hash, width, height, thumbnail, or ok False + reason);
        ``vectors``: (number of ok items, dim), in the group's order."""
        j_ok = 0
        for j, g in enumerate(group):
            pos = self.pos + j
            item = self._item(pos)
            size, mtime = self.identities[item] if self.identities is not None else (-1, -1)
            if not g["ok"]:
                self.skipped.append((pos, {"item": item, "path": self._name(item), "reason": g["reason"],
                                           "size": size, "mtime_ns": mtime}))
                continue
            lab = None if self.labels is None else self.labels[item]
            self.rows.append((pos, {"item": item, "path": self._name(item), "hash": g["hash"], "width": g["width"],
                                    "height": g["height"], "label": None if lab is None else str(lab),
                                    "thumbnail": g["thumbnail"], "size": size, "mtime_ns": mtime}))
            j_ok += 1
        if j_ok:
            self.vec.append(np.asarray(vectors, np.float32))
        self.pos += len(group)
        self.done += len(group)
        while len(self.rows) >= self.shard_size:
            self._commit(self.shard_size)

    def _commit(self, n: int) -> None:
        """Commit the first ``n`` pending rows, with the skips before the next pending row."""
        vec = np.concatenate(self.vec) if self.vec else np.zeros((0, self.store.dim), np.float32)
        cut = self.rows[n][0] if n < len(self.rows) else self.pos  # stream positions < cut are done
        rows, self.rows = self.rows[:n], self.rows[n:]
        self.vec = [vec[n:]] if n < len(vec) else []
        skips = [d for pos, d in self.skipped if pos < cut]
        self.skipped = [(pos, d) for pos, d in self.skipped if pos >= cut]
        meta = {c: [r[c] for _, r in rows] for c in META_COLUMNS}
        items_done = self._item(cut - 1) + 1 if cut > 0 else int(self.store.manifest["items_done"])
        self.store.commit_shard(vec[:n], meta, max(items_done, int(self.store.manifest["items_done"])), skips)

    def flush(self) -> None:
        """Commit what is pending (a shard, possibly empty: it records ``items_done`` and skips)."""
        if not (self.rows or self.skipped) and (self.pos == 0 or self._item(self.pos - 1) + 1
                                                 <= int(self.store.manifest["items_done"])):
            return
        self._commit(len(self.rows))

    def close(self) -> EmbeddingStore:
        self.flush()
        self.store.manifest["total"] = self.done
        self.store._write_manifest()
        return self.store
