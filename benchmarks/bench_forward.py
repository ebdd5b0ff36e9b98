"""Forward-only passes (driver 4): convlens's default path against the runtimes a user could pick.

Same weights, same images, batch 32 at 224 px, 2 threads, one run (issue 9):

* convlens default: ``batched_forward(model, x[, layer])`` with ``backend="auto"`` once the export
  is cached (the steady state: a second run, or any pass long enough to export; the first export's
  cost is its own row).
* hand-built ORT: an onnxruntime ``InferenceSession`` on the very same exported ``.onnx`` file with
  2 intra-op threads and onnxruntime's defaults, fed numpy batches in a loop. Target >= 0.95x.
  Also the same session with convlens's options (no spin-waiting threads), i.e. our overhead alone.
* torch twin: ``backend="torch"`` (what ``batched_forward`` did before issue 9: BN folded into the
  convs, channels_last; for a layer, a channels_last copy stopped after the layer by a hook).
* eager channels_last: the plain module in channels_last, batches under ``inference_mode``.
* naive: one image at a time through the plain module (the issue-2 baseline).

The variants run in turn, round after round, and each keeps its best round, so load from other
processes on the machine (it is shared) hits them alike. Also: the export's cost and the start
from the disk cache; max-activating patches over 2,000 images (256 with --quick) with the
default path against ``backend="torch"``; occlusion's incremental torch path against whole
passes in onnxruntime (the rule occlusion follows).
"""
from __future__ import annotations

import time

import torch
from torch.utils.flop_counter import FlopCounterMode

import convlens
from benchmarks.common import Row, cold_export_cache, matmul_peak_gflops, race

LAYER = {"mobilenet_v2": "features.10", "resnet18": "layer3"}


def _flops(model, size) -> float:
    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        model(torch.rand(1, 3, size, size))
    return fc.get_total_flops()


def _session(path, threads, spin: bool = True):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    if not spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def run(quick: bool = False) -> list[Row]:
    from convlens.drivers import onnx as ob

    with cold_export_cache():   # the export row measures a real export
        return _run(quick, ob)


