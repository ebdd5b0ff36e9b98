"""Synthesis benchmarks: loop overhead vs a bare forward+backward, truncation, end-to-end timings.

Rows:
  * loop step vs bare step: one ``optimize`` step (pixel param, channel objective at features.10,
    no transforms) against one bare forward+backward of the same truncated network measured in the
    same run (target: overhead under 10%).
  * truncated vs full network per step for the same objective.
  * class visualization, robust preset, 200 steps at 224 px on mobilenet_v2 (seconds).
  * DeepDream, 4 octaves x 10 steps, 512 px (seconds).
"""
from __future__ import annotations

import time

import torch

from .common import Row, timeit


def run(quick: bool) -> list[Row]:
    import convlens
    from convlens.optim import objectives as O
    from convlens.optim import params as P
    from convlens.probe.probe import Probe

    torch.set_num_threads(2)
    m = convlens.load_model()
    layer, size = "features.10", (128 if quick else 224)
    n = 5 if quick else 20
    rows = []

    # bare forward+backward of the truncated network, same image size and objective
    x = torch.rand(1, 3, size, size)

    def bare():
        xi = x.clone().requires_grad_(True)
        with Probe(m, layer, stop=True) as p:
            p.run(xi)
            a = p[layer]
        g, = torch.autograd.grad(-a[:, 3].mean(), xi)
        return g

    def full():
        xi = x.clone().requires_grad_(True)
        with Probe(m, layer) as p:
            m(xi)
            a = p[layer]
        g, = torch.autograd.grad(-a[:, 3].mean(), xi)
        return g

    def loop_steps():
        convlens.optimize(m, O.channel(layer, 3), P.PixelParam(x), steps=n, optimizer="adam", lr=0.01)

    t_bare = timeit(bare, repeat=n, warmup=2)
    t_full = timeit(full, repeat=n, warmup=2)
    t_loop = timeit(loop_steps, repeat=3, warmup=1) / n
    rows.append(Row(f"loop step vs bare fwd+bwd ({layer}, {size}px)", t_loop * 1e3, t_bare * 1e3, "ms",
                    "bare truncated fwd+bwd", "overhead < 10%", higher_is_better=False,
                    note=f"overhead {100 * (t_loop / t_bare - 1):+.1f}%"))
    rows.append(Row(f"truncated vs full network per step ({layer})", t_bare * 1e3, t_full * 1e3, "ms",
                    "full network", "faster", higher_is_better=False))

    steps = 20 if quick else 200
    t = time.perf_counter()
    convlens.visualize_class(m, "flamingo", steps=steps, size=224)
    rows.append(Row(f"classviz robust {steps} steps 224px mobilenet_v2", time.perf_counter() - t, None, "s",
                    note="1 image, 2 threads"))

    dsize, octs, dsteps = (256, 2, 3) if quick else (512, 4, 10)
    img = torch.nn.functional.interpolate(convlens.sample_image("chelsea"), size=(dsize, dsize), mode="bilinear")
    t = time.perf_counter()
    convlens.deepdream(m, img, "features.10", octaves=octs, steps=dsteps)
    rows.append(Row(f"deepdream {octs} octaves x {dsteps} steps {dsize}px", time.perf_counter() - t, None, "s",
                    note="features.10, 2 threads"))
    return rows
