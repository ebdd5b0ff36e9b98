"""Batched forward throughput (driver 4) vs a naive one-image-at-a-time loop, and GFLOP/s vs matmul peak.

Targets (issue 2): batched >= 3x naive; resnet18 no slower than channels_last eager batching.
"""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

import convlens
from benchmarks.common import Row, matmul_peak_gflops, timeit


def _flops(model, size) -> float:
    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        model(torch.rand(1, 3, size, size))
    return fc.get_total_flops()


def run(quick: bool = False) -> list[Row]:
    rows = []
    n = 32 if quick else 128
    peak = matmul_peak_gflops()
    rows.append(Row("fp32 matmul peak (2048^3)", peak, None, "GFLOP/s", note="this machine, this run"))
    for name in ("mobilenet_v2", "resnet18"):
        model = convlens.load_model(name, weights=None if name != "mobilenet_v2" else "default")
        x = torch.rand(n, 3, 224, 224)

        def naive():
            with torch.no_grad():
                for i in range(n):
                    model(x[i:i + 1])

        def driver():
            for _ in convlens.batched_forward(model, x, batch_size=32):
                pass

        def eager_cl():  # the reference the issue names: plain channels_last eager batches
            twin = convlens.drivers.forward.inference_twin(model, True, fuse_bn=False)
            with torch.inference_mode():
                for i in range(0, n, 32):
                    twin(x[i:i + 32].contiguous(memory_format=torch.channels_last))

        def eager_contig():
            with torch.inference_mode():
                for i in range(0, n, 32):
                    model(x[i:i + 32])

        reps = 2 if quick else 3
        t_naive = timeit(naive, repeat=reps)
        t_drv = timeit(driver, repeat=reps)
        t_cl = timeit(eager_cl, repeat=reps)
        t_ct = timeit(eager_contig, repeat=reps)
        ips = n / t_drv
        rows.append(Row(f"{name} batched driver vs naive 1-by-1 loop", ips, n / t_naive, "img/s",
                        "naive loop", target=">= 3x"))
        rows.append(Row(f"{name} batched driver vs channels_last eager", ips, n / t_cl, "img/s",
                        "eager channels_last", target=">= 1x"))
        rows.append(Row(f"{name} batched driver vs contiguous eager", ips, n / t_ct, "img/s",
                        "eager contiguous", note="why channels_last is the default"))
        gflops = _flops(model, 224) * n / t_drv / 1e9
        rows.append(Row(f"{name} effective GFLOP/s vs matmul peak", gflops, peak, "GFLOP/s", "matmul peak",
                        note="ratio = fraction of peak"))
    return rows
