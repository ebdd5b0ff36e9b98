"""Multifaceted feature visualization (Nguyen, Yosinski & Clune 2016).

A unit responds to several kinds of input ("facets": a grocery-store unit fires for fruit stands and
for shop fronts). Procedure:
  1. find the unit's top-activating images in a dataset (streaming top-k, one entry per image);
  2. describe each by the global-average-pooled features of a late layer, L2-normalized, and
     cluster them with k-means (``n_facets`` clusters);
  3. start one optimization per cluster from the cluster's mean image, maximizing the unit with a
     centre-bias penalty (content pulled to the middle) and mild TV;
  4. render each facet next to its cluster's example images.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from ..errors import ConvlensError
from ..models.model import Model
from ..optim import objectives as O
from ..optim import transforms as T
from ..optim.loop import OptimResult, optimize
from ..optim.params import make_param


@dataclass
class FacetsConfig:
    """Multifaceted visualization parameters."""

    n_facets: int = field(default=4, metadata={"help": "number of facets (k-means clusters)"})
    top: int = field(default=24, metadata={"help": "top-activating images to cluster"})
    feature_layer: str | None = field(default=None, metadata={
        "help": "layer whose pooled features are clustered (default: the last conv-shaped layer)"})
    steps: int = field(default=192, metadata={"help": "optimization steps per facet (all facets run as one batch)"})
    size: int = field(default=224, metadata={"help": "image size"})
    lr: float = field(default=0.03, metadata={"help": "Adam learning rate"})
    center_bias: float = field(default=0.02, metadata={"help": "weight of the centre-bias penalty (per pixel)"})
    tv: float = field(default=0.5, metadata={"help": "weight of the TV penalty (per pixel)"})
    examples: int = field(default=4, metadata={"help": "example images drawn per facet"})
    seed: int = field(default=0, metadata={"help": "seed of k-means and transforms"})


@dataclass
class Facets:
    """Result: ``images`` (F, 3, H, W) one visualization per facet; ``clusters`` image indices (into the
    dataset) of each facet, strongest first; ``examples`` (F lists of (1,3,H,W)); ``figure`` (PIL)."""

    images: torch.Tensor
    clusters: list[list[int]]
    examples: list[list[torch.Tensor]]
    scores: torch.Tensor
    figure: object
    optim: OptimResult


def _last_spatial_layer(model: Model) -> str:
    spatial = [li.name for li in model.layers() if len(li.shape) == 3 and li.name.count(".") <= 1]
    if not spatial:
        raise ConvlensError("no layer with a (C, H, W) output to cluster; pass feature_layer=...")
    return spatial[-1]


def _kmeans(x: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    from sklearn.cluster import KMeans
    return torch.as_tensor(KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x.double().numpy()))


def visualize_facets(model: Model, layer_or_class: str, channel, images, n_facets: int | None = None,
                     config: FacetsConfig | None = None, *, progress=None, callback=None, **overrides) -> Facets:
    """One visualization per facet of a channel (or class), each started from a cluster's mean image.

    Args:
        model: a ``convlens.Model``.
        layer_or_class: a layer name (then ``channel`` is a channel of it) or "class" (then ``channel`` is
            a class index or name and the top images are those with the highest logit).
        images: the dataset: a tensor (N, 3, H, W), a ``sample_dataset()``, or anything ``top_activations``
            takes (read once).
        n_facets: number of clusters (overrides the config).
    Returns:
        ``Facets``.
    Example:
        >>> f = convlens.visualize_facets(model, "features.14", 12, convlens.sample_dataset(200), n_facets=3)
    """
    from ..images.io import fit
    from ..probe.probe import activations
    from ..render import grid
    cfg = replace(config or FacetsConfig(), **overrides)
    if n_facets is not None:
        cfg = replace(cfg, n_facets=int(n_facets))
    data = images.tensor() if hasattr(images, "tensor") else images
    if not isinstance(data, torch.Tensor):
        data = torch.cat([fit(t if t.ndim == 4 else t[None], cfg.size) for t in data])
    data = fit(data.float(), model.input_size)
    is_class = layer_or_class in ("class", "logits")
    if is_class:
        c = model.class_index(channel)
        with torch.inference_mode():
            scores = torch.cat([model(data[i:i + 32])[:, c] for i in range(0, len(data), 32)])
        order = scores.argsort(descending=True)[:cfg.top]
        objective = O.class_logit(c)
        label = model.classes[c] if model.classes else str(c)
    else:
        from ..inspect.topk import top_activations
        top = top_activations(model, data, layer_or_class, [int(channel)], k=min(cfg.top, len(data)), per_image=True)
        order = top.image_index[0][top.image_index[0] >= 0]
        objective = O.channel(layer_or_class, int(channel))
        label = f"{layer_or_class}:{channel}"
    if len(order) < cfg.n_facets:
        raise ConvlensError(f"only {len(order)} top images for {cfg.n_facets} facets; give more images or fewer facets")
    feat_layer = cfg.feature_layer or _last_spatial_layer(model)
    feats = activations(model, data[order], feat_layer)
    feats = feats.flatten(2).mean(2) if feats.ndim == 4 else feats.flatten(1)
    feats = torch.nn.functional.normalize(feats, dim=1)
    lab = _kmeans(feats, cfg.n_facets, cfg.seed)
    clusters = [[int(order[j]) for j in range(len(order)) if lab[j] == f] for f in range(cfg.n_facets)]
    clusters.sort(key=len, reverse=True)
    means = torch.cat([fit(data[cl].mean(0, keepdim=True), cfg.size) for cl in clusters])
    param = make_param("decorrelated", batch=cfg.n_facets, size=cfg.size, init=means)
    npx = cfg.size * cfg.size
    obj = objective - (cfg.center_bias / npx) * O.center_bias() - (cfg.tv / npx) * O.tv()
    res = optimize(model, obj, param, steps=cfg.steps, optimizer="adam", lr=cfg.lr,
                   transforms=T.compose(T.jitter(max(1, cfg.size // 28)), T.random_scale([0.95, 1.0, 1.05])),
                   seed=cfg.seed, progress=progress, callback=callback)
    with torch.no_grad():
        final = objective(O.Features(res.images, res.images, {} if is_class else
                                     {layer_or_class: activations(model, res.images, layer_or_class)},
                                     model(res.images) if is_class else None))
    examples = [[data[i:i + 1] for i in cl[:cfg.examples]] for cl in clusters]
    tiles, labels = [], []
    for f in range(cfg.n_facets):
        tiles.append(res.images[f:f + 1])
        labels.append(f"facet {f + 1} ({len(clusters[f])} imgs)")
        for j in range(cfg.examples):
            tiles.append(examples[f][j] if j < len(examples[f]) else torch.ones(1, 3, 8, 8))
            labels.append("example" if j < len(examples[f]) else "")
    fig = grid(tiles, labels, ncol=1 + cfg.examples, tile=min(cfg.size, 160), upscale="bilinear",
               title=f"facets of {label}")
    return Facets(res.images, clusters, examples, final.cpu(), fig, res)


__all__ = ["FacetsConfig", "Facets", "visualize_facets"]
