"""Texture and style benchmarks.

Rows:
  * Efros-Leung 64x64 -> 128x128, window 11 (brick): the batched matrix-product search against the
    straightforward per-pixel NumPy loop (same onion layers, broadcast masked SSD per pixel), same
    run (target: >= 50x). Quick mode extrapolates the naive loop from its first 1500 pixels.
  * Wei-Levoy 64 -> 128, 3 levels: tree-structured VQ search against exact search (time; for the
    quality see the docs figure: on brick the exact search keeps the mortar lines, TSVQ loses them).
  * Image quilting 64 -> 128 (seconds).
  * Gatys style transfer at 256 px on vgg16-hed: seconds per L-BFGS step (setup excluded) against
    one bare forward + backward of the network truncated at relu5_1 (target: overhead < 10%).
  * Fast-style apply at 512 x 512: full width (32) and half width (16) networks (target: half width
    under 0.3 s on 2 cores).
"""
from __future__ import annotations

import time

import numpy as np
import torch

from .common import Row, bare_feature_step, timeit


def run(quick: bool) -> list[Row]:
    import convlens
    from convlens.images import fit
    from convlens.recipes.fast_style import TransformerNet, load_fast_style
    from convlens.recipes.style import STYLE_LAYERS, style_transfer
    from convlens.texture.common import as_sample, window_found_rate
    from convlens.texture.efros_leung import efros_leung, efros_leung_naive
    from convlens.texture.quilting import quilting
    from convlens.texture.wei_levoy import wei_levoy

    torch.set_num_threads(2)
    rows = []
    brick = fit(convlens.sample_image("brick"), 128)[..., 32:96, 32:96]  # 64x64, 2 bricks high

    t = time.perf_counter()
    fast = efros_leung(brick, 128, window=11, seed=0)
    t_fast = time.perf_counter() - t
    total = 128 * 128 - 9
    if quick:
        n = 1500
        t = time.perf_counter()
        efros_leung_naive(brick, 128, window=11, seed=0, max_pixels=n)
        t_naive = (time.perf_counter() - t) * total / n
        note = f"naive extrapolated from {n} pixels"
    else:
        t = time.perf_counter()
        efros_leung_naive(brick, 128, window=11, seed=0)
        t_naive = time.perf_counter() - t
        note = "naive run in full"
    rows.append(Row("Efros-Leung 64->128 px, window 11 (brick)", t_fast, t_naive, "s", "per-pixel NumPy loop",
                    ">= 50x", higher_is_better=False, note=note))

    size = 96 if quick else 128
    s = as_sample(brick)[..., 0]
    res = {}
    for search in ("exact", "tsvq"):
        t = time.perf_counter()
        wei_levoy(brick, size, window=9, levels=3, search=search, seed=0)
        res[search] = time.perf_counter() - t
    rows.append(Row(f"Wei-Levoy 64->{size} px, 3 levels: TSVQ vs exact search", res["tsvq"], res["exact"], "s",
                    "exact search", "report", higher_is_better=False, note="TSVQ includes building the trees"))
    t = time.perf_counter()
    q = quilting(brick, 128, block=24, seed=0)
    rows.append(Row("Image quilting 64->128 px, block 24", time.perf_counter() - t, None, "s",
                    note=f"5x5 windows found: {window_found_rate(q.array, s, 5):.0%}"))

    # Gatys: seconds per step vs a bare forward+backward of the truncated network
    m = convlens.load_model("vgg16-hed")
    ssize = 128 if quick else 256
    n1, n2 = (2, 5) if quick else (3, 13)
    content, style = fit(convlens.sample_image("chelsea"), ssize), fit(convlens.texture_image("ihc"), ssize)
    x = content.clone()
    layers = list(STYLE_LAYERS["vgg16-hed"][1]) + list(STYLE_LAYERS["vgg16-hed"][0])

    t_bare = timeit(lambda: bare_feature_step(m, x, layers), repeat=3 if quick else 7, warmup=1)
    times = {}
    for n in (n1, n2):
        t = time.perf_counter()
        style_transfer(m, content, style, size=ssize, steps=n)
        times[n] = time.perf_counter() - t
    t_step = (times[n2] - times[n1]) / (n2 - n1)
    rows.append(Row(f"Gatys step {ssize}px vgg16-hed (L-BFGS)", t_step * 1e3, t_bare * 1e3, "ms",
                    "bare truncated fwd+bwd", "overhead < 10%", higher_is_better=False,
                    note=f"overhead {100 * (t_step / t_bare - 1):+.1f}%"))

    # fast style apply at 512 px
    img = torch.rand(1, 3, 512, 512)
    half = load_fast_style("ihc")   # the convlens-trained half-width net (the default is now the trained 26-style one)
    torch.manual_seed(0)
    full = TransformerNet(32).eval()
    with torch.inference_mode():
        t_full = timeit(lambda: full(img), repeat=3 if quick else 5, warmup=1)
        t_half = timeit(lambda: half(img), repeat=3 if quick else 5, warmup=1)
    rows.append(Row("fast-style apply 512x512, half width (16)", t_half * 1e3, t_full * 1e3, "ms",
                    "full width (32)", "half < 300 ms", higher_is_better=False, note="2 threads"))
    np.random.seed(0)
    return rows
