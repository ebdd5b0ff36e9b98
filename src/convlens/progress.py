"""Progress reporting shared by the three front doors.

Library functions take ``progress: Callable[[int, int | None], None] | None`` and call it with
(done, total) as work advances; the CLI passes a Rich bar (``cli_bar``), the web UI a stream.
Long loops also check nothing else: Ctrl-C raises KeyboardInterrupt between steps, and every
driver returns or has already yielded what was finished before it.
"""
from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterator

ProgressFn = Callable[[int, "int | None"], None]


def call(progress: ProgressFn | None, done: int, total: int | None) -> None:
    if progress is not None:
        progress(done, total)


@contextlib.contextmanager
def cli_bar(description: str, total: int | None = None, enabled: bool | None = None) -> Iterator[ProgressFn]:
    """A Rich progress bar on stderr, as a ``progress(done, total)`` callback."""
    enabled = sys.stderr.isatty() if enabled is None else enabled
    if not enabled:
        yield lambda done, total=None: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task(description, total=total)

        def update(done: int, total: int | None = None) -> None:
            bar.update(task, completed=done, total=total if total is not None else bar.tasks[0].total)
        yield update


@contextlib.contextmanager
def cli_stage_bar(enabled: bool | None = None) -> Iterator[Callable[[str, int, "int | None"], None]]:
    """A Rich bar on stderr as a ``progress(stage, done, total)`` callback: one bar, relabelled and
    restarted at each new stage (``convlens.evaluate``'s methods and metrics)."""
    enabled = sys.stderr.isatty() if enabled is None else enabled
    if not enabled:
        yield lambda stage, done, total=None: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=True) as bar:
        task = bar.add_task("", total=None)

        def update(stage: str, done: int, total: int | None = None) -> None:
            bar.update(task, description=stage, completed=done, total=total)
        yield update
