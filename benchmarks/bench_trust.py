"""Speed a user notices (issue 19, items 16-20), each against the old way or the peer, same run.

* 16 receptive fields of every conv layer of MobileNetV2 and ResNet-50 (weights=None): the analytic
  path (one fx trace + one forward, from a cold cache) vs the gradient method as it was before (a
  fresh linearized copy per layer), timed on a few layers and extrapolated to all of them.
* 17 ``convlens --help`` wall time in a fresh subprocess (no peer; target < 1 s).
* 18 ``convlens.project`` PCA and t-SNE of 20 points, first call in a fresh process that has
  imported convlens (no peer; target < 1 s).
* 19 occlusion 16x16 windows on MobileNetV2 (offline weights) at 112 px (stride 8) and 224 px
  (stride 8, 16 with --quick): ``incremental="auto"`` vs whole passes vs Captum at its best
  ``perturbations_per_eval``, run in turn round after round, best round kept (whole passes may run
  in onnxruntime: the user's export cache, as a second run would have it).
* 20 the ONNX Runtime backend's session (spin-waiting decided from the machine's idle cores when it
  is made) vs a plain ``onnxruntime.InferenceSession`` with onnxruntime's defaults on the same
  exported MobileNetV2, batches of 32 at 224 px, run in turn, best round kept.

The machine is shared (2 cores, several engineers' jobs): ratios come from calls alternated in one
run, absolute times move with the load.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

from .common import Row, alternated, captum_occlusion_ppe, cold_export_cache, race

warnings.filterwarnings("ignore")
SRC = str(Path(__import__("convlens").__file__).resolve().parents[1])


def run(quick: bool) -> list[Row]:
    return _receptive_fields(quick) + _help(quick) + _project(quick) + _occlusion(quick) + _ort_spin(quick)


def _receptive_fields(quick: bool) -> list[Row]:
    import convlens
    import importlib
    rfm = importlib.import_module("convlens.probe.receptive_field")
    rows = []
    for name in ("mobilenet_v2", "resnet50"):
        m = convlens.load_model(name, weights=None)
        conv = [li.name for li in m.layers() if li.is_conv]
        rfm._ANALYTIC.clear(), rfm._CACHE.clear(), rfm._LINEAR.clear()
        t0 = time.perf_counter()
        fields = rfm.receptive_fields(m, conv)
        analytic = time.perf_counter() - t0
        sample = [conv[len(conv) // 4], conv[len(conv) // 2]] + ([] if quick else [conv[-1]])
        per = []
        for layer in sample:  # the old cost: a fresh linearized copy and the doubling search, per layer
            rfm._CACHE.clear(), rfm._LINEAR.clear()
            t0 = time.perf_counter()
            assert rfm.receptive_field(m, layer, method="gradient") == fields[layer]
            per.append(time.perf_counter() - t0)
        old = sum(per) / len(per) * len(conv)
        rows.append(Row(f"receptive fields of all {len(conv)} conv layers, {name}: analytic vs gradient method "
                        f"per layer", analytic, old, "s", "gradient (old), extrapolated", "< 2 s",
                        higher_is_better=False,
                        note=f"gradient timed on {', '.join(sample)}: {', '.join(f'{p:.1f}' for p in per)} s"))
    return rows


def _subprocess_s(code: list[str], repeat: int) -> float:
    env = {**os.environ, "PYTHONPATH": SRC}
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, *code], env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def _help(quick: bool) -> list[Row]:
    s = _subprocess_s(["-m", "convlens", "--help"], 2 if quick else 5)
    return [Row("`convlens --help` wall time (fresh process)", s, None, "s", target="< 1 s",
                higher_is_better=False, note="median; torch is not imported (item 17)")]


def _project(quick: bool) -> list[Row]:
    """The first call in a fresh process, split: importing convlens's library (torch) and the projection's
    own packages, then the call itself (item 18: the computation on small inputs must be instant)."""
    rows = []
    for method, package in (("pca", "sklearn.decomposition"), ("tsne", "openTSNE")):
        code = ("import time, importlib, numpy as np\n"
                "t0 = time.perf_counter(); P = importlib.import_module('convlens.embed.project')\n"
                f"importlib.import_module('{package}'); t1 = time.perf_counter()\n"
                "x = np.random.default_rng(0).standard_normal((20, 64)).astype('float32')\n"
                f"P.project(x, '{method}'); t2 = time.perf_counter()\n"
                "print(t1 - t0, t2 - t1)")
        env = {**os.environ, "PYTHONPATH": SRC}
        runs = [tuple(map(float, subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                                                text=True).stdout.strip().splitlines()[-1].split()))
                for _ in range(1 if quick else 3)]
        imports, call = min(r[0] for r in runs), min(r[1] for r in runs)
        rows.append(Row(f"convlens.project {method} of 20 points, first call in a fresh process (after imports)", call,
                        None, "s", target="< 1 s", higher_is_better=False,
                        note=f"imports before it (torch, {package}): {imports:.2f} s"))
    return rows


def _occlusion(quick: bool) -> list[Row]:
    import convlens
    from captum.attr import Occlusion
    rows = []
    m = convlens.load_model()
    for size, stride in ((112, 8), (224, 16 if quick else 8)):
        cat = convlens.sample_image("chelsea", size)
        t = m.targets(None, cat)
        occ = Occlusion(lambda z: m(z).softmax(-1))
        best = captum_occlusion_ppe(occ, cat, t)
        convlens.occlusion(m, cat[..., :64, :64], t, window=16, stride=16)  # builds the cached twin
        out = {}

        def auto():
            out["auto"] = convlens.occlusion(m, cat, t, window=16, stride=stride)

        def whole():
            out["whole"] = convlens.occlusion(m, cat, t, window=16, stride=stride, incremental=False)

        def captum():
            out["captum"] = occ.attribute(cat, target=t, sliding_window_shapes=(3, 16, 16), strides=(3, stride, stride),
                                          baselines=0.0, perturbations_per_eval=best)
        auto(), whole()  # warm-up (Captum was warmed by its trial runs)
        best_s = race({"auto": auto, "whole": whole, "captum": captum}, 2 if quick else 3, warmup=False)
        ta, tw, tc = best_s["auto"], best_s["whole"], best_s["captum"]
        r = out["auto"]
        diff = float((r.map - out["captum"][:, 0]).abs().max() / out["captum"].abs().max())
        c = r.info["choice"]
        how = (f"flops estimate {c['flops']:.2f}" + (f", probes inc {1e3 * c['incremental_s']:.0f} / whole "
                                                     f"{1e3 * c['whole_s']:.0f} ms/window" if c["whole_s"] else ""))
        path = "incremental" if r.info["incremental"] else "whole"
        n = r.info["grid"].numel()
        tag = f"occlusion mobilenet_v2 {size}px 16x16/{stride} ({n} windows)"
        rows.append(Row(f"{tag}: auto vs captum", ta, tc, "s/img", f"captum ppe={best}", ">= 1.5x",
                        higher_is_better=False, note=f"auto chose {path} ({how}); max rel diff {diff:.1e}"))
        rows.append(Row(f"{tag}: auto vs whole passes", ta, tw, "s/img", "ours, whole passes", ">= 1x",
                        higher_is_better=False, note=f"backend of whole passes: {out['whole'].info['backend']}"))
    return rows


def _ort_spin(quick: bool) -> list[Row]:
    import onnxruntime as ort

    import convlens
    from convlens.drivers import onnx as ob
    with cold_export_cache():
        ob.clear_memory_cache()
        m = convlens.load_model()
        n = 64 if quick else 128
        x = torch.rand(n, 3, 224, 224)
        list(convlens.batched_forward(m, x[:32], threads=2, backend="onnxruntime"))  # export + check
        ob.clear_memory_cache()
        env_spin = os.environ.pop("CONVLENS_ORT_SPIN", None)
        idle = ob.measure_idle_cores()
        runner = ob.get_runner(m, [], True, (224, 224), 2)   # its spin setting is decided now
        if env_spin is not None:
            os.environ["CONVLENS_ORT_SPIN"] = env_spin
        plain = ort.InferenceSession(str(runner.path), providers=["CPUExecutionProvider"])
        xn = x.numpy()

        def ours():
            for i in range(0, n, 32):
                runner(x[i:i + 32])

        def peer():
            for i in range(0, n, 32):
                plain.run(None, {"images": xn[i:i + 32]})
        to, tp = alternated(ours, peer, 3 if quick else 5, stat="min")
        return [Row("ORT MobileNetV2 224px batch 32: convlens session (auto spin) vs plain onnxruntime defaults",
                    n / to, n / tp, "img/s", "plain InferenceSession", ">= 0.95x",
                    note=f"auto chose spin={'on' if runner.spin else 'off'} (idle cores measured {idle:.2f})")]
