"""Build the demo report: every concern contributes sections (``demo/<concern>.py: SECTIONS``).

A section that fails is reported in the page and on the console, and the others still run; the
report is rewritten after each section, so an interrupted demo leaves a valid partial report.
"""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..catalog import explorer_view
from ..errors import ConvlensError
from ..models import load_model
from ..render import Report
from . import adversarial, attribution, concepts, embed, faithfulness, foundation, inspect, synthesis, texture


@dataclass
class DemoContext:
    """What sections share: the offline model, the output folder, and the quick flag."""

    out: Path
    quick: bool = False
    log: Callable[[str], None] = print
    cache: dict = field(default_factory=dict)

    @property
    def model(self):
        if "model" not in self.cache:
            self.cache["model"] = load_model()
        return self.cache["model"]


def all_sections() -> list[tuple[str, Callable]]:
    out = []
    for mod in (foundation, embed, inspect, concepts, attribution, faithfulness, synthesis, adversarial, texture):
        out.extend(mod.SECTIONS)
    return out


def run_demo(out="out/demo", quick: bool = False, only: list[str] | None = None,
             log: Callable[[str], None] = print) -> tuple[Path, list[str]]:
    """Write ``out/index.html`` and its PNGs. Returns (path, names of failed sections)."""
    torch.manual_seed(0)
    ctx = DemoContext(Path(out), quick=quick, log=log)
    report = Report(ctx.out, title="convlens demo",
                    subtitle="Every figure below was computed on this machine, offline, by the command under it.",
                    link=explorer_view)
    failures = []
    sections = all_sections()
    if only:
        unknown = set(only) - {n for n, _ in sections}
        if unknown:
            raise ConvlensError(f"unknown demo section(s) {', '.join(sorted(unknown))}; "
                                f"choose from {', '.join(n for n, _ in sections)}")
        sections = [(n, b) for n, b in sections if n in only]
    for name, build in sections:
        t0 = time.perf_counter()
        log(f"[demo] {name} ...")
        first = len(report.sections)
        try:
            build(report, ctx)
        except KeyboardInterrupt:
            report.write()
            raise
        except Exception as e:  # noqa: BLE001 - one broken section must not hide the others
            failures.append(name)
            report.section(f"{name} (failed)").text(f"{type(e).__name__}: {e}")
            log(f"[demo] {name} FAILED: {type(e).__name__}: {e}")
            log(traceback.format_exc(limit=3))
        took = time.perf_counter() - t0
        for sec in report.sections[first:first + 1]:
            sec.meta = f"computed in {took:.1f} s on this machine"
        report.write()
        log(f"[demo] {name} done in {took:.1f}s")
    return report.write(), failures
