"""Top-k predictions: a forward-only pass, so a driver (the thread budget and the onnxruntime switch
live here too). ``convlens.predict`` and ``convlens.models.predict`` are this function."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConvlensError
from ..images.io import fit
from ..models.model import Model, validate_images
from .forward import thread_budget
from .onnx import Switch


@dataclass(frozen=True)
class Prediction:
    index: int
    label: str
    prob: float


def predict(model: Model, images: torch.Tensor, topk: int = 5, *, backend: str | None = None,
            batch_size: int = 32, threads: int | None = None) -> list[list[Prediction]]:
    """The ``topk`` classes of each image with their softmax probabilities.

    Args:
        model: a ``convlens.Model``; images: (N, 3, H, W) in [0, 1] (resized to the model's input
            size with the shorter side + centre crop when needed).
        backend: "auto" (default), "torch" or "onnxruntime" (docs/forward.md); a few images always
            run in torch under "auto" unless a checked onnxruntime session is already in memory.
        batch_size: images per forward; threads: the thread budget (None: torch's current setting).
    Returns:
        one list of ``Prediction(index, label, prob)`` per image, most probable first.
    """
    validate_images(images, model.mean.shape[1])
    if topk < 1:
        raise ConvlensError(f"topk must be at least 1, got {topk}")
    images = fit(images, model.input_size).to(model.device)
    budget = threads if threads is not None else torch.get_num_threads()
    switch = Switch(model, [], True, budget, backend, total=images.shape[0])
    with thread_budget(threads), torch.inference_mode():
        logits = [switch.run(images[i:i + batch_size], lambda x: (model(x), {}))[0]
                  for i in range(0, images.shape[0], batch_size)]
        if logits[0].ndim != 2:
            raise ConvlensError(f"{model.name} outputs feature maps {tuple(logits[0].shape[1:])}, not class scores: "
                                "predict needs a classifier such as mobilenet_v2")
        probs = torch.cat(logits).float().softmax(-1)
    p, i = probs.topk(min(topk, probs.shape[-1]), dim=-1)
    names = model.classes or [str(k) for k in range(probs.shape[-1])]
    return [[Prediction(int(ii), names[int(ii)], float(pp)) for pp, ii in zip(pr, ir)] for pr, ir in zip(p, i)]
