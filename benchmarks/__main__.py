"""Run the benchmarks: `python -m benchmarks [--only NAME[,NAME]] [--quick]` (or `scripts/bench`).

Every module ``benchmarks/bench_<name>.py`` defines ``run(quick: bool) -> list[Row]``; each row
compares our figure with a peer library or the naive method measured in the same run. The table
is printed and written to ``benchmarks/results/latest.md``.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
from pathlib import Path

import torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks")
    ap.add_argument("--only", help="comma-separated benchmark names (e.g. forward,attribution)")
    ap.add_argument("--quick", action="store_true", help="fewer repeats / smaller inputs")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    here = Path(__file__).parent
    names = sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
    lines = ["| benchmark | ours | peer / naive | ratio | target | note |", "|---|---|---|---|---|---|"]
    for name in names:
        mod = importlib.import_module(f"benchmarks.bench_{name}")
        t0 = time.perf_counter()
        print(f"# {name} ...", file=sys.stderr, flush=True)
        for r in mod.run(args.quick):
            peer = f"{r.peer:.4g} {r.unit} ({r.peer_name})" if r.peer is not None else "-"
            ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
            line = f"| {r.benchmark} | {r.ours:.4g} {r.unit} | {peer} | {ratio} | {r.target} | {r.note} |"
            lines.append(line)
            print(line, flush=True)
        print(f"# {name} took {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
    out = here / "results" / "latest.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
