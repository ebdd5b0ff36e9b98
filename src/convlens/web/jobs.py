"""The explorer's job pool: long work runs here, one queue, bounded workers, explicit thread budget.

A job is ``fn(job) -> dict`` (a JSON-able result). Inside, ``fn`` reports with ``job.progress(done,
total)`` and ``job.set_preview(png_bytes)``, and stops early when ``job.cancelled()`` is true,
returning the best result it has (cancelling keeps what was finished). Finished results are cached
by ``key`` (a hash of model, technique, parameters and input), so a repeated request is instant.

Thread budget: each worker thread calls ``torch.set_num_threads(threads)`` once when it starts. With
torch's OpenMP backend the intra-op thread count is per calling thread (OpenMP's ``nthreads-var``),
so a worker's setting does not change the request threads' or another worker's (measured: the main
thread keeps its own count while a worker runs with 1; docs/web.md). ``workers * threads`` should not
exceed the cores (pools that each take every core can oversubscribe badly; docs/web.md has the measurement).

Orphans: a client following a job (its event stream, a status poll, a preview fetch) marks it seen
(``job.touch()``; an open event stream does so every second). An unfinished job nobody has seen for
``orphan_timeout`` seconds is cancelled (a running one keeps its partial result), so a page that was
closed does not hold the workers. A queued job reports ``position``: how many queued jobs run before it.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import Future
from typing import Any, Callable

from ..errors import ConvlensError

log = logging.getLogger("convlens.web")


def job_key(*parts: Any) -> str:
    """A stable hash of the parts (dicts by sorted keys; bytes hashed as they are)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else json.dumps(p, sort_keys=True, default=str).encode())
        h.update(b"\x00")
    return h.hexdigest()[:24]


class QueueFull(ConvlensError):
    """More jobs are waiting than the pool accepts; the client should retry later (HTTP 503)."""


class Job:
    """One unit of work and everything a client may ask about it."""

    def __init__(self, key: str, label: str):
        self.id = uuid.uuid4().hex[:16]
        self.key, self.label = key, label
        self.status = "queued"          # queued, running, done, error, cancelled
        self.done, self.total = 0, None
        self.result: dict | None = None
        self.error: str | None = None
        self.preview: bytes | None = None
        self.preview_version = 0        # bumped only when a new preview arrives
        self.files: list = []           # result files (Paths) removed when the job leaves the pool
        self._deferred: list = []       # file writes run after the job is done (``defer``)
        self.files_ready = threading.Event()   # set once the deferred writes have run
        self.inline: list | None = None  # (mime, bytes) of each result image, kept when a client waits
        self.version = 0                # bumped on every change; event streams wait on it
        self.created = time.time()
        self.started: float | None = None
        self.seconds: float | None = None   # run time of the work itself
        self.threads: int | None = None     # torch threads the worker ran with
        self.last_seen = time.time()        # when a client last followed it (``touch``)
        self.note: str | None = None        # why it was cancelled, if not by its client
        self.position: int | None = None    # queued jobs ahead of it (set by the pool while queued)
        self._cancel = threading.Event()
        self._changed = threading.Condition()

    def _bump(self) -> None:
        with self._changed:
            self.version += 1
            self._changed.notify_all()

    def progress(self, done: int, total: int | None = None) -> None:
        """A ``progress(done, total)`` callback for the library functions."""
        self.done, self.total = int(done), (int(total) if total is not None else self.total)
        self._bump()

    def set_preview(self, png: bytes) -> None:
        self.preview = png
        self.preview_version += 1
        self._bump()

    def touch(self) -> None:
        """A client is following this job (it is not an orphan)."""
        self.last_seen = time.time()

    def cancel(self, note: str | None = None) -> None:
        if note and not self.finished:
            self.note = note
        self._cancel.set()
        if self.status == "queued":
            self.status = "cancelled"
            self.files_ready.set()      # it never runs: no files will come
        self._bump()

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def wait_change(self, version: int, timeout: float) -> int:
        """Block until ``self.version != version`` (or timeout); returns the current version."""
        with self._changed:
            if self.version == version:
                self._changed.wait(timeout)
            return self.version

    def defer(self, write: Callable[[], Any]) -> None:
        """Run ``write()`` (a result file) after the job is done and its waiters are answered."""
        self._deferred.append(write)

    def write_files(self) -> None:
        """Run the deferred writes (the worker, after the job finished); a failed one is logged. A job that
        failed keeps no files."""
        try:
            for write in self._deferred if self.status != "error" else ():
                try:
                    write()
                except Exception as e:  # noqa: BLE001 - the disk filled up: the page says the image expired
                    log.warning("convlens: a result file of job %s was not written: %s", self.id, e)
        finally:
            self._deferred = []
            self.files_ready.set()

    def wait_finished(self, timeout: float) -> bool:
        """Block until the job has finished (or ``timeout`` seconds passed); returns whether it has."""
        deadline = time.monotonic() + timeout
        version = self.version
        while not self.finished:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            version = self.wait_change(version, left)
        return True

    @property
    def finished(self) -> bool:
        return self.status in ("done", "error", "cancelled")

    def as_dict(self) -> dict:
        return {"id": self.id, "label": self.label, "status": self.status, "done": self.done,
                "total": self.total, "result": self.result, "error": self.error,
                "has_preview": self.preview is not None, "preview_version": self.preview_version,
                "version": self.version, "position": self.position if self.status == "queued" else None,
                "note": self.note, "seconds": self.seconds, "threads": self.threads}


