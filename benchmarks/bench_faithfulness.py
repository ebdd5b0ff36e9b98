"""Faithfulness metrics against Quantus 0.6 and Captum, same run, same maps, same values (issue 22).

Rows, for MobileNetV2 (offline weights) and ResNet-18 (random weights), on real sample images
(``sample_dataset``; 16 at 224 px; ``--quick``: MobileNetV2 only, 2 images at 112 px, one round), four
maps per image (saliency, Grad-CAM, a seeded random map, the Sobel edge map):

The images are made grey (their channel mean, on all three channels): Quantus's features are
pixel-channels (a map broadcast to (3, H, W), steps that must divide H * W), convlens removes whole
pixels, and on a grey image given to Quantus as one channel (its model repeats it to three, free) the
two are the same computation, with the same network cost. Quantus's ``ROAD`` also only runs so (on
colour images with one map per image it raises an IndexError: test_faithfulness_quantus.py).

* deletion, 98 steps: convlens's pixel flipping / deletion (all four maps in one pass of the
  perturbation driver) vs Quantus's ``PixelFlipping`` (the same curve: H * W / 98 pixels per step set
  to 0), one Quantus call per map. Quantus 0.6 has no insertion; convlens's insertion time (98 steps,
  the same pass from the blur) is in the note.
* ROAD, 9 percentages (``--quick``: 3), noise 0: convlens's ROAD vs Quantus's ``ROAD``.
* max-sensitivity of saliency, 10 samples, radius 0.02: convlens vs Captum's ``sensitivity_max`` with
  Captum's ``Saliency`` (max over channels, the same map), the same noise, 32 noisy images per batch.

Each row states the largest difference of the values. Calls alternate (``race``: best of the rounds), so
load from the other engineers' jobs on this shared 2-core machine hits both sides alike. The full run makes
one round (Quantus's side takes minutes per row) after a one-image warm-up of ours (the ONNX export on disk).

Two rows measure the *floor* each metric stands on, what no implementation of the same computation can
avoid:
* deletion's forward floor: every perturbed image (98 steps x 4 maps x N images) must go through the
  network once. Peer: the plain torch forward of that many images in batches of N (Quantus's batches),
  timed on 4 batches and scaled to the count. The ratio of our deletion row can only exceed this row's by
  what Quantus spends outside the network. The note gives our FLOP rate (torch's FLOP counter) beside the
  machine's fp32 matmul peak at the same thread count: the physical ceiling of any implementation.
* ROAD's solve floor: every (map, image, percentage) is one sparse linear system. Ours (a vectorized
  build plus CHOLMOD, or SuperLU without scikit-sparse: ``imputation.py``) vs Quantus's ``noisy_linear_imputation`` (a
  LIL build plus ``spsolve``), noise 0, on Grad-CAM's systems of the first 4 images at every percentage.
"""
from __future__ import annotations

import time
import warnings

import numpy as np
import torch

from .common import Row, matmul_peak_gflops, race

warnings.filterwarnings("ignore")


def _setup(name: str, n: int, size: int):
    import convlens
    from convlens.faithfulness import edge_map, random_map
    m = convlens.load_model(name, weights="default" if name == "mobilenet_v2" else None)
    x = convlens.sample_dataset(n, size, seed=0).tensor().mean(1, keepdim=True).expand(-1, 3, -1, -1).contiguous()
    t = m.targets(None, x)
    maps = torch.stack([convlens.saliency(m, x, t).upsampled(), convlens.grad_cam(m, x, t).upsampled(),
                        random_map(x, seed=0).float(), edge_map(x).float()]).double()
    # Grad-CAM's and the edge map's flat regions tie; Quantus's sort is not stable, convlens's is (row-major):
    # a 1e-9 seeded jitter makes the order, and so the curves, the same for both
    jitter = torch.rand(maps.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return m, x, t, maps + 1e-9 * jitter


class _Grey(torch.nn.Module):
    """Quantus's side of the model: one grey channel in, the convlens model on three equal channels."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, z):
        return self.m(z.expand(-1, 3, -1, -1))


def _gflop(m, x) -> float:
    """GFLOP of one image's forward pass (torch's FLOP counter)."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        m(x[:1])
    return fc.get_total_flops() / 1e9


