"""The shared base of every attribution method: input checks, targets, scores, the result object.

Every method returns an ``Attribution``: the *raw* map (unnormalized, in the method's own units:
d logit / d pixel, a probability drop, logit units for IG...), the per-channel values where the
method has them, the target each image was explained for, and rendering helpers. Normalization and
sign (abs / positive / negative / signed) are chosen when rendering, never baked into the map.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..drivers.perturb import auto_batch  # noqa: F401 - attribution.base.auto_batch as before
from ..errors import ConvlensError
from ..models.model import Model, validate_images
from ..render import normalize_map
from ..render import as_pil, heatmap
from ..render import overlay
from ..render import side_by_side
from ..images import save_png

RENDER_MODES = ("abs", "positive", "negative", "signed", "minmax", "rgb")


@dataclass
class Attribution:
    """What an attribution method found, for a batch of N images.

    Attributes:
        method: "saliency", "occlusion", "guided_backprop", "deconvnet", "grad_cam", "smoothgrad",
            "integrated_gradients".
        map: (N, h, w) raw heat map, unnormalized (h, w = the image's, or the layer's for Grad-CAM).
        attributions: (N, 3, H, W) raw per-channel values (gradients, IG...) or None.
        target: (N,) class index each image was explained for (for a neuron: the class is -1).
        labels: (N,) human-readable target ("Egyptian cat (285)", "features.14 channel 7").
        images: (N, 3, H, W) the inputs, in [0, 1] (for overlays).
        info: what was used (layer, window, baseline, completeness delta, ...).
        default_mode: the render mode that suits the method.
    """

    method: str
    map: torch.Tensor
    attributions: torch.Tensor | None
    target: torch.Tensor
    labels: list[str]
    images: torch.Tensor
    info: dict[str, Any] = field(default_factory=dict)
    default_mode: str = "abs"

    def __len__(self) -> int:
        return self.map.shape[0]

    def __repr__(self) -> str:
        return (f"Attribution({self.method}, map {tuple(self.map.shape)}, targets {self.labels}, "
                f"info {sorted(self.info)})")

    def upsampled(self, index: int | None = None) -> torch.Tensor:
        """The map at image resolution (bilinear; identity for pixel-level methods): (N, H, W)."""
        m = self.map if index is None else self.map[index:index + 1]
        H, W = self.images.shape[-2:]
        if m.shape[-2:] != (H, W):
            m = torch.nn.functional.interpolate(m[:, None].double(), size=(H, W), mode="bilinear",
                                                align_corners=False)[:, 0].to(self.map.dtype)
        return m

    def normalized(self, index: int = 0, mode: str | None = None) -> np.ndarray:
        """Map ``index`` in [0, 1] for display (see ``convlens.render.normalize_map`` for modes)."""
        mode = self._mode(mode)
        if mode == "rgb":
            return self._rgb(index).transpose(1, 2, 0)
        return normalize_map(self.upsampled(index)[0], mode)

    def _mode(self, mode):
        mode = mode or self.default_mode
        if mode not in RENDER_MODES:
            raise ConvlensError(f"unknown render mode '{mode}'; choose one of {', '.join(RENDER_MODES)}")
        if mode == "rgb" and self.attributions is None:
            raise ConvlensError(f"{self.method} has no per-channel values to draw as RGB; use mode 'abs'")
        return mode

    def _rgb(self, index: int) -> np.ndarray:
        """Per-channel attributions as an image: 0.5 + a / (2 * p99.5 of the non-zero |a|) (grey = zero)."""
        a = self.attributions[index].detach().double().cpu().numpy()
        nz = np.abs(a[a != 0])  # sparse maps (a neuron's guided backprop): scale by the non-zero values
        s = (float(np.percentile(nz, 99.5)) or float(nz.max())) if nz.size else 1.0
        return np.clip(0.5 + a / (2 * s), 0, 1)

    def heatmap(self, index: int = 0, mode: str | None = None, cmap: str | None = None):
        """The map alone as a PIL image at image resolution."""
        mode = self._mode(mode)
        if mode == "rgb":
            return as_pil(self._rgb(index).transpose(1, 2, 0))
        return heatmap(self.upsampled(index)[0], mode, cmap)

    def overlay(self, index: int = 0, mode: str | None = None, alpha: float = 0.55, colorbar: bool = True,
                label: bool | str = True, cmap: str | None = None):
        """The map over image ``index`` as a PIL image, with a colour bar of the raw range.

        Args:
            mode: "abs", "positive", "negative", "signed", "minmax" or "rgb" (default: the method's).
            label: True for "method: target", a string, or False.
        """
        mode = self._mode(mode)
        text = f"{self.method}: {self.labels[index]}" if label is True else (label or None)
        if mode == "rgb":
            return side_by_side([self.images[index], self.heatmap(index, "rgb")],
                                [text or "", "per-channel values (grey = 0)"], height=None)
        return overlay(self.images[index], self.upsampled(index)[0], alpha=alpha, mode=mode, cmap=cmap,
                       colorbar=colorbar, label=text)

    def save(self, path, index: int = 0, mode: str | None = None, **kw):
        """Write ``overlay(index, mode)`` as a PNG (atomically). Returns the path."""
        return save_png(self.overlay(index, mode, **kw), path)


# --- shared helpers --------------------------------------------------------------------------

def check_model(model) -> Model:
    if not isinstance(model, Model):
        if isinstance(model, torch.nn.Module):
            raise ConvlensError("attribution needs a convlens.Model; wrap your module: convlens.Model.wrap(module)")
        raise ConvlensError(f"expected a convlens.Model, got {type(model).__name__}")
    return model


def check_images(model: Model, images) -> torch.Tensor:
    """Images as (N, 3, H, W) on the model's device and dtype, detached (the caller's tensor is not touched)."""
    if not isinstance(images, torch.Tensor):
        raise ConvlensError(f"images must be a tensor (N, 3, H, W) in [0, 1], got {type(images).__name__}; "
                            "use convlens.load_image")
    if images.ndim == 3:
        images = images[None]
    validate_images(images, model.mean.shape[1])  # before the cast: an integer image is refused, not scaled
    dtype = model.mean.dtype
    return images.detach().to(device=model.device, dtype=dtype)


def class_labels(model: Model, target: torch.Tensor) -> list[str]:
    names = model.classes or []
    return [f"{names[t]} ({t})" if 0 <= t < len(names) else str(int(t)) for t in target.tolist()]


def resolve_targets(model: Model, target, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():  # not inference_mode: model(x) may be called again with grad enabled
        return model.targets(target, images) if target is not None else model(images).argmax(-1)


def chunks(n: int, size: int):
    for i in range(0, n, size):
        yield slice(i, min(n, i + size))
