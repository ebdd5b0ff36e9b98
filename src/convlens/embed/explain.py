"""Why are these two images similar? A Grad-CAM of the cosine similarity of their embeddings.

For images a and b with embeddings u = f(a), v = f(b), the map of a explains the objective
``s_a = u . v / (|u| |v|)`` with |u| held constant (otherwise the gradient of a cosine vanishes at
its maximum, e.g. for an image with itself). Grad-CAM (Selvaraju et al. 2017) at a spatial layer A:
``alpha_k = mean_ij ds_a / dA_k(a)``, ``M_a = sum_k alpha_k A_k(a)``; likewise for b with the roles
swapped. For a global-average-pooled embedding of that layer (ResNet avgpool, MobileNetV2's pooled
features) this is exact: ``sum_ij M_a(i, j) = cos(u, v)``, each position's share of the similarity
(the "similarity map" of Stylianou et al. 2019). ``method="saliency"`` gives the pixel gradient
``max_c |ds_a / dx|`` instead (Simonyan et al. 2014 with the similarity as the objective).
Results are ``convlens.Attribution`` objects, rendered by the attribution family's overlays.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..attribution.base import Attribution
from ..attribution.gradcam import default_layer as spatial_layer
from ..errors import ConvlensError
from ..images.io import fit, save_png
from ..models.model import Model
from ..probe import Probe
from ..render import side_by_side
from .decode import pool
from .forward import default_layer
from .query import store_model


@dataclass
class SimilarityMap:
    """Maps of a and b (as ``Attribution``: ``.a.map``, ``.b.map``), their cosine, and the layer."""

    a: object
    b: object
    cosine: float
    layer: str
    method: str

    def render(self, height: int = 224):
        """image a | map of a | map of b | image b, captioned with the cosine."""
        mode = "positive" if self.method == "gradcam" else "abs"
        return side_by_side([self.a.images[0], self.a.overlay(0, mode, colorbar=False, label=False),
                             self.b.overlay(0, mode, colorbar=False, label=False), self.b.images[0]],
                            ["a", f"why a ~ b ({self.method})", "why b ~ a", "b"], height=height,
                            title=f"cosine {self.cosine:.4f} at {self.layer}")

    def save(self, path):
        return save_png(self.render(), path)


def _one_side(model, x, other_unit, emb_layer, layer, method):
    x = x.detach().requires_grad_(method == "saliency")
    layers = [emb_layer] if method == "saliency" or layer == emb_layer else [layer, emb_layer]
    with torch.enable_grad(), Probe(model, layers, stop=True) as probe:
        probe.run(x if method == "saliency" else x.detach().requires_grad_(True))
        u = pool(probe[emb_layer])
        s = (u * other_unit).sum() / u.detach().norm().clamp_min(1e-30)
        if method == "saliency":
            (g,) = torch.autograd.grad(s, x)
            return Attribution("similarity_saliency", g.abs().amax(1), g, torch.tensor([-1]), ["similarity"], x.detach(),
                               {"objective": float(s.detach())}, default_mode="abs")
        a = probe[layer]
        if a.ndim != 4:
            raise ConvlensError(f"layer '{layer}' has no spatial map (output {tuple(a.shape[1:])}); pick a conv layer")
        (g,) = torch.autograd.grad(s, a)
    w = g.mean((2, 3), keepdim=True)
    cam = (w * a.detach()).sum(1)
    return Attribution("similarity_gradcam", cam, None, torch.tensor([-1]), ["similarity"], x.detach(),
                       {"layer": layer, "objective": float(s.detach()), "map_sum": float(cam.sum())}, default_mode="positive")


def why_similar(store, a, b, *, model=None, layer: str | None = None, method: str = "gradcam") -> SimilarityMap:
    """Explain the similarity of two images (store rows or image tensors) in the store's embedding.

    Args:
        store: an ``EmbeddingStore`` (its model is reloaded by name unless ``model=`` is given), or a
            ``convlens.Model`` with ``layer`` set to the embedding layer (then a and b are images).
        a: a store row (int) or an image (1, 3, H, W) in [0, 1].
        b: the same.
        layer: the spatial layer for Grad-CAM (default: the last spatial block, as ``grad_cam``).
        method: "gradcam" (layer map, default) or "saliency" (pixel gradient).
    Returns:
        ``SimilarityMap`` (``.render()``, ``.save(path)``); ``a.info["map_sum"]`` equals the cosine
        for a pooled embedding of ``layer``.
    Example:
        >>> convlens.why_similar(store, 0, store.neighbors(0).indices[0, 0]).save("why.png")
    """
    if method not in ("gradcam", "saliency"):
        raise ConvlensError(f"unknown method '{method}'; choose gradcam or saliency")
    if isinstance(store, Model):
        m, emb_layer, size = store, layer, store.input_size
        if emb_layer is None:
            emb_layer = default_layer(m)
        layer = None
    else:
        m = store_model(store, model)
        emb_layer, size = store.manifest["layer"], tuple(store.manifest["preprocessing"]["size"])

    def image(v):
        if isinstance(v, (int,)) or hasattr(v, "__index__") and not isinstance(v, torch.Tensor):
            if isinstance(store, Model):
                raise ConvlensError("with a model instead of a store, pass images, not indices")
            return store.image(int(v), size)
        t = v if v.ndim == 4 else v[None]
        return fit(t.float(), size)

    xa, xb = image(a).to(m.device), image(b).to(m.device)
    layer = layer or spatial_layer(m)
    with torch.no_grad(), Probe(m, emb_layer, stop=True, detach=True) as probe:
        probe.run(torch.cat([xa, xb]))
        u = pool(probe[emb_layer])
    un = u / u.norm(dim=1, keepdim=True).clamp_min(1e-30)
    cos = float((un[0] * un[1]).sum())
    ra = _one_side(m, xa, un[1:2], emb_layer, layer, method)
    rb = _one_side(m, xb, un[0:1], emb_layer, layer, method)
    return SimilarityMap(ra, rb, cos, layer if method == "gradcam" else "pixels", method)