def _warm(m, x, t, maps, percentages) -> None:
    """One image through each of our passes: the ONNX export on disk and its session in memory, as for
    any user's second call."""
    from convlens.faithfulness import PixelFlippingConfig, ROADConfig
    from convlens.faithfulness.flipping import _flip_scores
    from convlens.faithfulness.road import road_scores
    H, W = x.shape[-2:]
    _flip_scores(m, x[:1], t[:1], maps[:, :1], PixelFlippingConfig(pixels_per_step=H * W // 98, baseline="zero"))
    road_scores(m, x[:1], t[:1], maps[:, :1], ROADConfig(percentages=percentages[:1], noise=0.0))


def _deletion(name, m, x, t, maps, rounds) -> list[Row]:
    import quantus
    from convlens.faithfulness import PixelFlippingConfig
    from convlens.faithfulness.deletion import PerturbationCurveConfig, curve_scores
    from convlens.faithfulness.flipping import _flip_scores
    H, W = x.shape[-2:]
    per = H * W // 98
    c = PixelFlippingConfig(pixels_per_step=per, baseline="zero")
    out = {}

    def ours():
        out["ours"] = _flip_scores(m, x, t, maps, c)[1]

    def theirs():
        metric = quantus.PixelFlipping(abs=False, normalise=False, disable_warnings=True, features_in_step=per,
                                       perturb_baseline=0.0)
        out["quantus"] = np.stack([np.array(metric(model=_Grey(m).eval(), x_batch=x[:, :1].numpy(), y_batch=t.numpy(),
                                                   a_batch=a[:, None].numpy(), device="cpu")) for a in maps])

    best = race({"ours": ours, "quantus": theirs}, rounds, warmup=False)
    diff = float(np.abs(out["ours"][:, :, 1:].numpy() - out["quantus"]).max())
    t0 = time.perf_counter()
    curve_scores("insertion", m, x, t, maps, PerturbationCurveConfig(steps=98))
    ins = time.perf_counter() - t0
    n = x.shape[0]
    images = 98 * len(maps) * n
    batch = x[:, :1].expand(-1, 3, -1, -1).contiguous()
    with torch.inference_mode():
        m(batch)
        t0 = time.perf_counter()
        for _ in range(4):
            m(batch)
    floor = (time.perf_counter() - t0) / (4 * n) * images
    return [Row(f"deletion {name} {H}px, 98 steps, 4 maps x {n} images", best["ours"], best["quantus"], "s",
                "quantus PixelFlipping", ">= 10x", higher_is_better=False,
                note=f"max |diff| {diff:.1e} (probabilities); insertion (no Quantus peer): {ins:.2f} s"),
            Row(f"deletion's forward floor {name} {H}px: {images} perturbed images", best["ours"], floor, "s",
                "plain torch forwards, batches of N", "report", higher_is_better=False,
                note=f"the most any deletion can gain by running the network faster (ours: ONNX Runtime); "
                     f"ours computes {images * _gflop(m, x) / best['ours']:.0f} GFLOP/s, this machine's "
                     f"{torch.get_num_threads()}-thread fp32 matmul peak is {matmul_peak_gflops(1024):.0f} GFLOP/s")]


def _road(name, m, x, t, maps, percentages, rounds) -> list[Row]:
    from convlens.faithfulness import ROADConfig
    from convlens.faithfulness.road import road_scores
    c = ROADConfig(percentages=percentages, noise=0.0)
    out = {}

    def ours():
        out["ours"] = road_scores(m, x, t, maps, c).numpy()

    def theirs():
        import quantus
        metric = quantus.ROAD(abs=False, normalise=False, disable_warnings=True, percentages=list(percentages),
                              noise=0.0)
        out["quantus"] = np.stack([np.array(list(metric(model=_Grey(m).eval(), x_batch=x[:, :1].numpy(),
                                                        y_batch=t.numpy(), a_batch=a[:, None].numpy(),
                                                        device="cpu").values())) for a in maps])

    best = race({"ours": ours, "quantus": theirs}, rounds, warmup=False)
    diff = float(np.abs(out["ours"].mean(1) - out["quantus"]).max())      # Quantus: accuracy over the images
    H, W = x.shape[-2:]
    rows = [Row(f"ROAD {name} {H}px, {len(percentages)} percentages, 4 maps x {x.shape[0]} images", best["ours"],
                best["quantus"], "s", "quantus ROAD", ">= 10x", higher_is_better=False,
                note=f"max |diff| of the accuracy curves {diff:.1e}")]
    from quantus.functions.perturb_func import noisy_linear_imputation as quantus_imputation
    from convlens.faithfulness.imputation import linear_imputation
    img = x[:4].double().numpy()
    order = np.argsort(-maps[1, :4].reshape(len(img), -1).numpy(), axis=1, kind="stable")
    systems = [(img[i], order[i, :int(H * W * p / 100)]) for i in range(len(img)) for p in percentages]
    got = {}

    def removed(idx):
        r = np.zeros(H * W, bool)
        r[idx] = True
        return r.reshape(H, W)

    def solve_ours():
        got["ours"] = [linear_imputation(a, removed(idx)) for a, idx in systems]

    def solve_quantus():
        got["quantus"] = [quantus_imputation(a.copy(), indices=idx, noise=0.0) for a, idx in systems]

    solve = race({"ours": solve_ours, "quantus": solve_quantus}, 1, warmup=False)
    sdiff = max(float(np.abs(a - b).max()) for a, b in zip(got["ours"], got["quantus"]))
    from convlens.faithfulness.imputation import solve_workers, solver
    rows.append(Row(f"ROAD's solve floor {name} {H}px: {len(systems)} imputations (Grad-CAM, 4 images)", solve["ours"],
                    solve["quantus"], "s", "quantus noisy_linear_imputation", "report", higher_is_better=False,
                    note=f"max |diff| {sdiff:.1e}; ours: {solver()}, one process; the ROAD row: {solve_workers()} "
                         f"solve process(es)"))
    return rows


def _sensitivity(name, m, x, t, rounds) -> list[Row]:
    from captum.attr import Saliency
    from captum.metrics import sensitivity_max
    from convlens.faithfulness import max_sensitivity
    from convlens.faithfulness.sensitivity import sample_noise
    S, r = 10, 0.02
    noise = torch.stack([sample_noise(x.shape, k, r, 0, x.dtype) for k in range(S)])
    sal = Saliency(m)
    out = {}

    def one(inp):
        return inp[0] if isinstance(inp, tuple) else inp

    def ours():
        out["ours"] = max_sensitivity(m, x, "saliency", target=t, samples=S, radius=r, batch_size=32).value

    def perturb(inp, radius, used=[0]):  # noqa: B006 - Captum asks for k samples of every image at a time,
        inp = one(inp)                   # image-major (repeat_interleave): give it samples used .. used + k
        k = inp.shape[0] // x.shape[0]
        s0 = used[0] % S
        used[0] += k
        return inp + noise[s0:s0 + k].transpose(0, 1).reshape(inp.shape)

    def theirs():
        out["captum"] = sensitivity_max(
            lambda inp, target: (sal.attribute(one(inp), target=target, abs=True).amax(1, keepdim=True),), x,
            perturb_func=perturb, n_perturb_samples=S, target=t, max_examples_per_batch=32)

    best = race({"ours": ours, "captum": theirs}, max(rounds, 2), warmup=True)
    diff = float((out["ours"].float() - out["captum"].float()).abs().max())
    return [Row(f"max-sensitivity saliency {name} {x.shape[-1]}px, 10 samples x {x.shape[0]} images", best["ours"],
                best["captum"], "s", "captum sensitivity_max", ">= 2x", higher_is_better=False,
                note=f"max |diff| {diff:.1e}")]


def run(quick: bool):
    """The rows, yielded as they are measured (a long run keeps what it finished). ``$BENCH_FAITHFULNESS``
    (comma-separated: sensitivity, deletion, road) runs only those rows, e.g. ROAD after a solver change."""
    import os
    wanted = set((os.environ.get("BENCH_FAITHFULNESS") or "sensitivity,deletion,road").split(","))
    n, size = (2, 112) if quick else (16, 224)
    percentages = (10.0, 50.0, 90.0) if quick else tuple(float(p) for p in range(10, 100, 10))
    rounds = 1
    for name in ("mobilenet_v2",) if quick else ("mobilenet_v2", "resnet18"):
        m, x, t, maps = _setup(name, n, size)
        _warm(m, x, t, maps, percentages)
        if "sensitivity" in wanted:
            yield from _sensitivity(name, m, x, t, rounds)
        if "deletion" in wanted:
            yield from _deletion(name, m, x, t, maps, rounds)
        if "road" in wanted:
            yield from _road(name, m, x, t, maps, percentages, rounds)
