"""Ray, imported lazily: the optional extra, the session (local mode or an existing cluster) and
the actor pool's shape (actors, a thread budget per actor, GPUs).

Ray is never imported by ``import convlens``; only the ``--engine ray`` passes import it, through
``require_ray()``, which turns a missing extra into one line naming the install command.
"""
from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass

from ..errors import ConvlensError

INSTALL_HINT = "the Ray engine needs the optional extra: pip install 'convlens[ray]'"
OBJECT_STORE_MB = 256  # local mode: the pass moves file paths in and vectors / top-k candidates out


def require_ray():
    """``import ray`` and ``ray.data``, or a ``ConvlensError`` with the install hint."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise ConvlensError(f"{INSTALL_HINT} ({e.name or 'ray'} is missing)") from None
    return ray


def local_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None):
    """A Ray session for one pass: reuse the one already initialized in this process, connect to
    ``address`` ("auto" for the local cluster started with ``ray start``, or ``ray://HOST:PORT``),
    or start Ray in local mode with ``num_cpus`` (default: this machine's usable cores), no
    dashboard and a small object store. A session this function started is shut down on exit."""
    ray = require_ray()
    started = False
    if not ray.is_initialized():
        kw = dict(include_dashboard=False, log_to_driver=False, configure_logging=True, logging_level=logging.WARNING)
        try:
            if address:
                ray.init(address=address, **kw)
            else:
                ray.init(num_cpus=num_cpus or local_cpus(), object_store_memory=OBJECT_STORE_MB * 1024 ** 2, **kw)
        except ConnectionError as e:
            raise ConvlensError(f"cannot reach the Ray cluster at {address} ({str(e).splitlines()[0][:100]}); "
                                "start it with `ray start --head` or drop --address to run in local mode") from None
        started = True
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # outputs in item order: shards as the local engine writes them
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    for name in ("ray.data", "ray"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


@dataclass
class Pool:
    """The actor pool of a pass: ``actors`` actors, each with ``threads`` CPU threads (its Ray
    ``num_cpus``) and ``gpus`` GPUs (1 when the cluster has GPUs: one model per GPU)."""

    actors: int
    threads: int
    gpus: float = 0.0

    def map_kwargs(self, ray) -> dict:
        return {"compute": ray.data.ActorPoolStrategy(size=self.actors), "num_cpus": self.threads,
                "num_gpus": self.gpus}


def plan_pool(ray, workers: int | None = None, threads: int | None = None) -> Pool:
    """Default: on GPUs one actor per GPU; on CPUs ``workers`` actors (default: one per CPU of the
    cluster divided by the thread budget) sharing the cluster's CPUs equally (``threads`` each)."""
    res = ray.cluster_resources()
    cpus, gpus = int(res.get("CPU", 1)), int(res.get("GPU", 0))
    if workers is not None and workers < 1:
        raise ConvlensError(f"--workers must be at least 1, got {workers}")
    if gpus:
        n = workers or gpus
        return Pool(n, threads or max(1, cpus // n), 1.0 if n <= gpus else gpus / n)
    if workers is None:
        workers = max(1, cpus // (threads or 1))
    threads = threads or max(1, cpus // workers)
    if workers * threads > cpus:
        raise ConvlensError(f"{workers} workers x {threads} threads need {workers * threads} CPUs but the Ray cluster "
                            f"has {cpus}; lower --workers or --threads")
    return Pool(workers, threads)


def ray_error(e: BaseException) -> ConvlensError:
    """One line from an exception raised inside a Ray worker (the remote traceback dropped)."""
    cause = getattr(e, "cause", None) or e
    lines = [ln for ln in str(cause).strip().splitlines() if ln.strip()]
    msg = lines[-1] if lines else type(cause).__name__
    return ConvlensError(f"the Ray pass failed: {msg[:200]}")
