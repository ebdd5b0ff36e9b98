"""Shared benchmark helpers: timing with warm-up and repeats, a matmul peak, result rows."""
from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import dataclass

import torch


@dataclass
class Row:
    """One line of the table: our figure vs the peer / naive one measured in the same run."""

    benchmark: str
    ours: float
    peer: float | None
    unit: str
    peer_name: str = ""
    target: str = ""
    higher_is_better: bool = True
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.peer in (None, 0) or self.ours == 0:
            return None
        return self.ours / self.peer if self.higher_is_better else self.peer / self.ours


def timeit(fn, repeat: int = 5, warmup: int = 1, min_time: float = 0.0) -> float:
    """Median seconds per call of ``fn()`` over ``repeat`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def matmul_peak_gflops(n: int = 2048, repeat: int = 5) -> float:
    """fp32 GEMM throughput of this machine right now (the ceiling for conv work)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    s = timeit(lambda: a @ b, repeat=repeat, warmup=2)
    return 2 * n ** 3 / s / 1e9


def alternated(ours, peer, repeat: int, stat: str = "median") -> tuple[float, float]:
    """Seconds of two callables, alternated after one warm-up each: the median of ``repeat`` calls,
    or (``stat="min"``) the fastest, the least disturbed call's cost on a shared machine."""
    ours(), peer()
    a, b = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        ours()
        a.append(time.perf_counter() - t)
        t = time.perf_counter()
        peer()
        b.append(time.perf_counter() - t)
    if stat == "min":
        return min(a), min(b)
    return sorted(a)[len(a) // 2], sorted(b)[len(b) // 2]


def captum_occlusion_ppe(occlusion, images, target) -> int:
    """Captum's fastest ``perturbations_per_eval`` for ``occlusion`` (a captum ``Occlusion``) on these images,
    tried on a coarse 32x32 grid (so the peer runs at its best setting in the real measurement)."""
    import time
    trial = {}
    for ppe in (8, 16, 32, 64):
        t0 = time.perf_counter()
        occlusion.attribute(images, target=target, sliding_window_shapes=(3, 32, 32), strides=(3, 32, 32),
                            baselines=0.0, perturbations_per_eval=ppe)
        trial[ppe] = time.perf_counter() - t0
    return min(trial, key=trial.get)


def race(fns: dict, rounds: int, warmup: bool = True) -> dict:
    """Best (minimum) seconds of each callable in ``fns``, run in turn for ``rounds`` rounds (after one
    warm-up each unless ``warmup=False``): on a shared machine other processes only ever add time."""
    if warmup:
        for f in fns.values():
            f()
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    return {k: min(v) for k, v in times.items()}


@contextlib.contextmanager
def cold_export_cache():
    """A fresh, temporary ``CONVLENS_CACHE`` (so an export row measures a real export); the in-memory
    ONNX sessions are cleared on the way out and the variable restored."""
    from convlens.drivers import onnx as ob
    old = os.environ.get("CONVLENS_CACHE")
    tmp = tempfile.TemporaryDirectory(prefix="convlens-bench-")
    os.environ["CONVLENS_CACHE"] = tmp.name
    try:
        yield
    finally:
        ob.clear_memory_cache()
        if old is None:
            os.environ.pop("CONVLENS_CACHE", None)
        else:
            os.environ["CONVLENS_CACHE"] = old
        tmp.cleanup()


def bare_feature_step(model, x, layers):
    """One forward + backward to ``layers`` with a trivial loss (sum of mean squares): the floor that a
    style/texture optimizer step is compared with."""
    from convlens import Probe
    xi = x.clone().requires_grad_(True)
    with Probe(model, layers, stop=True) as p:
        p.run(xi)
        loss = sum(p[k].pow(2).mean() for k in layers)
    return torch.autograd.grad(loss, xi)[0]