class JobPool:
    """``workers`` threads, each running torch with ``threads`` intra-op threads; unfinished jobs nobody
    followed for ``orphan_timeout`` seconds are cancelled (None: never)."""

    def __init__(self, workers: int = 1, threads: int = 1, keep: int = 256, max_queued: int = 64,
                 orphan_timeout: float | None = 60.0):
        self.workers, self.threads, self.keep, self.max_queued = workers, threads, keep, max_queued
        self.orphan_timeout = orphan_timeout
        self._stop = threading.Event()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._by_key: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._counter = itertools.count()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="convlens-job",
                                        initializer=self._init_worker)
        if orphan_timeout is not None:
            threading.Thread(target=self._reap_orphans, name="convlens-orphans", daemon=True).start()

    def _reap_orphans(self) -> None:
        """Cancel unfinished jobs nobody has followed for ``orphan_timeout`` seconds."""
        while not self._stop.wait(min(1.0, self.orphan_timeout / 4)):
            now = time.time()
            with self._lock:
                idle = [j for j in self._jobs.values()
                        if not j.finished and not j.cancelled() and now - j.last_seen > self.orphan_timeout]
            for job in idle:
                job.cancel(note=f"cancelled: no client followed it for {self.orphan_timeout:g} s")
            if idle:
                self._update_positions()

    def _update_positions(self) -> None:
        """Renumber the queued jobs (0 = next to run) and wake their followers when a number changes."""
        with self._lock:
            queued = [j for j in self._jobs.values() if j.status == "queued"]
        for i, job in enumerate(queued):
            if job.position != i:
                job.position = i
                job._bump()

    def _init_worker(self) -> None:
        import torch
        torch.set_num_threads(self.threads)

    def submit(self, key: str, fn: Callable[[Job], dict], label: str = "", inline: bool = False) -> Job:
        """Queue ``fn``; a finished job with the same key is returned at once (the cache). ``inline``: keep
        the result images' bytes in memory (``Job.inline``) for a client waiting on the job."""
        with self._lock:
            hit = self._by_key.get(key)
            if hit is not None and (hit.status == "done" or not hit.finished):
                hit.touch()
                return hit
            if sum(j.status == "queued" for j in self._jobs.values()) >= self.max_queued:
                raise QueueFull(f"{self.max_queued} jobs are already waiting; retry when some have finished "
                                "(or start the server with more --workers)")
            job = Job(key, label)
            job.inline = [] if inline else None
            self._jobs[job.id] = job
            self._by_key[key] = job
            while len(self._jobs) > self.keep:
                old_id, old = next(iter(self._jobs.items()))
                if not old.finished:
                    break
                self._jobs.pop(old_id)
                if self._by_key.get(old.key) is old:
                    self._by_key.pop(old.key)
                if old.key not in self._by_key:   # no newer job shares these files: remove them
                    for f in old.files:
                        f.unlink(missing_ok=True)
        self._update_positions()
        self._pool.submit(self._run, job, fn)
        return job

    def _run(self, job: Job, fn: Callable[[Job], dict]) -> None:
        if job.cancelled():
            job.status = "cancelled"
            job.files_ready.set()
            job._bump()
            self._update_positions()
            return
        import torch
        job.status, job.started, job.threads = "running", time.time(), torch.get_num_threads()
        job._bump()
        self._update_positions()
        t0 = time.perf_counter()
        try:
            job.result = fn(job)
            job.status = "cancelled" if job.cancelled() else "done"
        except KeyboardInterrupt:  # cancelled before anything worth keeping was finished
            job.status = "cancelled"
        except ConvlensError as e:
            job.error, job.status = str(e), "error"
        except Exception as e:  # noqa: BLE001 - a failed job must not take the server down
            job.error, job.status = f"{type(e).__name__}: {e}", "error"
        job.seconds = time.perf_counter() - t0
        if job.status != "done":
            with self._lock:  # only successful results are served from the cache
                if self._by_key.get(job.key) is job:
                    self._by_key.pop(job.key)
        job._bump()             # waiters answered first (inline results) ...
        job.write_files()       # ... then the PNG files, which GET /api/results waits for (``wait_files``)

    def cached(self, key: str) -> Job | None:
        """The finished, successful job with this key, if the cache holds one."""
        with self._lock:
            hit = self._by_key.get(key)
            return hit if hit is not None and hit.status == "done" else None

    def wait_files(self, key: str, timeout: float = 30.0) -> None:
        """Block until the result files of the jobs with this key are written (no-op if none is pending; a
        cancelled job's kept result counts, though the cache no longer serves it)."""
        with self._lock:
            pending = [j for j in self._jobs.values()
                       if j.key == key and j.status != "queued" and not j.files_ready.is_set()]
        for job in pending:
            job.files_ready.wait(timeout)

    def run_sync(self, fn: Callable[[], Any], timeout: float = 120.0) -> Any:
        """Run a short ``fn()`` on a worker (same thread budget, same queue) and wait for its value."""
        fut: Future = self._pool.submit(fn)
        return fut.result(timeout)

    def stats(self) -> dict:
        """Pool size, thread budget, and how many jobs are queued, running, finished."""
        with self._lock:
            states = [j.status for j in self._jobs.values()]
        return {"workers": self.workers, "threads": self.threads, "queued": states.count("queued"),
                "running": states.count("running"), "kept": len(states), "max_queued": self.max_queued}

    def get(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise KeyError(job_id)
        return job

    def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        job.cancel()
        self._update_positions()
        return job

    def shutdown(self) -> None:
        self._stop.set()
        for job in list(self._jobs.values()):
            job.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
