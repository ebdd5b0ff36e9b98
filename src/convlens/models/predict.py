"""Top-k predictions."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .model import Model


@dataclass(frozen=True)
class Prediction:
    index: int
    label: str
    prob: float


def predict(model: Model, images: torch.Tensor, topk: int = 5) -> list[list[Prediction]]:
    """The ``topk`` classes of each image with their softmax probabilities.

    Args:
        model: a ``convlens.Model``; images: (N, 3, H, W) in [0, 1] (resized to the model's input
        size with the shorter side + centre crop when needed).
    Returns:
        one list of ``Prediction(index, label, prob)`` per image, most probable first.
    """
    from ..images import fit

    images = fit(images, model.input_size).to(model.device)
    with torch.inference_mode():
        probs = model(images).float().softmax(-1)
    p, i = probs.topk(min(topk, probs.shape[-1]), dim=-1)
    names = model.classes or [str(k) for k in range(probs.shape[-1])]
    return [[Prediction(int(ii), names[int(ii)], float(pp)) for pp, ii in zip(pr, ir)] for pr, ir in zip(p, i)]
