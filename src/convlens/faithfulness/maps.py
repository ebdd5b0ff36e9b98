"""Properties of a map on its own or against a known object region, and the two maps every comparison
needs beside the methods: a random map and an edge detector (issue 22, items 3 and 4).

Every function takes maps (N, H, W) (an ``Attribution``'s ``upsampled()``, or any tensor; (N, C, H, W) is
summed over channels) and returns one number per image, in float64:
- ``sparseness``: the Gini index of |map| (Chalasani et al. 2020), 0 for a flat map, near 1 when one
  pixel holds everything. As Quantus, 1e-7 is added to every |value| first (a zero map is defined).
- ``complexity``: the entropy of the fractional contribution |map| / sum |map| (Bhatt et al. 2020),
  log(H * W) for a flat map, 0 for a single pixel.
- ``pointing_game``: 1 when the map's maximum lies inside the object's mask (Zhang et al. 2018).
- ``relevance_mass``: the share of sum |map| inside the mask; ``relevance_rank``: the share of the K
  highest pixels inside it, K the mask's size (Arras et al. 2022).
"""
from __future__ import annotations

import torch

from ..attribution.base import Attribution
from ..errors import ConvlensError
from .registry import Metric, register

_EPS = 1e-7


def as_maps(attribution) -> torch.Tensor:
    """(N, H, W) float64 on the CPU, from an ``Attribution`` (at image resolution) or a tensor."""
    m = attribution.upsampled() if isinstance(attribution, Attribution) else torch.as_tensor(attribution)
    if m.ndim == 2:
        m = m[None]
    if m.ndim == 4:
        m = m.sum(1)
    if m.ndim != 3:
        raise ConvlensError(f"maps must be (N, H, W) or (N, C, H, W), got {tuple(m.shape)}")
    return m.detach().double().cpu()


def sparseness(attribution) -> torch.Tensor:
    """Gini index of |map| per image: ``sum_i (2i - n - 1) a_(i) / (n sum a)``, a sorted ascending."""
    a = as_maps(attribution).abs().flatten(1) + _EPS
    a, _ = a.sort(dim=1)
    n = a.shape[1]
    i = torch.arange(1, n + 1, dtype=a.dtype)
    return ((2 * i - n - 1) * a).sum(1) / (n * a.sum(1))


def complexity(attribution) -> torch.Tensor:
    """Entropy (nats) of |map| / sum |map| per image."""
    a = as_maps(attribution).abs().flatten(1)
    total = a.sum(1, keepdim=True)
    if (total == 0).any():
        raise ConvlensError("complexity of an all-zero map is undefined; check the map")
    p = a / total
    return -(p * torch.where(p > 0, p.log(), torch.zeros_like(p))).sum(1)


def _masks(mask, maps: torch.Tensor) -> torch.Tensor:
    m = torch.as_tensor(mask).bool().cpu()
    if m.ndim == 2:
        m = m[None].expand(maps.shape[0], -1, -1)
    if m.shape != maps.shape:
        raise ConvlensError(f"mask {tuple(m.shape)} does not match the maps {tuple(maps.shape)}; "
                            "give one (H, W) mask or one per image")
    if not m.flatten(1).any(1).all():
        raise ConvlensError("an empty object mask; every image needs at least one object pixel")
    return m


def pointing_game(attribution, mask) -> torch.Tensor:
    """1.0 where the map's maximum (the first one, row-major) lies inside the mask, else 0.0."""
    maps = as_maps(attribution)
    m = _masks(mask, maps)
    top = maps.flatten(1).argmax(1)
    return m.flatten(1).gather(1, top[:, None])[:, 0].double()


def relevance_mass(attribution, mask) -> torch.Tensor:
    """Share of sum |map| that falls inside the mask."""
    maps = as_maps(attribution).abs()
    m = _masks(mask, maps)
    return (maps * m).flatten(1).sum(1) / maps.flatten(1).sum(1).clamp_min(1e-300)


def relevance_rank(attribution, mask) -> torch.Tensor:
    """Share of the K highest |map| pixels inside the mask, K = the mask's pixel count (stable ties)."""
    full = as_maps(attribution).abs()
    m = _masks(mask, full).flatten(1)
    maps = full.flatten(1)
    order = torch.argsort(-maps, dim=1, stable=True)
    out = []
    for i in range(maps.shape[0]):
        k = int(m[i].sum())
        out.append(float(m[i][order[i, :k]].double().mean()))
    return torch.tensor(out, dtype=torch.float64)


def random_map(images, seed: int = 0) -> torch.Tensor:
    """A uniform random map per image (N, H, W), seeded: the floor every method must beat."""
    x = torch.as_tensor(images)
    g = torch.Generator().manual_seed(int(seed))
    return torch.rand((x.shape[0], *x.shape[-2:]), generator=g, dtype=torch.float64)


def edge_map(images) -> torch.Tensor:
    """The Sobel gradient magnitude of each image's grey level (N, H, W): a map that explains the image,
    not the model (Adebayo et al. 2018's point of comparison)."""
    x = torch.as_tensor(images).double()
    grey = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=torch.float64)
    k = torch.stack([kx, kx.T])[:, None]
    g = torch.nn.functional.conv2d(torch.nn.functional.pad(grey, (1, 1, 1, 1), mode="replicate"), k)
    return g.pow(2).sum(1).sqrt()


register(Metric("sparseness", "map", sparseness, "higher", "Sparseness (Gini)", "Chalasani et al. 2020"))
register(Metric("complexity", "map", complexity, "lower", "Complexity (entropy, nats)", "Bhatt et al. 2020"))
register(Metric("pointing_game", "mask", pointing_game, "higher", "Pointing game", "Zhang et al. 2018"))
register(Metric("relevance_mass", "mask", relevance_mass, "higher", "Relevance mass accuracy", "Arras et al. 2022"))
register(Metric("relevance_rank", "mask", relevance_rank, "higher", "Relevance rank accuracy", "Arras et al. 2022"))
