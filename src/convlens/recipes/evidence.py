"""Natural evidence beside a synthetic image: the top-k dataset exemplars of the same unit, a
plausibility score, and transferability to other models.

People predict what a unit responds to better from natural top-k exemplars than from synthetic
visualizations (Borowski et al. 2021; Zimmermann et al. 2021), and visualizations can be made to
mislead (Geirhos et al. 2024), so a visualization is shown with:

* **exemplars**: for a class, the k images of a dataset with the highest logit of that class; for a
  channel or a neuron, the k maximally activating patches of the channel (``max_activating_patches``);
* **plausibility** (Fel et al. 2023, MACO's benchmark): the mean cosine similarity between the
  visualization and the exemplars in the model's own representation, ``phi(x)`` = the spatial mean of
  a layer's activations (default: the deepest layer with a spatial map, i.e. the penultimate
  representation), each image resized to the model's input; ``reference`` is the same mean over pairs
  of exemplars (how alike natural evidence of this unit is), so ``plausibility / reference`` near 1
  means "as close to the exemplars as they are to each other";
* **transferability** (class targets): the probability other models give the target class on the
  visualization, and whether it is their top-1.

    v = convlens.visualize_class(m, "strawberry", preset="maco")
    e = convlens.natural_evidence(m, v, images="imagenet20", k=6)
    e.plausibility, e.reference, e.transfer     # (N,), (N,), {"efficientnet_lite2": (N,) probs, "efficientnet_lite0": ...}
    e.figure().save("evidence.png")             # one row per visualization: it, then its exemplars
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from ..drivers.forward import batched_forward
from ..errors import ConvlensError
from ..images import fit, load_image
from ..images.resolve import resolve_images
from ..inspect.patches import max_activating_patches
from ..models import load_model
from ..models.model import Model
from ..probe.probe import activations
from ..render import grid

# The other models asked whether a class visualization reads as its class ("two other models", as in
# MACO's benchmark): both ship offline (docs/assets.md) and differ from MobileNetV2 in depth, width,
# resolution and training; the lite0 forward pass is the cheapest ImageNet classifier we have after it.
DEFAULT_TRANSFER = ("efficientnet_lite2", "efficientnet_lite0")


@dataclass
class Evidence:
    """Natural evidence for each visualization (one row each).

    Attributes:
        labels: the visualizations' labels; images: (N, 3, H, W) the visualizations.
        exemplars: per visualization, (k, 3, h, w) natural images or patches, strongest first;
        exemplar_names, exemplar_values: their names and logits / activations.
        plausibility: (N,) mean cosine similarity of each visualization to its exemplars at ``layer``.
        reference: (N,) mean cosine similarity between pairs of those exemplars.
        noise: (N,) the same score of uniform noise (a floor), per row.
        transfer: {model name: (N,) probability of the target class}; transfer_top1: {name: (N,) bool}.
        layer: the representation used.
    """

    labels: list[str]
    images: torch.Tensor
    exemplars: list[torch.Tensor]
    exemplar_names: list[list[str]]
    exemplar_values: list[torch.Tensor]
    plausibility: torch.Tensor
    reference: torch.Tensor
    noise: torch.Tensor
    layer: str
    transfer: dict = field(default_factory=dict)
    transfer_top1: dict = field(default_factory=dict)

    def text(self) -> list[str]:
        """One line per visualization: plausibility, reference, noise floor and transfer."""
        out = []
        for i, lab in enumerate(self.labels):
            t = "".join(f", {n} p={float(p[i]):.2f}{' top-1' if bool(self.transfer_top1[n][i]) else ''}"
                        for n, p in self.transfer.items())
            out.append(f"{lab}: plausibility {float(self.plausibility[i]):.3f} (exemplars among themselves "
                       f"{float(self.reference[i]):.3f}, noise {float(self.noise[i]):.3f}){t}")
        return out

    def figure(self, tile: int = 128, synthetic: torch.Tensor | None = None):
        """One row per visualization: the synthetic image (or ``synthetic``, e.g. ``v.transparent()``),
        then its k exemplars labelled with their logit / activation."""
        syn = self.images if synthetic is None else synthetic
        k = max(len(e) for e in self.exemplars)
        tiles, labels = [], []
        for i, lab in enumerate(self.labels):
            tiles.append(syn[i])
            labels.append(f"{lab[:18]} plaus {float(self.plausibility[i]):.2f}/{float(self.reference[i]):.2f}")
            for j in range(k):
                if j < len(self.exemplars[i]):
                    tiles.append(self.exemplars[i][j])
                    labels.append(f"{float(self.exemplar_values[i][j]):.1f} {self.exemplar_names[i][j]}")
                else:
                    tiles.append(torch.ones(3, 8, 8))
                    labels.append("")
        return grid(tiles, labels, ncol=k + 1, tile=tile, upscale="bilinear", label_size=9)


def penultimate_layer(model: Model) -> str:
    """The deepest layer with a (C, H, W) output: the representation the classifier reads."""
    spatial = [li.name for li in model.layers() if len(li.shape) == 3]
    if not spatial:
        raise ConvlensError(f"{model.name} has no layer with a (C, H, W) output; pass layer=... for plausibility")
    return spatial[-1]


def pooled_features(model: Model, images: torch.Tensor, layer: str, batch_size: int = 32) -> torch.Tensor:
    """(N, C) spatial mean of ``layer``'s activations on ``images`` resized to the model's input."""
    x = F.interpolate(images, size=tuple(model.input_size), mode="bilinear", antialias=True, align_corners=False)
    out = []
    for s in range(0, x.shape[0], batch_size):
        a = activations(model, x[s:s + batch_size].clamp(0, 1), layer)
        out.append(a.flatten(2).mean(2) if a.ndim == 4 else a.flatten(1))
    return torch.cat(out)


def plausibility(model: Model, images: torch.Tensor, exemplars: torch.Tensor, layer: str | None = None
                 ) -> tuple[torch.Tensor, float]:
    """(mean cosine similarity of each of ``images`` to ``exemplars``, mean over exemplar pairs).

    Args:
        images: (N, 3, H, W) in [0, 1]; exemplars: (k, 3, h, w) in [0, 1], k >= 2.
        layer: representation (default ``penultimate_layer(model)``).
    Returns:
        ((N,) scores, reference), both cosines of spatially pooled features (``pooled_features``).
    """
    layer = layer or penultimate_layer(model)
    fi = F.normalize(pooled_features(model, images, layer), dim=1)
    fe = F.normalize(pooled_features(model, exemplars, layer), dim=1)
    k = fe.shape[0]
    if k < 2:
        raise ConvlensError("plausibility needs at least 2 exemplars; raise k")
    sim = fe @ fe.T
    ref = float((sim.sum() - sim.diagonal().sum()) / (k * (k - 1)))
    return (fi @ fe.T).mean(1), ref


def class_exemplars(model: Model, images, classes: Sequence[int], k: int = 6, *, batch_size: int = 32):
    """For each class, the k images of ``images`` with the highest logit: ([(k, 3, H, W)], names, logits)."""
    data = resolve_images(images, size=model.input_size[0])
    items = data.items()
    logits = torch.cat([b.logits for b in batched_forward(model, items, batch_size=batch_size, truncate=False)])
    namer = getattr(items, "name", None)
    ex, names, values = [], [], []
    for c in classes:
        v, idx = logits[:, c].topk(min(k, logits.shape[0]))
        imgs = []
        for i in idx.tolist():
            it = items[i]
            imgs.append(fit(it if isinstance(it, torch.Tensor) else load_image(it), model.input_size))
        ex.append(torch.cat(imgs))
        names.append([namer(i) if callable(namer) else _name(items[i], i) for i in idx.tolist()])
        values.append(v.cpu())
    return ex, names, values


def _name(item, i: int) -> str:
    return Path(item).name if isinstance(item, (str, Path)) else f"#{i}"


def natural_evidence(model: Model, viz, images="samples:300", k: int = 6, *, layer: str | None = None,
                     transfer: Sequence[str] | None = None, seed: int = 0) -> Evidence:
    """Exemplars, plausibility and transferability of a visualization (see the module doc).

    Args:
        model: the ``convlens.Model`` the visualization was made for.
        viz: a ``Visualization`` (from ``visualize_class`` / ``visualize_channel`` / ``visualize_neuron``).
        images: where the exemplars come from (``resolve_images``: "samples:300", "imagenet20", a folder).
        k: exemplars per visualization (>= 2).
        layer: representation of the plausibility score (default: the penultimate layer).
        transfer: other models (``load_model`` names) asked for the target class; class targets only
            (their class list must be the model's). Default ``DEFAULT_TRANSFER`` (two offline ImageNet
            networks other than MobileNetV2) without ``model`` itself. Empty: skip.
        seed: of the noise floor.
    Returns:
        ``Evidence``; ``.figure()`` draws it, ``.text()`` says it.
    Example:
        >>> e = convlens.natural_evidence(m, convlens.visualize_class(m, "strawberry", steps=64), "imagenet20")
    """
    unit = getattr(viz, "unit", None)
    if unit is None:
        raise ConvlensError("this visualization does not say which unit it shows; make it with visualize_class, "
                            "visualize_channel or visualize_neuron")
    if k < 2:
        raise ConvlensError(f"k must be at least 2 exemplars, got {k}")
    if unit["kind"] == "class":
        ex, names, values = class_exemplars(model, images, unit["index"], k)
    else:
        data = resolve_images(images, size=model.input_size[0])
        ex, names, values = patch_exemplars(max_activating_patches(model, data.items(), unit["layer"],
                                                                   unit["channels"], k))
    e = score_exemplars(model, viz.images, list(viz.labels), ex, names, values, layer=layer, seed=seed)
    if unit["kind"] == "class":
        if transfer is None:
            transfer = [n for n in DEFAULT_TRANSFER if n != model.name]
        e.transfer, e.transfer_top1 = transferability(model, e.images, unit["index"], transfer)
    return e


def patch_exemplars(p) -> tuple[list[torch.Tensor], list[list[str]], list[torch.Tensor]]:
    """The exemplars of each channel of a ``Patches`` result (``max_activating_patches``): its filled
    top-k patches, their image names and activations, strongest first."""
    ex, names, values = [], [], []
    for r in range(len(p.channels)):
        ok = p.top.image_index[r] >= 0
        ex.append(p.crops[r][ok])
        names.append([p.names.get(int(i), f"#{int(i)}") for i in p.top.image_index[r][ok]])
        values.append(p.top.values[r][ok])
    return ex, names, values


def score_exemplars(model: Model, images: torch.Tensor, labels: Sequence[str], exemplars: Sequence[torch.Tensor],
                    names: Sequence[Sequence[str]], values: Sequence[torch.Tensor], *, layer: str | None = None,
                    seed: int = 0) -> Evidence:
    """``Evidence`` of ``images`` (N, 3, H, W) against given exemplars (one (k_i, 3, h, w) set per image):
    plausibility, the exemplars' reference and uniform noise's floor (no transfer). ``natural_evidence``
    finds the exemplars, then calls this; the explorer's unit view calls it with its patch pass."""
    layer = layer or penultimate_layer(model)
    imgs = images.detach().cpu()
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(1, 3, *model.input_size, generator=g)
    plaus, ref, floor = [], [], []
    for i in range(imgs.shape[0]):
        s, r = plausibility(model, torch.cat([imgs[i:i + 1], F.interpolate(noise, size=imgs.shape[-2:])]),
                            exemplars[i], layer)
        plaus.append(float(s[0]))
        floor.append(float(s[1]))
        ref.append(r)
    return Evidence(list(labels), imgs, list(exemplars), [list(n) for n in names], list(values),
                    torch.tensor(plaus), torch.tensor(ref), torch.tensor(floor), layer)


def transferability(model: Model, images: torch.Tensor, classes: Sequence[int], others: Sequence[str]):
    """({name: (N,) softmax probability of each image's class}, {name: (N,) top-1 bool}) under other models."""
    probs, top1 = {}, {}
    idx = torch.as_tensor(list(classes))
    for name in others:
        other = load_model(name)
        if other.classes != model.classes:
            raise ConvlensError(f"{name} has other classes than {model.name}; transfer needs the same class list")
        x = F.interpolate(images, size=tuple(other.input_size), mode="bilinear", antialias=True, align_corners=False)
        with torch.no_grad():
            p = other(x.clamp(0, 1)).softmax(1)
        probs[name] = p.gather(1, idx[:, None])[:, 0].cpu()
        top1[name] = (p.argmax(1).cpu() == idx)
    return probs, top1


__all__ = ["Evidence", "natural_evidence", "plausibility", "pooled_features", "penultimate_layer",
           "class_exemplars", "patch_exemplars", "score_exemplars", "transferability", "DEFAULT_TRANSFER"]
