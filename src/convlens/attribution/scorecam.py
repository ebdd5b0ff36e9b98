"""Score-CAM (Wang et al. 2020): class activation maps weighted by forward scores, not gradients.

Each channel of a layer's activation, upsampled to the image and min-max normalized to [0, 1], is
a soft mask; the image seen through it goes through the network, and the channel's weight is how
much the target's probability rises over the baseline (the image seen through an all-zero mask,
black): the paper's "channel-wise increase of confidence". The map is ``ReLU(sum_k w_k A_k)`` at the
layer's resolution. The masked images (one per non-constant channel per image) go through the
perturbation driver, a chunk at a time: a 1280-channel layer never holds 1280 images.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F

from ..drivers.perturb import perturbed_logits, target_scores
from ..errors import ConvlensError
from ..fields import resolve_config
from ..probe import Probe
from ..progress import ProgressFn
from .base import Attribution, check_images, check_model, class_labels
from .gradcam import default_layer


@dataclass
class ScoreCamConfig:
    """Score-CAM's parameters (Wang et al. 2020: the last convolutional block, as Grad-CAM)."""

    layer: str | None = field(default=None, metadata={"help": "layer (empty: the last block with a spatial map, "
                                                      "as Grad-CAM)"})
    batch_size: int | None = field(default=None, metadata={"help": "masked images per forward (default: automatic)",
                                                           "range": (1, None)})
    backend: Literal["auto", "torch", "onnxruntime"] = field(
        default="auto", metadata={"help": "forward backend of the masked passes (docs/forward.md)"})


def channel_masks(acts: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Activations (B, h, w) -> soft masks (B, H, W): bilinear upsampling (half-pixel centres), then each
    min-max normalized to [0, 1]; a constant channel gives an all-zero mask."""
    up = F.interpolate(acts[:, None].double(), size=size, mode="bilinear", align_corners=False)[:, 0]
    lo = up.flatten(1).amin(1).view(-1, 1, 1)
    span = up.flatten(1).amax(1).view(-1, 1, 1) - lo
    return torch.where(span > 0, (up - lo) / span.clamp(min=torch.finfo(up.dtype).tiny), torch.zeros_like(up))


def score_cam(model, images, target=None, config: ScoreCamConfig | None = None, *,
              progress: ProgressFn | None = None, **overrides) -> Attribution:
    """Score-CAM: ``L = ReLU(sum_k w_k A^k)``, ``w_k = P_target(x * s(Up(A^k))) - P_target(x_b)`` (Wang et al. 2020).

    ``A^k`` is channel k of the layer's activation, ``Up`` bilinear upsampling to the image,
    ``s`` min-max normalization to [0, 1], ``P_target`` the target's softmax probability and ``x_b``
    the baseline, the black image (``x`` seen through an all-zero mask). Channels that are constant
    over the image carry no mask and get weight 0 without a forward pass (as the authors' code skips
    them). The authors' code weighs by ``P_target(x * s(Up(A^k)))`` alone: a constant shift of every
    weight, which adds ``-P_target(x_b) sum_k A^k`` before the ReLU; the paper's increase is used here.

    Args:
        config: a ``ScoreCamConfig`` (default: its defaults), or its fields as keywords.
        progress: ``progress(done, total)`` over the masked images.
    Keyword Args:
        layer: dotted layer name (default ``default_layer(model)``, the last spatial block, as Grad-CAM).
        batch_size: masked images per forward (default: automatic).
        backend: "auto", "torch" or "onnxruntime".
    Returns:
        ``Attribution`` with ``map`` (N, h, w) at the layer's resolution (``upsampled()`` / ``overlay()``
        resize it); ``info["weights"]`` (N, C) the w_k, ``info["baseline"]`` (N,) ``P_target(x_b)``.
    Example:
        >>> convlens.score_cam(m, cat).info["layer"]
        'features.18'
    """
    c = resolve_config(ScoreCamConfig, config, overrides)
    model = check_model(model)
    x = check_images(model, images)
    layer = c.layer or default_layer(model)
    with torch.inference_mode(), Probe(model, layer, detach=True) as probe:
        logits = probe.run(x)
        acts = probe[layer]
    if acts.ndim != 4:
        raise ConvlensError(f"score_cam needs a layer with a (C, h, w) output; '{layer}' gives {tuple(acts.shape[1:])}")
    acts = acts.clone()  # out of inference mode's tensors
    t = model.targets(target, x) if target is not None else logits.argmax(-1)
    N, K = acts.shape[:2]
    H, W = x.shape[-2:]
    flat = acts.flatten(2)
    live = (flat.amax(2) > flat.amin(2)).nonzero().tolist()   # (image, channel) pairs with a mask
    scores = torch.zeros(N + len(live), dtype=torch.float64)

    def make_batch(start, stop):  # items 0..N-1: the baselines (black images); then one per live channel
        out = torch.zeros(stop - start, *x.shape[1:], dtype=x.dtype)
        pairs = live[max(start, N) - N:stop - N] if stop > N else []
        if pairs:
            n, k = torch.tensor(pairs).T
            masks = channel_masks(acts[n, k].cpu(), (H, W)).to(x.dtype)
            out[len(out) - len(pairs):] = x.cpu()[n] * masks[:, None]
        return out

    owner = torch.tensor(list(range(N)) + [n for n, _ in live])  # the image of each item

    def consume(start, stop, logits):
        scores[start:stop] = target_scores(logits, t.cpu()[owner[start:stop]])

    backend = perturbed_logits(model, N + len(live), make_batch, consume, like=x[:1], batch_size=c.batch_size,
                               backend=c.backend, progress=progress)
    base = scores[:N]
    weights = torch.zeros(N, K, dtype=torch.float64)
    if live:
        n, k = torch.tensor(live).T
        weights[n, k] = scores[N:] - base[n]
    cam = torch.relu((weights.view(N, K, 1, 1) * acts.double().cpu()).sum(1))
    info = {"layer": layer, "weights": weights, "baseline": base, "channels": K, "live_channels": len(live),
            "backend": backend}
    return Attribution("score_cam", cam.to(x.dtype), None, t, class_labels(model, t), x, info, default_mode="positive")
