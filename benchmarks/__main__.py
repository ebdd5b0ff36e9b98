"""Run the benchmarks: `python -m benchmarks [--only NAME[,NAME]] [--quick]` (or `scripts/bench`).

Every module ``benchmarks/bench_<name>.py`` defines ``run(quick: bool) -> list[Row]``; each row
compares our figure with a peer library or the naive method measured in the same run. The table
is printed and written to ``benchmarks/results/latest.md``, and each benchmark's rows also to
``benchmarks/results/<name>.md`` (with the date and whether the run was ``--quick``), so a run of
one benchmark keeps the others' last tables.
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
    ap.add_argument("--threads", type=int, default=2, help="torch (and so ONNX Runtime) threads of both sides "
                    "(1 on a machine others are using: a 2-thread torch pass waiting on a busy core slows "
                    "many times over, which would flatter whichever side does not use torch)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    here = Path(__file__).parent
    names = sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
    lines = ["| benchmark | ours | peer / naive | ratio | target | note |", "|---|---|---|---|---|---|"]
    for name in names:
        mod = importlib.import_module(f"benchmarks.bench_{name}")
        t0 = time.perf_counter()
        print(f"# {name} ...", file=sys.stderr, flush=True)
        own = lines[:2]
        for r in mod.run(args.quick):
            peer = f"{r.peer:.4g} {r.unit} ({r.peer_name})" if r.peer is not None else "-"
            ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
            line = f"| {r.benchmark} | {r.ours:.4g} {r.unit} | {peer} | {ratio} | {r.target} | {r.note} |"
            lines.append(line)
            own.append(line)
            print(line, flush=True)
        took = time.perf_counter() - t0
        print(f"# {name} took {took:.0f}s", file=sys.stderr, flush=True)
        (here / "results").mkdir(exist_ok=True)
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        (here / "results" / f"{name}.md").write_text(
            f"`python -m benchmarks --only {name}{' --quick' if args.quick else ''}`, {stamp}, {took:.0f} s, "
            f"{torch.get_num_threads()} threads\n\n" + "\n".join(own) + "\n")
    out = here / "results" / "latest.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
