"""The torch thread budget of the demo's small-batch sections, decided from the machine's idle cores."""
from __future__ import annotations

import os

from ..drivers.forward import thread_budget
from ..drivers.onnx import measure_idle_cores


def section_threads(idle: float | None, cores: int) -> int:
    """Every core when the others are idle (small-batch optimizations still gain: feature inversion on
    VGG-16 at 128 px ran 1.65x faster with 2 threads than with 1 on a quiet 2-core machine), else one:
    when other processes hold the cores, spinning OpenMP threads lose badly (measured on the 2-core
    machine under load: 4 classes x 10 steps at 128 px took 4.4 s with one thread and 67 s with two)."""
    return max(1, cores) if idle is not None and idle >= cores - 0.25 else 1


def small_batch(build):
    """Run a section with ``section_threads`` torch threads, decided when it starts (0.1 s of sampling)."""
    def run(report, ctx):
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        with thread_budget(section_threads(measure_idle_cores(), cores)):
            return build(report, ctx)
    run.__name__ = build.__name__
    return run
