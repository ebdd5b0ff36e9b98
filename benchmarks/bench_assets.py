"""Benchmarks of the trained networks read from installed packages (issue 20).

Rows:
  * Fast style at 512 x 512 (the 26-style network, style 19): our PyTorch port exported to ONNX and run
    in onnxruntime (our backend) against onnxruntime running the wheel's own graph, same session options
    and thread budget, same run (target >= 1x); the eager PyTorch port against the same peer (reported).
  * Gatys style transfer step on vgg16-imagenet at 256 px (128 in quick mode): seconds per L-BFGS step
    (setup excluded, the difference of two run lengths) against one bare forward + backward of the
    network truncated at the deepest layer the losses need (target: overhead < 10%).
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from .common import Row, bare_feature_step, timeit


def _session(path, threads: int):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def fast_style_rows(quick: bool, threads: int = 2) -> list[Row]:
    from convlens.models.style_nets import load_multistyle, style_file
    from convlens.recipes.fast_style import export_onnx
    net = load_multistyle(19)
    x = torch.rand(1, 3, 512, 512)
    w = net.style.numpy()
    wheel = _session(style_file("multistyle26"), threads)
    with tempfile.TemporaryDirectory() as d:
        ours = _session(export_onnx(net, Path(d) / "ms.onnx"), threads)
    rep = 3 if quick else 7
    t_wheel = timeit(lambda: wheel.run(None, {"image": x.numpy(), "style_weights": w}), repeat=rep, warmup=1)
    t_ours = timeit(lambda: ours.run(None, {"image": x.numpy()}), repeat=rep, warmup=1)
    torch.set_num_threads(threads)
    with torch.inference_mode():
        t_torch = timeit(lambda: net(x), repeat=rep, warmup=1)
    peer = "onnxruntime on the wheel's graph"
    return [Row("fast style 512 px, our port exported, onnxruntime", t_ours * 1e3, t_wheel * 1e3, "ms", peer, ">= 1x",
                higher_is_better=False, note=f"{threads} threads"),
            Row("fast style 512 px, our port in eager PyTorch", t_torch * 1e3, t_wheel * 1e3, "ms", peer, "report",
                higher_is_better=False, note=f"{threads} threads")]


def gatys_row(quick: bool, threads: int = 2) -> Row:
    import convlens
    from convlens.images import fit
    from convlens.recipes.style import STYLE_LAYERS, style_transfer
    torch.set_num_threads(threads)
    m = convlens.load_model("vgg16-imagenet")
    size = 128 if quick else 256
    n2 = 7 if quick else 15
    content, style = fit(convlens.sample_image("chelsea"), size), fit(convlens.texture_image("starry_night"), size)
    layers = list(STYLE_LAYERS["vgg16-imagenet"][1]) + list(STYLE_LAYERS["vgg16-imagenet"][0])

    t_bare = timeit(lambda: bare_feature_step(m, content, layers), repeat=3 if quick else 7, warmup=1)
    stamps = []   # the median time between steps is robust to load spikes from other processes
    style_transfer(m, content, style, size=size, steps=n2, callback=lambda info: stamps.append(time.perf_counter()))
    t_step = float(torch.tensor(stamps).diff().median())
    return Row(f"Gatys step {size}px vgg16-imagenet (L-BFGS)", t_step * 1e3, t_bare * 1e3, "ms",
               "bare truncated fwd+bwd", "overhead < 10%", higher_is_better=False,
               note=f"overhead {100 * (t_step / t_bare - 1):+.1f}%")


def run(quick: bool) -> list[Row]:
    return [*fast_style_rows(quick), gatys_row(quick)]
