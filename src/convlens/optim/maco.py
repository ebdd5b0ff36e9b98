"""MACO: magnitude-constrained feature visualization (Fel et al., NeurIPS 2023, "Unlocking feature
visualization for deeper networks with MAgnitude Constrained Optimization").

The image is a Fourier spectrum whose *magnitude* is fixed to the mean magnitude of natural images
and whose *phase* alone is optimized (NAdam, lr 1):

    image = sigmoid(C @ irfft2(M * exp(i * phi')))      phi' = standardize(phi), made Hermitian

``M`` (3, H, W//2+1) is estimated once from natural images in the decorrelated colour space (``C``:
``params.COLOR_CORRELATION_SQRT``), its DC term set to 0 and scaled so the signal has unit standard
deviation. Because the phase of the self-conjugate columns is made antisymmetric (and 0 at the DC
and Nyquist points), ``|rfft2(irfft2(M e^{i phi'}))| == M`` exactly: the magnitude never moves, and
by Parseval the signal's variance never moves either (no runtime standardization is needed).

The network sees random crops of the large canvas (``MacoCrops``: ``crops`` boxes per step whose
side shrinks linearly from ``box_start`` to ``box_end`` of the canvas, centres N(0.5, 0.15), resized
to the model's input, plus Gaussian and uniform noise), and the objective is averaged over the
crops (``crop_mean``). The absolute image gradients, summed over the steps, are the transparency map
(where the feature lives). Reference implementations: Xplique (TensorFlow) ``maco`` and Fel's
Horama (PyTorch); defaults follow Xplique: 256 steps, 32 crops, 512 px canvas, box 0.5 -> 0.05.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..assets import cache_dir
from ..errors import ConvlensError
from ..files import atomic_write
from ..images.blur import gaussian_blur
from .objectives import Features, Objective
from .params import _COLOR, Param, _hw, decorrelate_colors


def _conjugate_rows(h: int) -> torch.Tensor:
    """Index of -ky (mod h) for each row ky: the Hermitian partner inside a self-conjugate column."""
    return (-torch.arange(h)) % h


def _self_conjugate_columns(w: int) -> list[int]:
    """Columns of an rfft2 spectrum that must be Hermitian by themselves: 0, and w/2 for even w."""
    return [0, w // 2] if w % 2 == 0 else [0]


def hermitian_phase(phase: torch.Tensor, w: int) -> torch.Tensor:
    """``phase`` (..., H, W//2+1) with its self-conjugate columns made odd, ``phi[-k] = -phi[k]`` (so
    0 at the DC / Nyquist points): the spectrum ``M e^{i phi}`` of a real image, which ``irfft2``
    inverts exactly (an even ``M`` assumed)."""
    rows = _conjugate_rows(phase.shape[-2]).to(phase.device)
    cols = _self_conjugate_columns(w)
    out = phase.clone()
    for c in cols:
        col = phase[..., c]
        out[..., c] = (col - col[..., rows]) / 2
    return out


def even_magnitude(mag: torch.Tensor, w: int) -> torch.Tensor:
    """``mag`` (..., H, W//2+1) with its self-conjugate columns symmetrized, ``M[-k] = M[k]``."""
    rows = _conjugate_rows(mag.shape[-2]).to(mag.device)
    out = mag.clone()
    for c in _self_conjugate_columns(w):
        out[..., c] = (mag[..., c] + mag[..., c][..., rows]) / 2
    return out


def spectrum_signal(magnitude: torch.Tensor, phase: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``irfft2(M e^{i phi})`` with ``norm='ortho'``: (N, 3, h, w) real signal."""
    return torch.fft.irfft2(torch.polar(magnitude.expand_as(phase), phase), s=(h, w), norm="ortho")


def normalize_magnitude(mag: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """DC set to 0 (mean 0), self-conjugate columns even, then scaled so the signal has standard
    deviation 1 over all pixels and channels, whatever the phase (Parseval)."""
    mag = even_magnitude(mag.clone(), w)
    mag[..., 0, 0] = 0
    std = spectrum_signal(mag, torch.zeros_like(mag)[None], h, w).std(unbiased=False)
    if not float(std) > 0:
        raise ConvlensError("the magnitude spectrum is all zero; estimate it from images that are not flat")
    return mag / std


# --- the magnitude, estimated from natural images and cached --------------------------------------

def estimate_magnitude(images, size, *, progress=None) -> torch.Tensor:
    """Mean Fourier magnitude of ``images`` in the decorrelated colour space: (3, H, W//2+1).

    ``|rfft2(C^-1 (x - mean(x)), norm='ortho')|`` averaged over the images, each fitted to ``size``.

    Args:
        images: anything ``convlens.resolve_images`` reads ("samples:200", a folder, files) or a
            (N, 3, H, W) tensor in [0, 1].
        size: (H, W) or int.
    """
    from ..images import fit, load_image
    from ..images.resolve import resolve_images
    h, w = _hw(size)
    items = images if isinstance(images, torch.Tensor) else resolve_images(images, size=max(h, w)).items()
    inv = torch.linalg.inv(_COLOR)
    total, n = torch.zeros(3, h, w // 2 + 1, dtype=torch.float64), 0
    for x in items:
        x = x[None] if isinstance(x, torch.Tensor) and x.ndim == 3 else x
        x = fit(x if isinstance(x, torch.Tensor) else load_image(x), (h, w)).double()
        x = x - x.mean(dim=(-2, -1), keepdim=True)
        t = torch.einsum("kc,nchw->nkhw", inv.double(), x)
        total += torch.fft.rfft2(t, norm="ortho").abs().sum(0)
        n += x.shape[0]
        if progress is not None:
            progress(n, None)
    if n == 0:
        raise ConvlensError(f"no images in {str(images)[:60]!r} to estimate the magnitude spectrum from")
    return (total / n).float()


def _source_key(source) -> str:
    """A stable key of the images a spectrum comes from: the spec, and for files their names, sizes, mtimes."""
    if isinstance(source, torch.Tensor):
        return "tensor-" + hashlib.sha256(source.detach().cpu().numpy().tobytes()).hexdigest()[:16]
    text = str(source)
    p = Path(text).expanduser()
    if p.exists():
        files = sorted(f for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file())
        text = str(p.resolve()) + "".join(f"|{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def natural_magnitude(source="samples:200", size=512, *, cache: bool = True) -> torch.Tensor:
    """The normalized MACO magnitude (3, H, W//2+1) for ``size``, estimated from ``source`` and cached
    under ``convlens.assets.cache_dir()/maco`` (one ``.pt`` file per source and size)."""
    h, w = _hw(size)
    path = cache_dir() / "maco" / f"spectrum-{_source_key(source)}-{h}x{w}.pt"
    if cache and path.is_file():
        try:
            mag = torch.load(path, weights_only=True)
            if mag.shape == (3, h, w // 2 + 1):
                return mag
        except Exception:  # a damaged cache file is recomputed
            pass
    mag = normalize_magnitude(estimate_magnitude(source, (h, w)), h, w)
    if cache:
        atomic_write(path, lambda tmp: torch.save(mag, tmp))
    return mag


# --- the parameterization --------------------------------------------------------------------------

class MacoParam(Param):
    """Phase-only Fourier images over a fixed natural magnitude (see the module doc).

    Args:
        magnitude: (3, H, W//2+1) fixed magnitude (``natural_magnitude``); normalized here again
            (DC 0, unit signal std), so any non-negative spectrum of that shape works.
        batch: number of images; size: (H, W) of the canvas (must match the magnitude).
        generator: for the random start of the phase (N(0, 1), as Xplique).
    """

    def __init__(self, magnitude: torch.Tensor, batch: int = 1, size=512, *, generator: torch.Generator | None = None):
        super().__init__()
        self.h, self.w = _hw(size)
        if tuple(magnitude.shape) != (3, self.h, self.w // 2 + 1):
            raise ConvlensError(f"magnitude of shape {tuple(magnitude.shape)} does not fit a {self.h}x{self.w} canvas; "
                                f"expected (3, {self.h}, {self.w // 2 + 1})")
        self.register_buffer("magnitude", normalize_magnitude(magnitude.float(), self.h, self.w))
        self.phase = nn.Parameter(torch.randn(batch, 3, self.h, self.w // 2 + 1, generator=generator))

    def effective_phase(self) -> torch.Tensor:
        """The phase the image is made of: standardized per image (Xplique), then Hermitian."""
        p = self.phase
        p = (p - p.mean(dim=(1, 2, 3), keepdim=True)) / (p.std(dim=(1, 2, 3), keepdim=True) + 1e-5)
        return hermitian_phase(p, self.w)

    def signal(self) -> torch.Tensor:
        """The real (N, 3, H, W) signal before colour recorrelation and sigmoid; its magnitude is ``magnitude``."""
        return spectrum_signal(self.magnitude, self.effective_phase(), self.h, self.w)

    def forward(self) -> torch.Tensor:
        return torch.sigmoid(decorrelate_colors(self.signal()))


# --- crops of the canvas, with noise, and the transparency accumulator -------------------------

class MacoCrops:
    """The MACO transform: ``crops`` random square boxes of the canvas per image, resized to ``out``,
    plus noise N(0, noise) + U(-noise/2, noise/2); box side = ``box_start`` -> ``box_end`` of the
    canvas linearly over ``steps`` calls (one call per optimization step), +- N(0, 0.05), clipped to
    [0.05, 1]; centres N(0.5, 0.15). Output is crop-major: row ``j * N + i`` is crop j of image i.

    ``transparency`` (N, 1, H, W) accumulates ``|d objective / d image|`` (summed over colour) of
    every step (a gradient hook on the canvas).
    """

    def __init__(self, out, crops: int = 32, steps: int = 256, box_start: float = 0.5, box_end: float = 0.05,
                 noise: float = 0.04):
        self.out = _hw(out)
        self.crops, self.steps = int(crops), max(1, int(steps))
        self.box_start, self.box_end, self.noise = float(box_start), float(box_end), float(noise)
        self.calls = 0
        self.transparency: torch.Tensor | None = None

    def box(self, step: int) -> float:
        t = min(step, self.steps - 1) / max(1, self.steps - 1)
        return self.box_start + (self.box_end - self.box_start) * t

    def _accumulate(self, grad: torch.Tensor) -> None:
        g = grad.detach().abs().sum(1, keepdim=True)
        self.transparency = g if self.transparency is None else self.transparency + g

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n, k = x.shape[0], self.crops
        if x.requires_grad:
            x.register_hook(self._accumulate)
        m = n * k
        side = (self.box(self.calls) + 0.05 * torch.randn(m, generator=g)).clamp(0.05, 1.0)
        cy, cx = 0.5 + 0.15 * torch.randn(m, generator=g), 0.5 + 0.15 * torch.randn(m, generator=g)
        self.calls += 1
        # affine_grid maps output [-1, 1] to input coordinates: scale = side, shift = 2 * centre - 1
        theta = torch.zeros(m, 2, 3)
        theta[:, 0, 0], theta[:, 1, 1] = side, side
        theta[:, 0, 2], theta[:, 1, 2] = 2 * cx - 1, 2 * cy - 1
        grid = F.affine_grid(theta.to(x), [m, 3, *self.out], align_corners=False)
        src = x.repeat(k, 1, 1, 1)  # crop-major
        out = F.grid_sample(src, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        if self.noise > 0:
            noise = self.noise * torch.randn(out.shape, generator=g) + self.noise * (torch.rand(out.shape, generator=g) - 0.5)
            out = out + noise.to(out)
        return out

    def __repr__(self):
        return f"MacoCrops({self.crops} x {self.out}, box {self.box_start:g}->{self.box_end:g}, noise {self.noise:g})"


def crop_mean(objective: Objective, crops: int) -> Objective:
    """``objective`` evaluated on each crop of a crop-major batch (``MacoCrops``) and averaged per image:
    crop j of all N images is one slice, so per-image targets (a list of classes) keep their meaning."""
    def fn(f: Features):
        n = f.image.shape[0]
        vals = []
        for j in range(crops):
            rows = slice(j * n, (j + 1) * n)
            sub = Features(image=f.image, input=f.input[rows], acts={k: a[rows] for k, a in f.acts.items()},
                           logits=None if f.logits is None else f.logits[rows])
            vals.append(objective(sub))
        return torch.stack(vals).mean(0)
    return Objective(fn, objective.layers, objective.logits, f"mean over {crops} crops of {objective.name}")


def transparency_map(t: torch.Tensor, blur: float = 0.0, pct: float = 90.0) -> torch.Tensor:
    """Accumulated |gradients| (N, 1, H, W) as an opacity in [0, 1]: optionally blurred, clipped at its
    ``pct``-th percentile and divided by it (Xplique's ``plot_maco`` clips at the 90th)."""
    if blur > 0:
        t = gaussian_blur(t, blur)
    flat = t.flatten(1)
    q = torch.quantile(flat, pct / 100.0, dim=1).clamp(min=1e-12).view(-1, 1, 1, 1)
    return (t / q).clamp(max=1.0)


__all__ = ["MacoParam", "MacoCrops", "crop_mean", "natural_magnitude", "estimate_magnitude", "normalize_magnitude",
           "hermitian_phase", "spectrum_signal", "transparency_map"]
