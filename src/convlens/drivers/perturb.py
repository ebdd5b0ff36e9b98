"""Driver 5: many perturbed copies of a few images through the network, scored (issue 22, item 6).

Deletion / insertion, ROAD, pixel flipping, faithfulness correlation, infidelity, RISE and Score-CAM
all ask the same thing: "what does the network say about these K perturbed images?", with K in the
thousands. ``perturbed_logits`` builds the images a chunk at a time (``make_batch(start, stop)``), so
memory is bounded by the chunk, never by K (a 1000-step curve on a 224 px image is 1001 images, built
32 at a time); runs each chunk under ``inference_mode`` through the forward ``Switch`` (torch, or the
checked ONNX Runtime export once the pass is long enough to pay for it: docs/forward.md); and hands
the chunk's logits to ``consume(start, stop, logits)``. The chunk size defaults to ``auto_batch``:
what the network's activations allow in ``budget_mb``.

``progress(done, total)`` is called after every chunk; raising from it (Ctrl-C, a web job's cancel)
stops the pass with every finished chunk already consumed.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..progress import ProgressFn, call
from .forward import thread_budget
from .onnx import Switch


def auto_batch(model, images: torch.Tensor, budget_mb: float = 1536.0, cap: int = 64) -> int:
    """A batch size whose forward activations fit about ``budget_mb`` (from ``model.layers()`` shapes,
    scaled to the images' size)."""
    cache = model.__dict__.setdefault("_convlens_act_numel", {})
    if "numel" not in cache:
        names = {li.name for li in model.layers()}
        leaves = [li for li in model.layers()
                  if not any(n.startswith(li.name + ".") for n in names) and li.shape]
        cache["numel"] = max(1, sum(int(np.prod(li.shape)) for li in leaves))
    h0, w0 = model.input_size
    per_image = cache["numel"] * images.element_size() * images.shape[-2] * images.shape[-1] / (h0 * w0)
    return int(max(1, min(cap, budget_mb * 2 ** 20 // per_image)))


def perturbed_logits(model, total: int, make_batch: Callable[[int, int], torch.Tensor],
                     consume: Callable[[int, int, torch.Tensor], None], *, like: torch.Tensor,
                     batch_size: int | None = None, backend: str | None = None, threads: int | None = None,
                     progress: ProgressFn | None = None) -> str:
    """Run ``total`` perturbed images through ``model`` in chunks; returns the backend of the last chunk.

    Args:
        model: a ``convlens.Model`` (its ``__call__`` normalizes).
        total: how many perturbed images.
        make_batch: ``make_batch(start, stop)`` -> (stop - start, 3, H, W) images in [0, 1].
        consume: ``consume(start, stop, logits)`` with the chunk's logits (float64, on the CPU).
        like: one image of the pass (its size and dtype choose the automatic chunk size).
        batch_size: images per forward (default: ``auto_batch``).
        backend: "auto" (default), "torch" or "onnxruntime" (docs/forward.md).
        threads: the thread budget (None: torch's current setting).
        progress: ``progress(done, total)`` after each chunk.
    """
    bs = int(batch_size or auto_batch(model, like[None] if like.ndim == 3 else like))
    budget = threads if threads is not None else torch.get_num_threads()
    switch = Switch(model, [], True, budget, backend, total=total)
    with thread_budget(threads), torch.inference_mode():
        for start in range(0, total, bs):
            stop = min(total, start + bs)
            x = make_batch(start, stop).to(model.device, model.mean.dtype)
            logits = switch.run(x, lambda b: (model(b), {}))[0]
            consume(start, stop, logits.double().cpu())
            call(progress, stop, total)
    return switch.backend_used


def target_scores(logits: torch.Tensor, targets: torch.Tensor, score: str = "prob") -> torch.Tensor:
    """The targets' softmax probability (``score="prob"``) or logit, float64: (B,)."""
    out = logits.double().softmax(-1) if score == "prob" else logits.double()
    return out.gather(1, targets.view(-1, 1).to(out.device))[:, 0]
