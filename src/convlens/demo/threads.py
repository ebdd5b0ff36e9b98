"""One torch thread per demo section, for the sections that run small-batch work."""
from __future__ import annotations

from ..drivers.forward import thread_budget


def one_thread(build):
    """Run a section with one torch thread. These are small-batch optimizations: a second thread gains
    little when the cores are free, and when other processes load them the spinning OpenMP threads lose
    badly (measured on the 2-core machine under load: 4 classes x 10 steps at 128 px took 4.4 s with one
    thread and 67 s with two; the class grid took 305 s with two)."""
    def run(report, ctx):
        with thread_budget(1):
            return build(report, ctx)
    run.__name__ = build.__name__
    return run
