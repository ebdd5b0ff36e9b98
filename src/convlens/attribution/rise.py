"""RISE: randomized input sampling for explanation (Petsiuk, Das & Saenko 2018).

A black-box method: the image is seen through N random smooth masks, each masked image goes through
the network, and the map is the masks averaged with the target's probability as weights. The masks
are the paper's: a binary s x s grid (each cell kept with probability p), bilinearly upsampled to
(s + 1) x cell size and cropped at a random shift of less than one cell (the authors' code: skimage's
``resize(order=1, mode="reflect")``, reproduced here as two small interpolation matrices, so a mask
is ``Wy[dy:dy+H] @ grid @ Wx[dx:dx+W]^T``). Only the grids and shifts (N x s x s values) are drawn up
front; the masks and masked images are made a chunk at a time inside the perturbation driver, so 4,000
masks at 224 px never hold 4,000 images.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch

from ..drivers.perturb import perturbed_logits, target_scores
from ..errors import ConvlensError
from ..fields import resolve_config
from ..progress import ProgressFn
from .base import Attribution, check_images, check_model, class_labels, resolve_targets


@dataclass
class RiseConfig:
    """RISE's parameters (Petsiuk et al. 2018: 4,000 masks for ResNet-50; an 8 x 8 grid and p = 0.5 as in the
    authors' code)."""

    masks: int = field(default=4000, metadata={"help": "random masks N (more: smoother, slower)", "range": (1, None)})
    grid: int = field(default=8, metadata={"help": "cells per side s of the random binary grid", "range": (1, None)})
    p: float = field(default=0.5, metadata={"help": "probability that a grid cell is kept", "range": (0, 1)})
    seed: int = field(default=0, metadata={"help": "seed of the masks"})
    batch_size: int | None = field(default=None, metadata={"help": "masked images per forward (default: automatic)",
                                                           "range": (1, None)})
    backend: Literal["auto", "torch", "onnxruntime"] = field(
        default="auto", metadata={"help": "forward backend of the masked passes (docs/forward.md)"})

    def __post_init__(self):
        if not 0 < self.p <= 1:
            raise ConvlensError(f"--p must be in (0, 1] (the probability a cell is kept), got {self.p}")


def upsample_matrix(cells: int, out: int) -> torch.Tensor:
    """(out, cells) float64 weights of linear upsampling ``cells`` -> ``out`` samples with half-pixel centres and
    mirrored borders: skimage ``resize(order=1, mode="reflect", anti_aliasing=False)`` along one axis."""
    u = (torch.arange(out, dtype=torch.float64) + 0.5) * cells / out - 0.5
    lo = torch.floor(u)
    frac = u - lo
    W = torch.zeros(out, cells, dtype=torch.float64)
    rows = torch.arange(out)
    for idx, w in ((lo, 1 - frac), (lo + 1, frac)):
        i = idx.long()
        if cells > 1:  # mirror: -1 -> 1, cells -> cells - 2 (ndimage "mirror")
            i = torch.where(i < 0, -i, i)
            i = torch.where(i > cells - 1, 2 * (cells - 1) - i, i)
        else:
            i = torch.zeros_like(i)
        W.index_put_((rows, i), w, accumulate=True)
    return W


class RiseMasks:
    """The seeded masks of one RISE run: ``masks[start:stop]`` -> (stop - start, H, W) float64 in [0, 1].

    The grids and the shifts of all ``count`` masks are drawn at construction (``torch.Generator`` seeded
    with ``seed``: the grids first, then the row shifts, then the column shifts); a slice upsamples only
    its own masks, so mask i is the same whatever the chunking.
    """

    def __init__(self, count: int, size: tuple[int, int], grid: int = 8, p: float = 0.5, seed: int = 0):
        H, W = size
        gen = torch.Generator().manual_seed(int(seed))
        self.count, self.size, self.p = int(count), (H, W), float(p)
        self.cell = (math.ceil(H / grid), math.ceil(W / grid))
        self.grids = (torch.rand((count, grid, grid), generator=gen, dtype=torch.float64) < p).double()
        self.dy = torch.randint(0, self.cell[0], (count,), generator=gen)
        self.dx = torch.randint(0, self.cell[1], (count,), generator=gen)
        self.wy = upsample_matrix(grid, (grid + 1) * self.cell[0])
        self.wx = upsample_matrix(grid, (grid + 1) * self.cell[1])

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, sl: slice) -> torch.Tensor:
        H, W = self.size
        idx = torch.arange(self.count)[sl]
        rows = self.wy[self.dy[idx, None] + torch.arange(H)]   # (B, H, s): the crop's rows of the upsampling
        cols = self.wx[self.dx[idx, None] + torch.arange(W)]   # (B, W, s)
        return rows @ self.grids[idx] @ cols.transpose(1, 2)