def _run(quick, ob) -> list[Row]:
    threads = 2
    torch.set_num_threads(threads)
    rows = []
    n = 64 if quick else 128
    rounds = 3 if quick else 5
    peak = matmul_peak_gflops()
    rows.append(Row("fp32 matmul peak (2048^3)", peak, None, "GFLOP/s", note="this machine, this run"))
    for name in ("mobilenet_v2", "resnet18"):
        model = convlens.load_model(name, weights=None if name != "mobilenet_v2" else "default")
        x = torch.rand(n, 3, 224, 224)
        for layer in (None, LAYER[name]):
            what = f"{name} {'logits' if layer is None else layer}"
            layers = [layer] if layer else []
            # the first export (cold cache) and the start from the disk cache (a new process)
            ob.clear_memory_cache()
            t = time.perf_counter()
            runner = ob.get_runner(model, layers, True, (224, 224), threads)
            t_export = time.perf_counter() - t
            list(convlens.batched_forward(model, x[:32], layer, threads=threads, backend="onnxruntime"))  # checks it
            ob.clear_memory_cache()
            t = time.perf_counter()
            runner = ob.get_runner(model, layers, True, (224, 224), threads)
            t_start = time.perf_counter() - t
            assert runner is not None and runner.verified, f"{what}: the export did not pass its check"
            sess, sess_nospin = _session(runner.path, threads), _session(runner.path, threads, spin=False)
            xn = x.numpy()

            def ours():
                for b in convlens.batched_forward(model, x, layer, threads=threads):
                    assert b.backend == "onnxruntime"

            def hand_ort(s=sess):
                for i in range(0, n, 32):
                    s.run(None, {"images": xn[i:i + 32]})

            def hand_ort_nospin():
                hand_ort(sess_nospin)

            def twin():
                for _ in convlens.batched_forward(model, x, layer, threads=threads, backend="torch"):
                    pass

            def eager_cl():
                net = convlens.drivers.forward.inference_twin(model, True, fuse_bn=False)
                with torch.inference_mode():
                    for i in range(0, n, 32):
                        if layer is None:
                            net(x[i:i + 32].contiguous(memory_format=torch.channels_last))
                        else:
                            with convlens.Probe(net, layer, detach=True, stop=True) as p:
                                p.run(x[i:i + 32].contiguous(memory_format=torch.channels_last))

            fns = {"ours": ours, "ort": hand_ort, "ort_nospin": hand_ort_nospin, "twin": twin, "eager": eager_cl}
            if layer is None:
                def naive():
                    with torch.inference_mode():
                        for i in range(n // 4):  # a quarter of the images, scaled
                            model(x[i:i + 1])
                fns["naive"] = naive
            t = race(fns, rounds)
            ips = n / t["ours"]
            rows.append(Row(f"{what}: convlens default (export cached) vs hand-built ORT session", ips,
                            n / t["ort"], "img/s", "onnxruntime by hand", target=">= 0.95x",
                            note="ORT defaults (spin-waiting threads)"))
            rows.append(Row(f"{what}: convlens default vs hand-built ORT session, same options", ips,
                            n / t["ort_nospin"], "img/s", "onnxruntime by hand, no spin", target=">= 0.95x",
                            note="convlens's overhead alone"))
            rows.append(Row(f"{what}: convlens default vs torch twin (backend='torch')", ips, n / t["twin"],
                            "img/s", "torch twin", note="BN folded, channels_last" if layer is None else "hook stop"))
            rows.append(Row(f"{what}: convlens default vs eager channels_last", ips, n / t["eager"], "img/s",
                            "eager channels_last"))
            if layer is None:
                rows.append(Row(f"{what}: convlens default vs naive 1-by-1 loop", ips, (n // 4) / t["naive"],
                                "img/s", "naive loop"))
                gflops = _flops(model, 224) * ips / 1e9
                rows.append(Row(f"{name} effective GFLOP/s vs matmul peak", gflops, peak, "GFLOP/s", "matmul peak",
                                note="ratio = fraction of peak"))
            rows.append(Row(f"{what}: export (cold cache) / start from the disk cache", t_export, t_start, "s",
                            "start from disk", higher_is_better=False,
                            note="ratio = how much faster a cached start is"))
    rows += _patches(quick)
    rows += _occlusion(quick)
    return rows


def _patches(quick) -> list[Row]:
    """Max-activating patches (every channel of features.10, k=9) over a dataset: default vs torch."""
    from convlens.drivers import onnx as ob
    from convlens.inspect import max_activating_patches, sample_dataset
    model = convlens.load_model()
    n = 256 if quick else 2000
    ds = sample_dataset(n)
    ob.clear_memory_cache()
    times = {}
    for backend in ("torch", "auto"):  # auto from a cold cache: its export is part of its time
        t = time.perf_counter()
        p = max_activating_patches(model, ds, "features.10", None, k=9, threads=2, backend=backend)
        times[backend] = time.perf_counter() - t
        if backend == "torch":
            ref = p.top.values
        else:
            from convlens.drivers.onnx import rel_diff
            assert rel_diff(ref, p.top.values) <= 1e-4
    return [Row(f"max-activating patches, features.10, all channels, {n} images: default (auto, cold cache) "
                f"vs backend='torch'", n / times["auto"], n / times["torch"], "img/s", "torch (before)",
                note="includes the export")]


def _occlusion(quick) -> list[Row]:
    """Occlusion 16x16 (stride 16 with --quick, else 8): the incremental torch path (forced) vs whole
    passes in ORT (the comparison the occlusion auto path's cost model makes)."""
    from convlens.drivers import onnx as ob
    rows = []
    for name in ("mobilenet_v2",) if quick else ("mobilenet_v2", "resnet18"):
        model = convlens.load_model(name, weights=None if name != "mobilenet_v2" else "default")
        cat = convlens.sample_image("chelsea", 224)
        ob.clear_memory_cache()
        convlens.occlusion(model, cat, window=64, stride=64, backend="onnxruntime")  # export + check outside the timing
        st = 16 if quick else 8
        t = race({"inc": lambda: convlens.occlusion(model, cat, window=16, stride=st, incremental=True),
                   "ort": lambda: convlens.occlusion(model, cat, window=16, stride=st, backend="onnxruntime")},
                  2, warmup=False)
        rows.append(Row(f"occlusion 16x16/{st}, {name}: incremental torch vs whole passes in onnxruntime",
                        t["inc"], t["ort"], "s", "whole passes, ORT", higher_is_better=False,
                        note="> 1x: incremental is the faster path here"))
    return rows
