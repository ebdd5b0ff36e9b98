"""Decoded groups for the extraction: files decoded (JPEG draft mode), resized and hashed by
threads beside the forward pass (``thread_groups``), by a ``DataLoader``'s worker processes
(``decoder="processes"``), inline (``workers=0``), or by lanes that each decode and forward a whole
group (``lane_results``); in-memory images fitted and hashed (``image_groups``). Every group comes out
in stream order: a list of dicts (ok, rgb / tensor, hash, width, height, thumbnail, or ok False and
the reason).
"""
from __future__ import annotations

import hashlib
import itertools
import multiprocessing
import os
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable

import numpy as np
import torch

from ..errors import ConvlensError
from ..images.io import fit, load_image, to_uint8
from .decode import decode_file, thumb_bytes


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
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), DECODE_NICE)
        except OSError:
            pass
    torch.set_num_threads(1)  # the resize in decode_bytes: one thread (the budget is per thread)


def thread_groups(paths, size, batch_size, workers, thumb, draft):
    """Groups decoded by ``workers`` threads, up to two groups ahead of the consumer, in order.

    Threads, not processes: Pillow's decoder and resampler, the JPEG encoder and hashlib release the
    GIL, so the decoding runs beside the forward pass (which releases it too) with no process
    start-up (~1-3 s a worker: each imports torch) and no pickling of decoded images."""
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


def lane_results(paths, size, batch_size, lanes, thumb, draft, run: Callable[[list], np.ndarray | None]):
    """(group, vectors) per group, in order, from ``lanes`` threads that each decode a whole group
    and run its forward with one thread (``run(group)``: a forward with a budget of 1): data parallelism, no
    third thread competing with a multi-threaded forward for the cores (docs/embeddings.md)."""

    def work(i):
        group = [decode_file(str(p), size, thumb, draft) for p in paths[i:i + batch_size]]
        return group, run(group)
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


def file_groups(paths, size, batch_size, workers, thumb, draft=True, decoder="threads"):
    """Decoded groups of ``batch_size`` files in order: inline (``workers=0``), by ``workers``
    threads, or by a ``DataLoader`` of ``workers`` processes (``decoder="processes"``)."""
    if workers <= 0:
        for i in range(0, len(paths), batch_size):
            yield [decode_file(str(p), size, thumb, draft) for p in paths[i:i + batch_size]]
        return
    if decoder == "threads":
        yield from thread_groups(paths, size, batch_size, workers, thumb, draft)
        return
    # forkserver, not fork: forking a process whose OpenMP / BLAS threads hold locks can deadlock the
    # workers (seen in a long test session); the fork server is a fresh process that forks them cleanly
    loader = torch.utils.data.DataLoader(_Files(paths, size, thumb, draft), batch_size=batch_size, num_workers=workers,
                                         collate_fn=_collate, worker_init_fn=_worker_init, prefetch_factor=2,
                                         multiprocessing_context=multiprocessing.get_context("forkserver"))
    yield from loader


def image_item(img, size, thumb) -> tuple[dict, torch.Tensor | None]:
    try:
        t = load_image(img)
    except ConvlensError as e:
        return {"ok": False, "reason": str(e)[:120]}, None
    H0, W0 = t.shape[-2:]
    t = fit(t, size)
    u8 = to_uint8(t[0])
    return {"ok": True, "hash": hashlib.sha1(u8.tobytes()).hexdigest(), "width": int(W0), "height": int(H0),
            "thumbnail": thumb_bytes(u8, thumb)}, t


def image_groups(images: Iterable, size, batch_size, thumb):
    it = iter(images)
    while True:
        group = list(itertools.islice(it, batch_size))
        if not group:
            return
        out = []
        for img in group:
            info, t = image_item(img, size, thumb)
            info["tensor"] = t
            out.append(info)
        yield out