def rise(model, images, target=None, config: RiseConfig | None = None, *, progress: ProgressFn | None = None,
         **overrides) -> Attribution:
    """RISE saliency: ``S = 1 / (N p) sum_i P_target(x * M_i) M_i`` over N random masks (Petsiuk et al. 2018).

    Each mask M_i is an s x s grid of cells kept with probability p, upsampled bilinearly to
    (s + 1) x ceil(H / s) and cropped at a random shift (``RiseMasks``: the authors' construction);
    ``x * M_i`` hides the dropped cells with black (the paper's ``I ⊙ M`` in pixel units; the authors'
    PyTorch code multiplies the normalized tensor instead, i.e. hides towards the dataset mean). The
    target's softmax probability weighs each mask; dividing by N p (the expected mask) makes the map an
    estimate of ``E[P_target(x * M) | M(pixel) = 1]``. All masked images go through
    ``drivers.perturb.perturbed_logits`` (chunks sized to memory, ONNX Runtime when it pays), the same
    masks for every image.

    Args:
        config: a ``RiseConfig`` (default: its defaults), or its fields as keywords.
        progress: ``progress(done, total)`` over the masked images (N x images).
    Keyword Args:
        masks: N (default 4000).
        grid: s, cells per side (default 8).
        p: probability a cell is kept (default 0.5).
        seed: the masks' seed (default 0); the same seed gives the same map.
        batch_size: masked images per forward (default: automatic).
        backend: "auto", "torch" or "onnxruntime".
    Returns:
        ``Attribution`` with ``map`` (N, H, W) float64, in probability units. On Ctrl-C the
        ``KeyboardInterrupt`` carries ``.partial``: the map over the masks finished so far.
    Example:
        >>> convlens.rise(m, cat, masks=500).map.shape
        torch.Size([1, 224, 224])
    """
    c = resolve_config(RiseConfig, config, overrides)
    model = check_model(model)
    x = check_images(model, images)
    t = resolve_targets(model, target, x)
    N, _, H, W = x.shape
    masks = RiseMasks(c.masks, (H, W), c.grid, c.p, c.seed)
    total = N * c.masks
    sal = torch.zeros(N, H * W, dtype=torch.float64)
    done = torch.zeros(N, dtype=torch.long)
    cache = {}

    def chunk_masks(start, stop):  # [(image n, its masks)] of items start..stop; item j = image j // M, mask j % M
        if cache.get("range") != (start, stop):
            M = c.masks
            parts = [(n, masks[max(start - n * M, 0):min(stop - n * M, M)])
                     for n in range(start // M, (stop - 1) // M + 1)]
            cache.update(range=(start, stop), parts=parts)
        return cache["parts"]

    def make_batch(start, stop):
        return torch.cat([x[n, None].cpu() * m[:, None].to(x.dtype) for n, m in chunk_masks(start, stop)])

    def consume(start, stop, logits):
        k = 0
        for n, m in chunk_masks(start, stop):
            s = target_scores(logits[k:k + len(m)], t[n].expand(len(m)))
            sal[n] += s @ m.view(len(m), -1)
            done[n] += len(m)
            k += len(m)

    def result(backend):
        heat = (sal / (done.clamp(min=1).double() * c.p).view(N, 1)).view(N, H, W)
        info = {"masks": c.masks, "grid": c.grid, "p": c.p, "seed": c.seed, "cell": masks.cell,
                "finished": int(done.sum()), "total": total, "backend": backend}
        return Attribution("rise", heat, None, t, class_labels(model, t), x, info, default_mode="minmax")

    try:
        backend = perturbed_logits(model, total, make_batch, consume, like=x[:1], batch_size=c.batch_size,
                                   backend=c.backend, progress=progress)
    except KeyboardInterrupt as e:
        e.partial = result("interrupted")
        raise
    return result(backend)
