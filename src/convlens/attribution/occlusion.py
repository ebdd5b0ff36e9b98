"""Occlusion sensitivity (Zeiler & Fergus 2014): slide a patch over the image, record the score drop.

Speed: the perturbed images of many window positions go through the network in one batch
(automatic batch size from the model's activation sizes), under ``inference_mode``, through a
cached forward-only twin of the model (batch norms folded into the convolutions, channels_last
memory format; the caller's module is not touched), and only the target column is kept. Each
perturbed pass recomputes only the feature-map boxes the window changes, until they cover most of
the map (``drivers.incremental``: same result up to float rounding; whole passes for networks
torch.fx cannot trace), when that is the faster path (``incremental="auto"``: a FLOP cost model,
then the first windows timed both ways where FLOPs do not decide). The window positions and the
per-pixel averaging follow Captum's ``Occlusion`` exactly, so both give the same map.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Literal

import torch

from ..drivers.forward import inference_twin
from ..drivers.incremental import incremental_net
from ..drivers.onnx import Switch, resolve_backend
from ..images.blur import gaussian_blur
from ..errors import ConvlensError
from ..fields import resolve_config
from ..progress import ProgressFn, call
from .base import Attribution, auto_batch, check_images, check_model, class_labels, resolve_targets

BASELINES = ("zero", "grey", "blur", "mean")


def make_baseline(x: torch.Tensor, baseline, window: tuple[int, int]) -> torch.Tensor:
    """The occluding values, an image-sized tensor: "zero" (black), "grey" (0.5), "mean" (each image's
    per-channel mean), "blur" (the image Gaussian-blurred with sigma = window / 4), a float or a tensor."""
    if isinstance(baseline, torch.Tensor):
        return baseline.to(x).expand_as(x).contiguous()
    if isinstance(baseline, str):
        try:
            baseline = float(baseline)  # "0.5" from the CLI or a web form
        except ValueError:
            pass
    if isinstance(baseline, (int, float)):
        if not 0 <= baseline <= 1:
            raise ConvlensError(f"occlusion baseline must be zero, grey, blur, mean or a number in [0, 1], got {baseline}")
        return torch.full_like(x, float(baseline))
    if baseline == "zero":
        return torch.zeros_like(x)
    if baseline == "grey" or baseline == "gray":
        return torch.full_like(x, 0.5)
    if baseline == "mean":
        return x.mean((2, 3), keepdim=True).expand_as(x).contiguous()
    if baseline == "blur":
        return gaussian_blur(x, max(window) / 4)
    raise ConvlensError(f"unknown baseline '{baseline}'; use one of {', '.join(BASELINES)}, a number or a tensor")


def window_positions(size: int, window: int, stride: int) -> list[int]:
    """Top (or left) coordinates of the windows along one axis, as Captum: ceil((size - w) / s) + 1
    positions at multiples of the stride; the last window may be clipped by the border."""
    if window > size:
        raise ConvlensError(f"occlusion window {window} is larger than the image side {size}")
    if stride < 1 or (stride > window and size > window):
        raise ConvlensError(f"occlusion stride must be in 1..window ({window}), got {stride}")
    return [i * stride for i in range(math.ceil((size - window) / stride) + 1)]


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, float)) else (int(v[0]), int(v[1]))


# auto: an incremental pass estimated at most this fraction of a whole pass's FLOPs wins outright ...
DECISIVE_COST = 0.35
# ... and from this fraction whole passes do: saving at most a third of the FLOPs does not pay for the
# crops' gathers and small convolutions, and whole passes may run in onnxruntime (1.3x torch or more)
WHOLE_COST = 0.65


@dataclass
class OcclusionConfig:
    """Occlusion's parameters (Zeiler & Fergus 2014 slide a grey square; 16 px windows, stride 8, here)."""

    window: int = field(default=16, metadata={"help": "occluding square's side, pixels ((h, w) in Python)",
                                              "range": (1, None)})
    stride: int = field(default=8, metadata={"help": "step between window positions, pixels", "range": (1, None)})
    baseline: str = field(default="zero", metadata={"help": "zero, grey, blur, mean, or a number in [0, 1] "
                                                    "(a float or tensor in Python)"})
    score: Literal["prob", "logit"] = field(default="prob", metadata={"help": "prob (softmax, Zeiler & Fergus) or logit"})
    batch_size: int | None = field(default=None, metadata={"help": "perturbations per forward (default: automatic)",
                                                           "range": (1, None)})


