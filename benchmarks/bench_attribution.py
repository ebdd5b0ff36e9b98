"""Attribution speed against Captum, measured in the same run on the same convlens.Model.

Rows (224 px, 2 threads): saliency and guided backprop ms/image at batch 1 and 16; occlusion with a
16x16 window and stride 8 (729 perturbations) against Captum at its best ``perturbations_per_eval``
(picked by timing Captum on a 7x7-window run), with the outputs compared, and against our own whole
passes (incremental recomputation off: what it saves); SmoothGrad (25 samples)
and integrated gradients (50 steps) per image. Ours and Captum's calls alternate, medians are kept,
so load from other processes hits both alike.
"""
from __future__ import annotations

import time
import warnings

import torch

from .common import Row, alternated, captum_occlusion_ppe

warnings.filterwarnings("ignore")



def run(quick: bool) -> list[Row]:
    import convlens
    from captum.attr import GuidedBackprop, IntegratedGradients, NoiseTunnel, Occlusion, Saliency

    rows: list[Row] = []
    size = 112 if quick else 224
    rep = 2 if quick else 5
    for name in ("mobilenet_v2", "resnet18"):
        m = convlens.load_model(name, weights="default" if name == "mobilenet_v2" else None)
        cat = convlens.sample_image("chelsea", size)
        tag = f"{name} {size}px"
        note6 = " (Captum leaves ReLU6 alone: plain gradient)" if name == "mobilenet_v2" else ""
        for bs in (1, 16):
            x = cat.expand(bs, -1, -1, -1).contiguous() + 0.01 * torch.rand(bs, 3, size, size)
            t = m.targets(None, x)
            sal, csal = alternated(lambda: convlens.saliency(m, x, t),
                              lambda: Saliency(m).attribute(x, target=t, abs=True).amax(1), rep)
            rows.append(Row(f"saliency {tag} batch {bs}", 1e3 * sal / bs, 1e3 * csal / bs, "ms/img", "captum",
                            "<= captum", higher_is_better=False))
            gb, cgb = alternated(lambda: convlens.guided_backprop(m, x, t),
                            lambda: GuidedBackprop(m).attribute(x, target=t), rep)
            rows.append(Row(f"guided backprop {tag} batch {bs}", 1e3 * gb / bs, 1e3 * cgb / bs, "ms/img", "captum",
                            "<= captum", higher_is_better=False, note=note6))
        # occlusion: Captum's best perturbations_per_eval on a small run, then the real one
        t = m.targets(None, cat)
        occ = Occlusion(lambda z: m(z).softmax(-1))
        best = captum_occlusion_ppe(occ, cat, t)
        t0 = time.perf_counter()
        ref = occ.attribute(cat, target=t, sliding_window_shapes=(3, 16, 16), strides=(3, 8, 8), baselines=0.0,
                            perturbations_per_eval=best)
        tc = time.perf_counter() - t0
        convlens.occlusion(m, cat[..., :64, :64], t, window=16, stride=16)  # builds the cached twin
        t0 = time.perf_counter()
        ours = convlens.occlusion(m, cat, t, window=16, stride=8, baseline="zero")
        to = time.perf_counter() - t0
        t0 = time.perf_counter()
        plain = convlens.occlusion(m, cat, t, window=16, stride=8, baseline="zero", incremental=False)
        tw = time.perf_counter() - t0
        diff = float((ours.map - ref[:, 0]).abs().max() / ref.abs().max())
        same = float((ours.map - plain.map).abs().max() / plain.map.abs().max())
        n = ours.info["grid"].numel()
        rows.append(Row(f"occlusion {tag} 16x16/8 ({n} windows)", to, tc, "s/img", f"captum ppe={best}",
                        ">= 1.5x faster", higher_is_better=False,
                        note=f"ours batch {ours.info['batch_size']}; max rel diff {diff:.1e}"))
        rows.append(Row(f"occlusion {tag}: auto path vs whole passes", to, tw, "s/img", "ours, whole passes",
                        "report", higher_is_better=False, note=f"max rel diff {same:.1e}"))
        # SmoothGrad and IG per image
        ns = 8 if quick else 25
        sg, csg = alternated(lambda: convlens.smoothgrad(m, cat, t, samples=ns, batch_size=ns),
                        lambda: NoiseTunnel(Saliency(m)).attribute(cat, target=t, nt_type="smoothgrad",
                                                                   nt_samples=ns, nt_samples_batch_size=ns,
                                                                   stdevs=0.15, abs=True), max(1, rep // 2))
        rows.append(Row(f"smoothgrad {tag} {ns} samples", sg, csg, "s/img", "captum NoiseTunnel", "report",
                        higher_is_better=False))
        st = 16 if quick else 50
        ig, cig = alternated(lambda: convlens.integrated_gradients(m, cat, t, steps=st, batch_size=16),
                        lambda: IntegratedGradients(m).attribute(cat, target=t, n_steps=st, internal_batch_size=16),
                        max(1, rep // 2))
        rows.append(Row(f"integrated gradients {tag} {st} steps", ig, cig, "s/img", "captum", "report",
                        higher_is_better=False))
    return rows
