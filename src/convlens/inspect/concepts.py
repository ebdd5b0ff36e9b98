"""Concept discovery: what a layer's activations are made of, and which parts a class relies on.

CRAFT (Fel et al., CVPR 2023; after ACE, Ghorbani et al. 2019):

1. **Crops.** Random square crops of the images (side ``crop_size`` x the shorter side), each resized
   to the model's input size, go through the network up to ``layer``; each crop's activations are
   averaged over positions: a matrix A (crops, C).
2. **Concepts.** A ~ U W by non-negative matrix factorization (``inspect.nmf``, HALS): the n rows of
   W (n, C) are the concepts, U (crops, n) how much of each a crop holds; a concept is shown by the
   crops with the largest coefficient (``top``).
3. **Importance** for the class, on each image's activation map a (h*w positions, C): its
   coefficients u = NNLS(a, W) (``inspect.nmf.nnls``, NMF's transform), and
   - **Sobol total indices** (CRAFT): the class logit of the network run on from the layer with
     a' = (u * m) W, for masks m in [0, 1]^n drawn by quasi-Monte-Carlo (``inspect.sobol``:
     Saltelli design, Jansen estimator; ``designs`` rows per factor), averaged over images;
   - **gradient x input** on the coefficients: sum over positions of u_j * dS/du_j at a = u W.
4. **Heat map** of a concept on any image: its coefficient u_j at each position (the image's
   activations projected on W by NNLS), upsampled to the image.

Negative activations. NMF needs A >= 0; post-ReLU layers are. For a layer with negative values
(a linear bottleneck, a block's output before its activation) ``negatives`` says what to do:
"split" (default) makes each channel two non-negative ones, a = max(a, 0) - max(-a, 0), so the
factorization covers the signed activations and a reconstruction is put back as W+ - W- (lossless;
the split is decided on the crops, and only when they hold a negative value); "clip" keeps max(a, 0)
(CRAFT's assumption: the negative part is dropped, so the network is run on from clipped values);
"refuse" raises.

    c = convlens.concepts(m, fish_photos, "features.16.conv.0", "tench", n=8)
    c.plot().save("concepts.png"); c.heatmap(image, 0).save("concept0.png")
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConvlensError
from ..fields import resolve_config
from ..images import fit, load_image
from ..images.io import save_png
from ..models.model import Model
from ..probe import Probe
from ..probe.patch import Patch
from ..progress import call as call_progress
from .nmf import nmf, nnls
from .sobol import sobol_design, total_indices


@dataclass
class ConceptsConfig:
    """Parameters of ``concepts`` (CRAFT's defaults where the paper gives one)."""

    n: int = field(default=10, metadata={"help": "Number of concepts (the NMF rank).", "range": (1, 64)})
    crops: int = field(default=32, metadata={"help": "Random crops per image.", "range": (1, 4096)})
    crop_size: float = field(default=0.35, metadata={
        "help": "Crop side as a fraction of the image's shorter side (each crop is resized to the model's input).",
        "range": (0.05, 1.0)})
    designs: int = field(default=32, metadata={
        "help": "Sobol quasi-Monte-Carlo designs per image (CRAFT: 32); the network runs designs x (n + 2) times "
                "from the layer per image.", "range": (4, 4096)})
    importance_images: int = field(default=16, metadata={
        "help": "Images used for the importances (the first ones; 0: all).", "range": (0, 100000)})
    negatives: Literal["split", "clip", "refuse"] = field(default="split", metadata={
        "help": "Negative activations: split (a = max(a,0) - max(-a,0), lossless), clip (max(a,0)) or refuse."})
    top: int = field(default=10, metadata={"help": "Crops shown per concept.", "range": (1, 100)})
    iters: int = field(default=400, metadata={"help": "NMF sweeps at most.", "range": (1, 100000)})
    seed: int = field(default=0, metadata={"help": "Seed of the crops and of the Sobol sequence.",
                                           "range": (0, 2 ** 31 - 1)})


@dataclass
class Concepts:
    """Result of ``concepts``: concepts sorted by Sobol importance (index 0: the most important).

    Attributes:
        W: (n, C') concept basis (C' = 2C when the activations were split); U: (crops, n) the crops'
            coefficients; boxes: (crops, 4) long (image index, top, left, side) of each crop in
            ``images`` (N, 3, H, W), the images as the network saw them; top: (n, top) crop
            indices of each concept's strongest crops; sobol, gxi: (n,) importances for the class;
            error: NMF's relative reconstruction error ||A - UW||_F / ||A||_F on the crops;
        A: (crops, C') the factorized matrix (the crops' mean activations after the negatives rule).
    """

    model: Model = field(repr=False)
    layer: str
    class_index: int
    class_name: str
    W: torch.Tensor = field(repr=False)
    U: torch.Tensor = field(repr=False)
    boxes: torch.Tensor = field(repr=False)
    images: torch.Tensor = field(repr=False)
    top: torch.Tensor = field(repr=False)
    sobol: torch.Tensor
    gxi: torch.Tensor
    error: float
    split: bool
    iterations: int
    config: ConceptsConfig = field(repr=False)
    A: torch.Tensor = field(repr=False, default=None)
    peak: torch.Tensor = field(repr=False, default=None)  # (n,) each concept's largest coefficient on the class images

    @property
    def n(self) -> int:
        return self.W.shape[0]

    def crops(self, k: int, size: int = 72) -> torch.Tensor:
        """Concept ``k``'s top crops, cut from the images: (top, 3, size, size)."""
        self._check_k(k)
        out = []
        for i in self.top[k].tolist():
            b, y, x, s = self.boxes[i].tolist()
            out.append(F.interpolate(self.images[b:b + 1, :, y:y + s, x:x + s], size=(size, size), mode="bilinear",
                                     align_corners=False, antialias=True))
        return torch.cat(out).clamp(0, 1)

    def maps(self, image) -> torch.Tensor:
        """Every concept's coefficient map on ``image`` (any image; fitted to the model's input):
        (n, h, w) at the layer's resolution (NNLS projection of each position on W)."""
        x = _as_batch(self.model, image)[:1]
        with Probe(self.model, self.layer, stop=True, detach=True) as p, torch.no_grad():
            p.run(x)
            a = p[self.layer]
        return _coefficients(a, self.W, self.split)[0]

    def heatmap(self, image, k: int, alpha: float = 0.55):
        """Concept ``k``'s map on ``image``, upsampled and overlaid (a PIL image). One fixed scale per
        concept: 0 = dark, the concept's strongest coefficient on the class's own images = bright, so
        an image without the concept stays dark (not stretched to its own maximum)."""
        from PIL import Image

        from ..render.figures import as_pil, colormap
        self._check_k(k)
        x = _as_batch(self.model, image)[:1]
        m = self.maps(x)[k]
        up = F.interpolate(m[None, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
        ref = float(self.peak[k]) if self.peak is not None and float(self.peak[k]) > 0 else max(float(up.max()), 1e-12)
        base = as_pil(x[0])
        hm = Image.fromarray(colormap((up / ref).clamp(0, 1).numpy())).resize(base.size)
        return Image.blend(base, hm, alpha)

    def plot(self, tile: int = 64):
        """One row per concept (its top crops, titled with both importances) under a bar chart of
        the importances (Sobol total index and gradient x input, each scaled to its maximum)."""
        from ..render import grid, stack_rows
        rows = [self._bars()]
        for k in range(self.n):
            rows.append(grid(list(self.crops(k, tile)), ncol=self.top.shape[1], pad=2,
                             title=f"concept {k + 1}: Sobol {float(self.sobol[k]):.3f}, "
                                   f"grad x input {float(self.gxi[k]):.3g}"))
        return stack_rows(rows)

    def _bars(self):
        from ..render.figures import fig_to_pil, new_figure
        fig, ax = new_figure(max(4.0, 0.45 * self.n + 2), 2.6)
        k = np.arange(self.n)
        s = self.sobol.numpy() / max(float(self.sobol.abs().max()), 1e-12)
        g = self.gxi.numpy() / max(float(self.gxi.abs().max()), 1e-12)
        ax.bar(k - 0.2, s, 0.4, label="Sobol total index", color="#d9822b")
        ax.bar(k + 0.2, g, 0.4, label="grad x input", color="#4a7ab5")
        ax.set_xticks(k, [str(i + 1) for i in k])
        ax.set_xlabel("concept")
        ax.set_ylabel("importance / max")
        ax.axhline(0, color="#888", lw=0.5)
        ax.set_title(f"'{self.class_name}' at {self.layer}: {self.n} concepts, NMF error {self.error:.3f}",
                     fontsize=9)
        ax.legend(fontsize=7)
        return fig_to_pil(fig)

    def save(self, path) -> Path:
        """Write ``plot()`` as a PNG (atomically)."""
        return save_png(self.plot(), path)

    def summary(self) -> dict:
        return {"layer": self.layer, "class": self.class_name, "class_index": self.class_index, "n": self.n,
                "crops": int(self.U.shape[0]), "nmf_error": self.error, "split": self.split,
                "sobol": [float(v) for v in self.sobol], "gxi": [float(v) for v in self.gxi]}

    def _check_k(self, k: int) -> None:
        if not 0 <= int(k) < self.n:
            raise ConvlensError(f"concept {k} out of range 0..{self.n - 1}")


# --- helpers ---------------------------------------------------------------------------------

def _as_batch(model: Model, images) -> torch.Tensor:
    """A tensor (N, 3, H, W) or a sequence of paths / tensors -> (N, 3, H, W) fitted to the model's input."""
    size = model.input_size
    if isinstance(images, torch.Tensor):
        x = images[None] if images.ndim == 3 else images
        if x.ndim != 4 or x.shape[1] != 3:
            raise ConvlensError(f"images must be (N, 3, H, W) in [0, 1], got shape {tuple(images.shape)}")
        return fit(x.float(), size)
    if isinstance(images, (str, Path)):
        images = [images]
    items = list(images)
    if not items:
        raise ConvlensError("concepts needs at least one image")
    return torch.cat([load_image(it, size) for it in items])


def _positive(a: torch.Tensor, split: bool) -> torch.Tensor:
    """(..., C) activations -> non-negative (..., C') by the negatives rule (split: C' = 2C)."""
    return torch.cat([a.clamp(min=0), (-a).clamp(min=0)], -1) if split else a.clamp(min=0)


def _signed(a: torch.Tensor, split: bool) -> torch.Tensor:
    """The inverse of ``_positive`` on a reconstruction: (..., C') -> (..., C)."""
    if not split:
        return a
    C = a.shape[-1] // 2
    return a[..., :C] - a[..., C:]


def _positions(a: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) or (N, C) -> (N, h*w, C)."""
    if a.ndim == 2:
        return a[:, None, :]
    if a.ndim != 4:
        raise ConvlensError(f"concepts need a conv (N, C, h, w) or linear (N, C) layer, got shape {tuple(a.shape)}")
    return a.flatten(2).transpose(1, 2)


def _coefficients(a: torch.Tensor, W: torch.Tensor, split: bool) -> torch.Tensor:
    """NNLS coefficients of each position of a (1, C, h, w): (1, n, h, w) (or (1, n, 1, 1) for a vector)."""
    P = _positive(_positions(a)[0].float(), split)
    U = nnls(P, W)
    hw = a.shape[-2:] if a.ndim == 4 else (1, 1)
    return U.T.reshape(1, W.shape[0], *hw)


def _random_crops(x: torch.Tensor, per_image: int, frac: float, gen: torch.Generator) -> torch.Tensor:
    """(crops, 4) long boxes (image, top, left, side): ``per_image`` random squares per image."""
    N, _, H, W = x.shape
    s = max(2, int(round(frac * min(H, W))))
    ys = torch.randint(0, H - s + 1, (N, per_image), generator=gen)
    xs = torch.randint(0, W - s + 1, (N, per_image), generator=gen)
    idx = torch.arange(N)[:, None].expand(N, per_image)
    return torch.stack([idx.reshape(-1), ys.reshape(-1), xs.reshape(-1), torch.full((N * per_image,), s)], 1)


def _crop_batch(x: torch.Tensor, boxes: torch.Tensor, size) -> torch.Tensor:
    out = [x[b:b + 1, :, y:y + s, xx:xx + s] for b, y, xx, s in boxes.tolist()]
    return F.interpolate(torch.cat(out), size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def _layer_vectors(model: Model, layer: str, crops: torch.Tensor) -> torch.Tensor:
    """Each crop's activations at ``layer`` by position: (B, h*w, C), signed."""
    with Probe(model, layer, stop=True, detach=True) as p, torch.no_grad():
        p.run(crops)
        return _positions(p[layer].float())


# --- the technique ---------------------------------------------------------------------------

def concepts(model: Model, images, layer: str, class_=None, config: ConceptsConfig | None = None, *,
             batch_size: int = 32, progress=None, **overrides) -> Concepts:
    """Discover a layer's concepts on images of a class, with their importance for it (CRAFT).

    See the module docs for the method (Fel et al. 2023, "CRAFT: Concept Recursive Activation
    FacTorization for Explainability"; Ghorbani et al. 2019, ACE).

    Args:
        model: a ``convlens.Model``.
        images: (N, 3, H, W) in [0, 1] or a list of image paths / tensors (each fitted to the model's
            input size): photos of the class.
        layer: dotted name of a layer with a (C, h, w) output (``model.layers()``); post-ReLU layers
            suit NMF best (see ``negatives``).
        class_: the class to explain (index or name); None: the class predicted most often on the images.
        batch_size: crops per forward pass.
        progress: ``progress(done, total)`` callback (crop batches, then images for the importances).
    Keyword Args:
        n: concepts (10). crops: random crops per image (32). crop_size: crop side / shorter side
        (0.35). designs: Sobol designs per image (32). importance_images: images for the
        importances (16; 0 = all). negatives: "split" | "clip" | "refuse". top: crops shown per
        concept (10). iters: NMF sweeps (400). seed: crops and Sobol sequence (0).
    Returns:
        ``Concepts`` (sorted by Sobol importance): ``.plot()``, ``.heatmap(image, k)``, ``.crops(k)``,
        ``.maps(image)``, ``.sobol``, ``.gxi``, ``.error``.
    Example:
        >>> c = convlens.concepts(m, photos, "features.16.conv.0", "tench", n=6)
        >>> c.plot().save("tench_concepts.png")
    """
    c = resolve_config(ConceptsConfig, config, overrides)
    if not isinstance(model, Model):
        raise ConvlensError("concepts needs a convlens.Model; wrap your module with convlens.Model.wrap(module)")
    if batch_size < 1:
        raise ConvlensError(f"batch_size must be at least 1, got {batch_size}")
    model.module(layer)  # unknown layer: refused before any work, with the nearest names
    x = _as_batch(model, images)
    size = x.shape[-2:]
    if class_ is None:
        with torch.no_grad():
            preds = torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])
        cls = int(torch.mode(preds).values)
    else:
        cls = model.class_index(class_)
    gen = torch.Generator().manual_seed(c.seed)
    boxes = _random_crops(x, c.crops, c.crop_size, gen)
    n_imp = len(x) if c.importance_images == 0 else min(c.importance_images, len(x))
    n_batches = -(-len(boxes) // batch_size)
    total = n_batches + n_imp

    # 1. crops -> activations (positions kept signed until the negatives rule is decided)
    pos = [_layer_vectors(model, layer, _crop_batch(x, boxes[i:i + batch_size], size))
           for i in _tracked(range(0, len(boxes), batch_size), progress, total)]
    has_neg = any(bool((p < 0).any()) for p in pos)
    if has_neg and c.negatives == "refuse":
        raise ConvlensError(f"layer '{layer}' has negative activations; pick a post-ReLU layer or use "
                            f"negatives='split' (lossless) or 'clip'")
    split = has_neg and c.negatives == "split"
    A = torch.cat([_positive(p, split).mean(1) for p in pos])
    if c.n > min(A.shape):
        raise ConvlensError(f"n={c.n} concepts need at least {c.n} crops and channels (have {A.shape[0]} crops, "
                            f"{A.shape[1]} channels); lower n or add crops")

    # 2. concepts
    f = nmf(A.double(), c.n, iters=c.iters, seed=c.seed)
    U, W = f.U.float(), f.W.float()
    error = float((A - U @ W).norm() / A.norm().clamp(min=1e-30))  # of the float32 factors returned

    # 3. importances on the images
    design = torch.from_numpy(sobol_design(c.n, c.designs, c.seed))
    sob, gxi = torch.zeros(c.n, dtype=torch.float64), torch.zeros(c.n, dtype=torch.float64)
    peak = torch.zeros(c.n)
    with Patch(model, layer) as patch:
        for i in range(n_imp):
            xi = x[i:i + 1]
            if i == 0:
                a = patch.check(xi)
            else:
                with torch.no_grad():
                    patch.run(xi)
                    a = patch.activations[layer].detach()
            s, g, u_max = _importance(patch, xi, a, W, split, cls, design, c.n, c.designs, batch_size)
            peak = torch.maximum(peak, u_max)
            sob += s
            gxi += g
            call_progress(progress, n_batches + i + 1, total)
    sob, gxi = (sob / max(n_imp, 1)).float(), (gxi / max(n_imp, 1)).float()

    order = torch.argsort(sob, descending=True)
    U, W, sob, gxi, peak = U[:, order], W[order], sob[order], gxi[order], peak[order]
    top = torch.argsort(U, dim=0, descending=True)[:min(c.top, len(U))].T.contiguous()
    name = model.classes[cls] if model.classes else str(cls)
    return Concepts(model, layer, cls, name, W, U, boxes, x, top, sob, gxi, error, split, f.iterations, c, A, peak)


def _tracked(it, progress, total):
    for done, v in enumerate(it, 1):
        yield v
        call_progress(progress, done, total)


def _importance(patch: Patch, x, a, W, split, cls, design, n, designs, batch_size):
    """(Sobol total indices (n,), gradient x input (n,), largest coefficients (n,)) of the concepts for
    class ``cls`` on one image."""
    P = _positive(_positions(a)[0].float(), split)            # (hw, C')
    u = nnls(P, W)                                            # (hw, n)
    shape = a.shape[1:]

    def run(coeffs):  # (B, hw, n) -> class logits (B,)
        rec = _signed(coeffs @ W, split)                      # (B, hw, C)
        acts = rec.transpose(1, 2).reshape(len(coeffs), *shape) if a.ndim == 4 else rec[:, 0]
        return patch.run_from(acts.to(a.dtype), x)[:, cls]

    ys = []
    with torch.no_grad():
        for j in range(0, len(design), 4 * batch_size):
            m = design[j:j + 4 * batch_size]
            ys.append(run(u[None] * m[:, None, :]).double())
    sob = torch.from_numpy(total_indices(torch.cat(ys).numpy(), n, designs))
    uu = u.clone().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(run(uu[None]).sum(), uu)
    return sob, (uu.detach() * g).sum(0).double(), u.amax(0)