def occlusion(model, images, target=None, config: OcclusionConfig | None = None, *, channels_last: bool = True,
              fuse_bn: bool = True, incremental: bool | str = "auto", backend: str | None = None,
              progress: ProgressFn | None = None, **overrides) -> Attribution:
    """Occlusion map: how much the target's score drops when a window of the image is hidden.

    For each window position p: ``d_p = f(x) - f(x with the window replaced by the baseline)``, with
    ``f`` the target's softmax probability (``score="prob"``, Zeiler & Fergus) or its logit
    (``score="logit"``). Each pixel gets the mean of ``d_p`` over the windows covering it (Captum's
    convention), so the map has the image's resolution; ``info["grid"]`` keeps the raw (N, ny, nx)
    drops per position.

    Args:
        config: an ``OcclusionConfig`` (window, stride, baseline, score, batch_size; default: its defaults),
            or its fields as keywords (below).
        channels_last: run the perturbations in channels_last format (faster convs on CPU).
        fuse_bn: fold batch norms into convolutions for the perturbed passes (same function up to
            float rounding, ~1e-7 relative in float32; ``inference_twin``).
        incremental: True: recompute only the regions each window changes (``drivers.incremental``;
            same result up to float rounding); False: whole passes; "auto" (default): the faster of the
            two. The cost model: ``IncrementalPass.cost`` estimates an incremental pass's FLOPs as a
            fraction of a whole pass's (each local segment weighted by the share of its map the
            window's crop covers); at most ``DECISIVE_COST`` (deep nets at large sizes: VGG at 224 px
            is 0.17) picks incremental outright, at least ``WHOLE_COST`` whole passes (MobileNetV2
            at 112 px: 0.69; its small crops are memory-bound: measured 1.25-1.4x the whole pass's
            time). In between FLOPs do not decide (MobileNetV2 at 224 px: 0.59, incremental 1.5-1.9x
            faster), so two chunks of windows of the first image (an eighth of its windows each, at
            least 4) run one each way, timed, and the faster per window does the rest (both are
            exact: the map is the same either way). Whole passes when the network cannot be traced.
        backend: for whole passes: "auto" (default), "torch" or "onnxruntime" (docs/forward.md);
            "onnxruntime" runs every window as a whole pass in onnxruntime.
        progress: called with (done, total) perturbations.
    Keyword Args:
        window: (h, w) or int, in pixels (default 16).
        stride: (sy, sx) or int (default 8); at most the window.
        baseline: "zero", "grey", "blur", "mean", a float in [0, 1] or a tensor like the images.
        score: "prob" or "logit".
        batch_size: perturbed images per forward (default: automatic, from the activation sizes).
    Returns:
        ``Attribution`` with ``map`` (N, H, W): positive where hiding the region lowers the score;
        ``info["incremental"]`` says which path ran the windows after the choice, ``info["choice"]``
        how it was made (the FLOP estimate, the seconds per window of each probe).
        On Ctrl-C the ``KeyboardInterrupt`` carries ``.partial``, the result over the windows finished
        so far (the others are NaN in ``info["grid"]``; pixels no finished window covers are NaN).
    Example:
        >>> convlens.occlusion(m, cat, window=32, stride=16).info["grid"].shape
        torch.Size([1, 13, 13])
    """
    c = resolve_config(OcclusionConfig, config, overrides)
    window, stride, baseline, score, batch_size = c.window, c.stride, c.baseline, c.score, c.batch_size
    model = check_model(model)
    x = check_images(model, images)
    if score not in ("prob", "logit"):
        raise ConvlensError(f"occlusion score must be 'prob' or 'logit', got '{score}'")
    if incremental not in (True, False, "auto"):
        raise ConvlensError(f"occlusion incremental must be True, False or 'auto', got {incremental!r}")
    (wh, ww), (sh, sw) = _pair(window), _pair(stride)
    N, C, H, W = x.shape
    ys, xs = window_positions(H, wh, sh), window_positions(W, ww, sw)
    pos = [(y, xx) for y in ys for xx in xs]  # row-major, like Captum's feature numbering (x fastest)
    t = resolve_targets(model, target, x)
    base = make_baseline(x, baseline, (wh, ww))
    net = inference_twin(model, channels_last, fuse_bn) if (channels_last or fuse_bn) else model
    inc = incremental_net(model, channels_last, fuse_bn) if incremental is not False and \
        resolve_backend(backend) != "onnxruntime" else None
    path = "whole" if inc is None else ("incremental" if incremental is True else "auto")
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    bs = batch_size or auto_batch(model, x)
    total = N * len(pos)
    switch = Switch(model, [], True, torch.get_num_threads(), backend, total=total) if path != "incremental" else None
    grid = torch.full((N, len(ys), len(xs)), float("nan"), dtype=x.dtype, device=x.device)
    choice = {"flops": None, "incremental_s": None, "whole_s": None}
    probe = max(1, min(bs, len(pos) // 2, max(4, len(pos) // 8)))  # windows per timed probe chunk
    done = 0

    def result(clean):
        heat = _spread(grid, ys, xs, (wh, ww), (H, W))
        return Attribution("occlusion", heat, None, t, class_labels(model, t), x,
                           {"window": (wh, ww), "stride": (sh, sw), "score": score, "grid": grid, "clean": clean,
                            "baseline": baseline if isinstance(baseline, (str, float, int)) else "tensor",
                            "batch_size": bs, "fused": bool(getattr(net, "_convlens_fused", False)),
                            "incremental": path == "incremental", "choice": choice, "finished": done,
                            "total": total, "backend": "torch" if switch is None else switch.backend_used},
                           default_mode="signed")

    def incremental_drops(run, xn, bn, chunk):  # only the window's box (shifted inside the image) is passed
        box = torch.tensor([(min(y, H - wh), min(xx, W - ww)) for y, xx in chunk])
        patches = torch.stack([xn[:, by:by + wh, bx:bx + ww] for by, bx in box.tolist()])
        for k, ((y, xx), (by, bx)) in enumerate(zip(chunk, box.tolist())):
            patches[k, :, y - by:, xx - bx:] = bn[:, y:y + wh, xx:xx + ww]
        return run.logits(box, patches)

    def whole_drops(xn, bn, chunk):
        batch = xn.expand(len(chunk), C, H, W).clone(memory_format=fmt)
        for k, (y, xx) in enumerate(chunk):
            batch[k, :, y:y + wh, xx:xx + ww] = bn[:, y:y + wh, xx:xx + ww]
        return switch.run(batch, lambda b: (net(b), {}))[0]

    clean = None
    try:
        with torch.inference_mode():
            clean = _score(net(x.contiguous(memory_format=fmt)), t, score)
            for n in range(N):
                xn, bn, tn = x[n], base[n], t[n:n + 1]
                run = inc.at(x[n:n + 1]) if path != "whole" else None
                if path == "auto":
                    choice["flops"] = run.cost((wh, ww))
                    if choice["flops"] <= DECISIVE_COST or choice["flops"] >= WHOLE_COST or len(pos) < 2:
                        path = "incremental" if choice["flops"] < WHOLE_COST else "whole"
                start = 0
                while start < len(pos):
                    way = path
                    if path == "auto":  # probe: one chunk each way, timed
                        way = "incremental" if choice["incremental_s"] is None else "whole"
                    chunk = pos[start:start + (bs if path != "auto" else probe)]
                    t0 = time.perf_counter()
                    logits = incremental_drops(run, xn, bn, chunk) if way == "incremental" else whole_drops(xn, bn, chunk)
                    if path == "auto":
                        choice[f"{way}_s"] = (time.perf_counter() - t0) / len(chunk)
                        if choice["whole_s"] is not None:
                            path = "incremental" if choice["incremental_s"] < choice["whole_s"] else "whole"
                    s = _score(logits, tn.expand(len(chunk)), score)
                    grid[n].view(-1)[start:start + len(chunk)] = clean[n] - s
                    start += len(chunk)
                    done += len(chunk)
                    call(progress, done, total)
    except KeyboardInterrupt as e:
        e.partial = result(clean)
        raise
    return result(clean)


def _score(logits: torch.Tensor, t: torch.Tensor, score: str) -> torch.Tensor:
    if score == "prob":
        logits = logits.softmax(-1)
    return logits.gather(1, t.view(-1, 1).to(logits.device))[:, 0]


def _spread(grid: torch.Tensor, ys, xs, window, size) -> torch.Tensor:
    """Per-pixel mean of the drops of the windows covering it: (N, ny, nx) -> (N, H, W). NaN drops
    (windows not computed) are left out; a pixel no computed window covers is NaN."""
    N = grid.shape[0]
    H, W = size
    wh, ww = window
    acc = torch.zeros(N, H, W, dtype=grid.dtype, device=grid.device)
    cnt = torch.zeros(N, H, W, dtype=grid.dtype, device=grid.device)
    known = ~grid.isnan()
    values = grid.nan_to_num(0.0)
    for i, y in enumerate(ys):
        for j, xx in enumerate(xs):
            acc[:, y:y + wh, xx:xx + ww] += values[:, i, j, None, None]
            cnt[:, y:y + wh, xx:xx + ww] += known[:, i, j, None, None]
    return acc / cnt
