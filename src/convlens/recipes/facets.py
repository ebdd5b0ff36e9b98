"""Multifaceted feature visualization (Nguyen, Yosinski & Clune 2016).

A unit responds to several kinds of input ("facets": a grocery-store unit fires for fruit stands and
for shop fronts). Procedure:
  1. find the unit's top-activating images in a dataset (streaming top-k ``inspect.top_activations``,
     one entry per image);
  2. for an inner-layer channel (``patches=True``, the default) cut the patch around each image's
     strongest unit, so the examples are aligned on what the unit sees (for a class: whole images);
  3. describe each example by the global-average-pooled features of a late layer, L2-normalized,
     and cluster them with k-means (k-means++, best of 10) (``n_facets`` clusters);
  4. start one optimization per cluster from the cluster's mean (aligned) image, maximizing the
     channel (weighted toward the centre of the map) minus a centre-bias penalty (the border is
     pulled to grey, Nguyen 2016) and a TV penalty, over octaves (coarse structure first) with
     jitter / scale / rotation, in a decorrelated-colour sigmoid parameterization;
  5. render each facet beside its start (the mean image) and its cluster's examples.

``pick_channel`` chooses a channel whose top images split well into ``n_facets`` groups (k-means
explained variance), for when no particular channel is asked for (``channel=None``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

from ..errors import ConvlensError
from ..images.io import fit
from ..inspect.topk import top_activations
from ..models.model import Model
from ..optim import objectives as O
from ..optim import transforms as T
from ..optim.loop import OptimResult, optimize
from ..optim.params import make_param
from ..probe import receptive_field
from ..probe.probe import activations
from ..render import grid


@dataclass
class FacetsConfig:
    """Multifaceted visualization parameters."""

    n_facets: int = field(default=3, metadata={"help": "number of facets (k-means clusters)"})
    top: int = field(default=24, metadata={"help": "top-activating images to cluster"})
    patches: bool = field(default=True, metadata={
        "help": "inner layers: cluster and average the patch around each image's strongest unit (aligned), "
                "not the whole images"})
    patch: int | None = field(default=None, metadata={
        "help": "patch side in input pixels (default: the receptive field, at most half the input)"})
    feature_layer: str | None = field(default=None, metadata={
        "help": "layer whose pooled features are clustered (default: the last conv-shaped layer)"})
    steps: int = field(default=48, metadata={"help": "optimization steps per octave (all facets run as one batch)"})
    octaves: int = field(default=2, metadata={"help": "octaves (x1.4): coarse structure first, then detail"})
    size: int | None = field(default=None, metadata={
        "help": "facet image size (default: 128 for patches, the model's input size for whole images)"})
    lr: float = field(default=0.02, metadata={"help": "Adam learning rate (decorrelated sigmoid parameterization)"})
    center_bias: float = field(default=2.0, metadata={
        "help": "weight of the centre-bias penalty, relative to the channel's activation on the mean image"})
    tv: float = field(default=30.0, metadata={
        "help": "weight of the TV penalty (per pixel), relative to the channel's activation on the mean image"})
    examples: int = field(default=4, metadata={"help": "example images drawn per facet"})
    seed: int = field(default=0, metadata={"help": "seed of k-means and transforms"})


@dataclass
class Facets:
    """Result of ``visualize_facets``.

    Attributes:
        images: (F, 3, S, S) one visualization per facet; starts: (F, 3, S, S) the cluster mean images
            they started from; scores / start_scores: (F,) the unit's objective (centre-weighted channel
            activation, or the class logit) of each.
        clusters: dataset indices of each facet's images, biggest cluster first; examples: the
            (1, 3, h, w) example images (patches) of each facet; figure: PIL image, one row per facet
            (facet, start, examples); layer, channel: what was visualized.
    """

    images: torch.Tensor
    clusters: list[list[int]]
    examples: list[list[torch.Tensor]]
    scores: torch.Tensor
    figure: object
    optim: OptimResult
    starts: torch.Tensor = None
    start_scores: torch.Tensor = None
    layer: str = ""
    channel: int | str = 0


def _last_spatial_layer(model: Model) -> str:
    spatial = [li.name for li in model.layers() if len(li.shape) == 3 and li.name.count(".") <= 1]
    if not spatial:
        raise ConvlensError("no layer with a (C, H, W) output to cluster; pass feature_layer=...")
    return spatial[-1]


def _kmeans(x: torch.Tensor, k: int, seed: int, n_init: int = 10, iters: int = 100):
    """Lloyd's k-means with k-means++ starts, best of ``n_init`` (in torch: a few hundred points at most;
    sklearn's OpenMP pool fights torch's threads and made the following optimization 20x slower).
    Returns (labels (N,), inertia)."""
    x = x.double()
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ConvlensError(f"k-means needs 1 <= k <= {n} points, got k={k}")
    g = torch.Generator().manual_seed(int(seed))
    best_lab, best_in = None, float("inf")
    for _ in range(n_init):
        cent = x[torch.randint(n, (1,), generator=g)]
        for _ in range(1, k):  # k-means++: next centre drawn with probability ~ squared distance
            d2 = torch.cdist(x, cent).pow(2).min(1).values
            p = d2 / d2.sum() if float(d2.sum()) > 0 else torch.full((n,), 1.0 / n, dtype=x.dtype)
            cent = torch.cat([cent, x[torch.multinomial(p, 1, generator=g)]])
        lab = None
        for _ in range(iters):
            new = torch.cdist(x, cent).argmin(1)
            if lab is not None and torch.equal(new, lab):
                break
            lab = new
            for j in range(k):
                if bool((lab == j).any()):
                    cent[j] = x[lab == j].mean(0)
        inertia = float((x - cent[lab]).pow(2).sum())
        if inertia < best_in - 1e-12:
            best_lab, best_in = lab.clone(), inertia
    return best_lab, best_in


def _pooled(model: Model, images: torch.Tensor, layer: str, batch: int = 32) -> torch.Tensor:
    """L2-normalized global-average-pooled features of ``layer``: (N, C)."""
    out = []
    for i in range(0, len(images), batch):
        a = activations(model, images[i:i + batch], layer)
        out.append(a.flatten(2).mean(2) if a.ndim == 4 else a.flatten(1))
    return F.normalize(torch.cat(out), dim=1)


def centered_channel(layer: str, ch, sigma: float = 0.25) -> O.Objective:
    """Channel activation weighted toward the centre of the map: ``sum_yx w_yx A[c, y, x]`` with
    Gaussian weights ``w`` (std ``sigma`` x map size, summing to 1): the unit's pattern is drawn in the
    middle of the image, as for one neuron, but the optimization still sees the whole map."""
    def fn(f: O.Features):
        a = f[layer]
        n, _, h, w = a.shape
        yy = (torch.arange(h, device=a.device, dtype=a.dtype) - (h - 1) / 2) / (sigma * h)
        xx = (torch.arange(w, device=a.device, dtype=a.dtype) - (w - 1) / 2) / (sigma * w)
        wt = torch.exp(-0.5 * (yy[:, None] ** 2 + xx[None, :] ** 2))
        wt = wt / wt.sum()
        idx = O.per_image_index(ch, n, a.device)
        sel = a[torch.arange(n, device=a.device), idx]
        return (sel * wt).flatten(1).sum(1)
    return O.Objective(fn, [layer], name=f"centered_channel({layer}, {ch})")


def _crop(img: torch.Tensor, cy: float, cx: float, side: int, fill: float = 0.5) -> torch.Tensor:
    """(1, 3, side, side) square of ``img`` (1, 3, H, W) centred at (cy, cx), padded with ``fill``."""
    H, W = img.shape[-2:]
    top, left = int(round(cy - side / 2)), int(round(cx - side / 2))
    out = img.new_full((1, 3, side, side), fill)
    t, l, b, r = max(top, 0), max(left, 0), min(top + side, H), min(left + side, W)
    if b > t and r > l:
        out[..., t - top:b - top, l - left:r - left] = img[..., t:b, l:r]
    return out


def _dataset(model: Model, images) -> tuple[torch.Tensor, list[str] | None]:
    names = list(images.names) if hasattr(images, "names") else None
    data = images.tensor() if hasattr(images, "tensor") else images
    if not isinstance(data, torch.Tensor):
        data = torch.cat([fit(t if t.ndim == 4 else t[None], model.input_size) for t in data])
    return fit(data.float(), model.input_size), names


def pick_channel(model: Model, layer: str, images, n_facets: int = 3, top: int = 24, *, channels=None,
                 seed: int = 0, feature_layer: str | None = None, progress=None) -> int:
    """The channel of ``layer`` whose top images split best into ``n_facets`` groups.

    For each channel: its ``top`` strongest images (one entry per image, streaming top-k), their
    pooled late-layer features, k-means; score = explained variance ``1 - inertia_k / inertia_1``,
    counting only channels whose smallest cluster holds at least ``top / (2 n_facets)`` images.

    Example:
        >>> c = pick_channel(model, "features.10", convlens.sample_dataset(200), n_facets=3)
    """
    data, _ = _dataset(model, images)
    k = min(top, len(data))
    t = top_activations(model, data, layer, channels, k=k, per_image=True, progress=progress)
    used = sorted(set(t.image_index[t.image_index >= 0].tolist()))
    feats = dict(zip(used, _pooled(model, data[used], feature_layer or _last_spatial_layer(model))))
    best, best_score = None, -1.0
    for r, c in enumerate(t.channels):
        idx = [int(i) for i in t.image_index[r] if i >= 0]
        if len(idx) < 2 * n_facets:
            continue
        x = torch.stack([feats[i] for i in idx])
        lab, inertia = _kmeans(x, n_facets, seed, n_init=4)
        total = float((x - x.mean(0)).pow(2).sum())
        if int(torch.bincount(lab, minlength=n_facets).min()) < max(2, k // (2 * n_facets)) or total <= 0:
            continue
        score = 1 - inertia / total
        if score > best_score:
            best, best_score = c, score
    if best is None:
        raise ConvlensError(f"no channel of {layer} has top images in {n_facets} balanced groups; "
                            "give more images or fewer facets")
    return int(best)


def visualize_facets(model: Model, layer_or_class: str, channel, images, n_facets: int | None = None,
                     config: FacetsConfig | None = None, *, progress=None, callback=None, **overrides) -> Facets:
    """One visualization per facet of a channel (or class), each started from a cluster's mean image.

    Args:
        model: a ``convlens.Model``.
        layer_or_class: a layer name (then ``channel`` is a channel of it, or None to ``pick_channel``)
            or "class" (then ``channel`` is a class index or name; top images by logit, whole images).
        images: the dataset: a tensor (N, 3, H, W), a ``sample_dataset()``, or a list of images.
        n_facets: number of clusters (overrides the config).
    Returns:
        ``Facets`` (facet images, their starts, clusters, examples, figure).
    Example:
        >>> f = convlens.visualize_facets(model, "features.10", 8, convlens.sample_dataset(200), n_facets=3)
        >>> f.figure.save("facets.png")
    """
    cfg = replace(config or FacetsConfig(), **overrides)
    if n_facets is not None:
        cfg = replace(cfg, n_facets=int(n_facets))
    data, names = _dataset(model, images)
    is_class = layer_or_class in ("class", "logits")
    patches = cfg.patches and not is_class
    feat_layer = cfg.feature_layer or _last_spatial_layer(model)
    if is_class:
        c = model.class_index(channel)
        with torch.inference_mode():
            scores = torch.cat([model(data[i:i + 32])[:, c] for i in range(0, len(data), 32)])
        order = scores.argsort(descending=True)[:cfg.top].tolist()
        crops = [data[i:i + 1] for i in order]
        objective = O.class_logit(c)
        label, channel = (model.classes[c] if model.classes else str(c)), c
    else:
        if channel is None:
            channel = pick_channel(model, layer_or_class, data, cfg.n_facets, cfg.top, seed=cfg.seed,
                                   feature_layer=cfg.feature_layer)
        top = top_activations(model, data, layer_or_class, [int(channel)], k=min(cfg.top, len(data)), per_image=True)
        keep = top.image_index[0] >= 0
        order = top.image_index[0][keep].tolist()
        pos = top.positions[0][keep].tolist()
        if patches:
            rf = receptive_field(model, layer_or_class)
            side = cfg.patch or min(rf.size[0], model.input_size[0] // 2)
            crops = []
            for i, (y, x) in zip(order, pos):
                t, lft, b, r = rf.box(y, x)
                crops.append(_crop(data[i:i + 1], (t + b) / 2, (lft + r) / 2, side))
        else:
            crops = [data[i:i + 1] for i in order]
        objective = centered_channel(layer_or_class, int(channel)) if patches else O.channel(layer_or_class, int(channel))
        label = f"{layer_or_class}:{channel}"
    if len(order) < cfg.n_facets:
        raise ConvlensError(f"only {len(order)} top images for {cfg.n_facets} facets; give more images or fewer facets")
    crops_t = torch.cat(crops)
    lab, _ = _kmeans(_pooled(model, crops_t, feat_layer), cfg.n_facets, cfg.seed)
    members = [[j for j in range(len(order)) if lab[j] == f] for f in range(cfg.n_facets)]
    members.sort(key=len, reverse=True)
    clusters = [[int(order[j]) for j in mem] for mem in members]

    size = cfg.size or (128 if patches else model.input_size[0])
    starts = torch.cat([fit(crops_t[mem].mean(0, keepdim=True), size) for mem in members])

    def value(x):
        with torch.no_grad():
            acts = {} if is_class else {layer_or_class: activations(model, x, layer_or_class)}
            return objective(O.Features(x, x, acts, model(x) if is_class else None)).cpu()
    start_scores = value(starts)
    # penalty weights are relative to the unit's typical value, so one setting fits every layer / class
    scale = float(start_scores.abs().mean().clamp(min=1e-3))
    obj = objective - (cfg.center_bias * scale) * (O.center_bias() / (3 * size * size)) \
        - (cfg.tv * scale) * (O.tv() / (3 * size * size))
    param = make_param("decorrelated", batch=cfg.n_facets, size=size, init=starts.clamp(0.02, 0.98))
    j = max(1, size // 16)
    res = optimize(model, obj, param, steps=cfg.steps, optimizer="adam", lr=cfg.lr, octaves=cfg.octaves,
                   transforms=T.compose(T.pad(j, value=0.5), T.jitter(j), T.random_scale([0.9, 0.95, 1.0, 1.05, 1.1]),
                                        T.random_rotate(list(range(-8, 9))), T.jitter(max(1, j // 2))),
                   seed=cfg.seed, progress=progress, callback=callback)
    images = res.images
    final = value(images)

    examples = [[crops[j] for j in mem[:cfg.examples]] for mem in members]
    tiles, labels = [], []
    tile = min(size, 160)
    for f in range(cfg.n_facets):
        tiles += [images[f:f + 1], starts[f:f + 1]]
        labels += [f"facet {f + 1}: {float(final[f]):.3g}", f"start (mean of {len(clusters[f])})"]
        for e in range(cfg.examples):
            if e < len(examples[f]):
                tiles.append(examples[f][e])
                i = clusters[f][e]
                labels.append(names[i].split(" ")[0] if names else f"#{i}")
            else:
                tiles.append(torch.ones(1, 3, 8, 8))
                labels.append("")
    fig = grid(tiles, labels, ncol=2 + cfg.examples, tile=tile, upscale="bilinear",
               title=f"facets of {label}: optimized | start | examples")
    return Facets(images, clusters, examples, final, fig, res, starts, start_scores, layer_or_class, channel)


__all__ = ["FacetsConfig", "Facets", "visualize_facets", "pick_channel", "centered_channel"]
