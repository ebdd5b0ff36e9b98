"""Max-activating patches: streaming top-k over a dataset vs the plain forward and a naive pass.

Setup: mobilenet_v2 (offline weights), 2,000 images of ``sample_dataset`` at 224 px (200 with
--quick), every channel of one layer, k = 9, batch 32, 2 threads.

* ours:   ``top_activations(model, images, layer, channels=None, k=9)`` (one pass, running top-k).
* plain:  ``batched_forward`` to the same layer, activations discarded (the ceiling: 100% = free
          bookkeeping). Target: ours >= 80% of it.
* naive:  one pass per channel (forward to the layer, keep that channel's top-k), i.e. what a
          per-neuron script does; timed on 2 channels over 128 images and scaled to all channels
          (it is linear in both). Target: ours >= 10x.

The dataset is cut into chunks and the plain / ours passes alternate chunk by chunk, so load from
other processes on the machine hits both alike.
"""
from __future__ import annotations

import time

import torch

from .common import Row

LAYERS = ["features.6", "features.10"]


def _plain(model, x, layer):
    from convlens.drivers import batched_forward
    for _ in batched_forward(model, x, layer, batch_size=32):
        pass


def _ours(model, x, layer, state=None):
    from convlens.inspect import top_activations
    return top_activations(model, x, layer, None, k=9, batch_size=32, state=state)


def _naive(model, x, layer, channels):
    """The per-channel script: for each channel a full pass, concatenating its activations' top-k."""
    from convlens.drivers import batched_forward
    for c in channels:
        best_v = torch.full((9,), float("-inf"))
        best_i = torch.zeros(9, dtype=torch.long)
        for b in batched_forward(model, x, layer, batch_size=32):
            a = b.activations[layer][:, c].reshape(-1)
            v, i = a.topk(min(9, a.numel()))
            allv = torch.cat([best_v, v])
            alli = torch.cat([best_i, i + b.start * a.numel() // len(b)])
            best_v, o = allv.topk(9)
            best_i = alli[o]


def run(quick: bool) -> list[Row]:
    import convlens
    from convlens.inspect import sample_dataset

    torch.set_num_threads(2)
    model = convlens.load_model()
    n = 200 if quick else 2000
    chunk = 100 if quick else 250
    t0 = time.perf_counter()
    x = sample_dataset(n, size=224).tensor()
    gen = time.perf_counter() - t0
    rows = []
    for layer in (LAYERS[:1] if quick else LAYERS):
        C = model.layer_info(layer).shape[0]
        _plain(model, x[:32], layer)
        _ours(model, x[:32], layer)  # warm-up (channels_last copy, layer shapes)
        t_plain = t_ours = 0.0
        state = None
        for s in range(0, n, chunk):
            xs = x[s:s + chunk]
            t = time.perf_counter()
            _plain(model, xs, layer)
            t_plain += time.perf_counter() - t
            t = time.perf_counter()
            # the same running state across chunks: exactly one streaming pass over all n images
            state = _ours(model, x[:s + chunk], layer, state=state)
            t_ours += time.perf_counter() - t
        assert state.n_images == n
        n_naive, ch_naive = 128, [0, 1]
        t = time.perf_counter()
        _naive(model, x[:n_naive], layer, ch_naive)
        t_naive_all = (time.perf_counter() - t) / len(ch_naive) * C / n_naive * n
        ours_ips, plain_ips, naive_ips = n / t_ours, n / t_plain, n / t_naive_all
        name = f"top-9 patches, mobilenet_v2 {layer} (all {C} ch), {n} imgs @224"
        rows.append(Row(name + " vs plain forward", ours_ips, plain_ips, "img/s", "batched_forward to the layer",
                        target=">= 0.8x", note=f"bookkeeping overhead {100 * (t_ours / t_plain - 1):+.1f}%"))
        rows.append(Row(name + " vs naive per-channel", ours_ips, naive_ips, "img/s",
                        f"one pass per channel (x{C})", target=">= 10x",
                        note=f"naive timed on {len(ch_naive)} ch x {n_naive} imgs, scaled; dataset built in {gen:.0f}s"))
    return rows
