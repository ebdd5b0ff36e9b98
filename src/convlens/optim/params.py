"""Image parameterizations: what the optimizer actually changes.

A parameterization is an ``nn.Module`` whose ``forward()`` (no argument) returns the current images,
float32 (N, 3, H, W) in [0, 1], differentiable with respect to its own ``parameters()``. The loop
only ever calls ``param()``, ``param.parameters()``, ``param.project()`` after each step and, for
octaves, ``param.resized(size)``; so anything with that shape plugs in: raw pixels, a Fourier
spectrum, a generator's input code, or (for fast style transfer) a whole generator network.

    PixelParam      raw pixels (optionally an eps-ball projection around an image: PGD)
    FourierParam    Fourier coefficients scaled by 1/f^decay (Lucid's fft_image), colour-decorrelated,
                    squashed by a sigmoid
    DecorrelatedParam  pixels in a decorrelated colour space, squashed by a sigmoid
    GeneratorParam  the input code z of a generator G: image = G(z), z clipped to an activation range
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConvlensError

# Square root of ImageNet's RGB colour covariance (its SVD), as measured by Lucid (Olah et al. 2017,
# "Feature Visualization"). Multiplying independent channels by it gives natural colour statistics.
COLOR_CORRELATION_SQRT = torch.tensor([[0.26, 0.09, 0.02],
                                       [0.27, 0.00, -0.05],
                                       [0.27, -0.09, 0.03]])
_COLOR = COLOR_CORRELATION_SQRT / COLOR_CORRELATION_SQRT.norm(dim=0).max()


def _hw(size) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def decorrelate_colors(t: torch.Tensor) -> torch.Tensor:
    """Map (N, 3, H, W) decorrelated channels to RGB: ``rgb[c] = sum_k C[c, k] t[k]`` (C normalized)."""
    return torch.einsum("ck,nkhw->nchw", _COLOR.to(t), t)


def _logit(p: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    p = p.clamp(eps, 1 - eps)
    return torch.log(p) - torch.log1p(-p)


class Param(nn.Module):
    """Base class. Subclasses implement ``forward() -> (N, 3, H, W)`` images in [0, 1]."""

    #: the raw pixel tensor the Yosinski periodic operations edit in place (None if not pixel-based)
    pixels: torch.Tensor | None = None

    @property
    def batch(self) -> int:
        return int(self().shape[0]) if self.pixels is None else int(self.pixels.shape[0])

    @torch.no_grad()
    def image(self) -> torch.Tensor:
        """The current images, detached: (N, 3, H, W) in [0, 1]."""
        return self().detach().clamp(0, 1).clone()

    def project(self) -> None:
        """Called after every optimizer step (clamping, eps-ball projection, code clipping)."""

    def resized(self, size) -> "Param":
        """A parameterization of the same kind, at ``size``, starting from the current images (octaves)."""
        raise ConvlensError(f"{type(self).__name__} does not support octaves; use param='pixel'")


class PixelParam(Param):
    """Raw pixels, ``image = x``; after each step ``x`` is clamped to [0, 1].

    Args:
        init: (N, 3, H, W) starting images in [0, 1].
        eps: if set, also project ``x`` onto the L-inf ball ``|x - center| <= eps`` (pixel units) after
            every step (projected gradient descent); ``center`` defaults to ``init``.
        clamp: clamp to [0, 1] after each step (default True).
        background: (3,) colour of "zero" for the Yosinski operations (the model's mean: the image whose
            normalized input is 0); defaults to 0.5 grey.
    """

    def __init__(self, init: torch.Tensor, *, eps: float | None = None, center: torch.Tensor | None = None,
                 clamp: bool = True, background=None):
        super().__init__()
        if init.ndim != 4 or init.shape[1] != 3:
            raise ConvlensError(f"initial images must be (N, 3, H, W), got {tuple(init.shape)}")
        self.x = nn.Parameter(init.detach().clone().float())
        self.eps, self.clamp = eps, clamp
        self.register_buffer("center", (center if center is not None else init).detach().clone().float())
        bg = torch.full((3,), 0.5) if background is None else torch.as_tensor(background, dtype=torch.float32).flatten()
        self.register_buffer("background", bg.view(1, 3, 1, 1).to(init.device))

    @property
    def pixels(self) -> torch.Tensor:  # type: ignore[override]
        return self.x

    def forward(self) -> torch.Tensor:
        return self.x

    @torch.no_grad()
    def project(self) -> None:
        if self.eps is not None:
            self.x.copy_(torch.minimum(torch.maximum(self.x, self.center - self.eps), self.center + self.eps))
        if self.clamp:
            self.x.clamp_(0, 1)

    def resized(self, size) -> "PixelParam":
        h, w = _hw(size)
        x = F.interpolate(self.x.detach(), size=(h, w), mode="bilinear", align_corners=False)
        center = F.interpolate(self.center, size=(h, w), mode="bilinear", align_corners=False)
        return PixelParam(x.clamp(0, 1) if self.clamp else x, eps=self.eps, center=center, clamp=self.clamp,
                          background=self.background.flatten())


class DecorrelatedParam(Param):
    """Pixels in a decorrelated colour space: ``image = sigmoid(C @ t)`` (C: ImageNet colour sqrt-covariance).

    Args:
        batch: number of images (N), and
        size: (H, W) or int; or an ``init`` image to start from; ``sd``: std of the random start.
    """

    def __init__(self, batch: int = 1, size=224, *, sd: float = 0.01, init: torch.Tensor | None = None,
                 generator: torch.Generator | None = None, decorrelate: bool = True):
        super().__init__()
        self.decorrelate = decorrelate
        if init is not None:
            t = _logit(init.detach().float())
            if decorrelate:
                t = torch.einsum("kc,nchw->nkhw", torch.linalg.inv(_COLOR), t)
        else:
            h, w = _hw(size)
            t = torch.randn(batch, 3, h, w, generator=generator) * sd
        self.t = nn.Parameter(t)

    def forward(self) -> torch.Tensor:
        t = decorrelate_colors(self.t) if self.decorrelate else self.t
        return torch.sigmoid(t)

    def resized(self, size) -> "DecorrelatedParam":
        return DecorrelatedParam(init=F.interpolate(self.image(), size=_hw(size), mode="bilinear",
                                                    align_corners=False), decorrelate=self.decorrelate)


def rfft2d_freqs(h: int, w: int) -> torch.Tensor:
    """|f| of each coefficient of ``torch.fft.rfft2`` on an (h, w) image, in cycles per pixel: (h, w//2+1)."""
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    return torch.sqrt(fx * fx + fy * fy)


def fourier_scale(h: int, w: int, decay_power: float = 1.0) -> torch.Tensor:
    """Per-coefficient scale ``1 / max(|f|, 1/max(h, w)) ** decay_power`` (the DC term gets the lowest frequency's)."""
    return 1.0 / rfft2d_freqs(h, w).clamp(min=1.0 / max(h, w)) ** decay_power


def fourier_to_image(spectrum: torch.Tensor, h: int, w: int, decay_power: float = 1.0) -> torch.Tensor:
    """Real images from a parameterized spectrum: ``irfft2(scale * (re + i im), norm='ortho') / 4``.

    Args:
        spectrum: (N, C, h, w//2+1, 2) real and imaginary parts.
    Returns (N, C, h, w). With ``norm='ortho'`` the transform is unitary, so a step in the spectrum has
    the same size as in pixels before the 1/f scaling; the /4 keeps the start's contrast low (as Lucid).
    """
    scale = fourier_scale(h, w, decay_power).to(spectrum)
    z = torch.complex(spectrum[..., 0] * scale, spectrum[..., 1] * scale)
    return torch.fft.irfft2(z, s=(h, w), norm="ortho") / 4.0


class FourierParam(Param):
    """Fourier-space images with a 1/f^decay frequency scaling, colour-decorrelated, sigmoid-squashed.

    ``image = sigmoid(C @ irfft2(s(f) * spectrum))`` with ``s(f) = 1/max(|f|, 1/max(H,W))^decay_power``
    (Olah et al. 2017; Lucid's ``fft_image``): the 1/f scaling whitens natural images' spectrum, so
    gradient steps move all frequencies equally and high-frequency noise no longer dominates.

    Args:
        batch: number of images.
        size: (H, W) or int.
        decay_power: exponent of the 1/f scaling (1.0; 0 is plain pixels in Fourier coordinates).
        sd: standard deviation of the random spectrum at the start (0.01: near-grey start).
        decorrelate: colour decorrelation (True); generator: for the random start.
    """

    def __init__(self, batch: int = 1, size=224, *, decay_power: float = 1.0, sd: float = 0.01,
                 decorrelate: bool = True, generator: torch.Generator | None = None):
        super().__init__()
        self.h, self.w = _hw(size)
        self.decay_power, self.decorrelate = decay_power, decorrelate
        self.spectrum = nn.Parameter(torch.randn(batch, 3, self.h, self.w // 2 + 1, 2, generator=generator) * sd)

    def forward(self) -> torch.Tensor:
        t = fourier_to_image(self.spectrum, self.h, self.w, self.decay_power)
        if self.decorrelate:
            t = decorrelate_colors(t)
        return torch.sigmoid(t)


class GeneratorParam(Param):
    """Optimize the input code of a generator: ``image = G(z)``; ``z`` clipped to ``[lo, hi]`` after each step.

    Nguyen et al. 2016 ("Synthesizing the preferred inputs for neurons via deep generator networks")
    optimize the FC6 code of an image generator and clip it to the range of activations seen on real
    images (``[0, 3 sigma]`` per unit), which keeps the images realistic.

    The generator interface: any ``nn.Module`` mapping a code tensor (N, *code_shape) to images
    (N, 3, H, W). Its output range is given by ``output``: "unit" ([0, 1]), "tanh" ([-1, 1], mapped
    to [0, 1]) or "logits" (a sigmoid is applied). The generator is deep-copied, put in eval mode
    and frozen, so the caller's module is never changed and only the code receives gradients.

    Args:
        generator: the module; code_shape: shape of one code (default ``generator.code_shape``).
        batch: number of codes; init: starting codes (N, *code_shape) (default N(0, sd) or zeros).
        code_range: (lo, hi) scalars or tensors broadcastable to a code; None: no clipping.
        output: the generator's output range (see above).
    """

    def __init__(self, generator: nn.Module, *, code_shape: Sequence[int] | None = None, batch: int = 1,
                 init: torch.Tensor | None = None, code_range=None, output: str = "unit", sd: float = 1.0,
                 generator_rng: torch.Generator | None = None):
        super().__init__()
        if not isinstance(generator, nn.Module):
            raise ConvlensError(f"generator must be a torch.nn.Module, got {type(generator).__name__}")
        code_shape = tuple(code_shape or getattr(generator, "code_shape", ()) or ())
        if not code_shape and init is None:
            raise ConvlensError("GeneratorParam needs code_shape=... (or a `code_shape` attribute on the generator)")
        if output not in ("unit", "tanh", "logits"):
            raise ConvlensError(f"output must be 'unit', 'tanh' or 'logits', got {output!r}")
        g = copy.deepcopy(generator).eval()
        g.requires_grad_(False)
        self.generator = g
        self.output = output
        if init is None:
            init = torch.randn(batch, *code_shape, generator=generator_rng) * sd
        self.z = nn.Parameter(init.detach().clone().float())
        self.code_range = code_range
        self.project()

    def parameters(self, recurse: bool = True):  # only the code is optimized
        yield self.z

    def forward(self) -> torch.Tensor:
        out = self.generator(self.z)
        if self.output == "tanh":
            out = (out + 1) / 2
        elif self.output == "logits":
            out = torch.sigmoid(out)
        if out.ndim != 4 or out.shape[1] != 3:
            raise ConvlensError(f"the generator must return (N, 3, H, W) images, got {tuple(out.shape)}")
        return out

    @torch.no_grad()
    def project(self) -> None:
        if self.code_range is None:
            return
        lo, hi = self.code_range
        lo = torch.as_tensor(lo, dtype=self.z.dtype, device=self.z.device)
        hi = torch.as_tensor(hi, dtype=self.z.dtype, device=self.z.device)
        self.z.copy_(torch.minimum(torch.maximum(self.z, lo), hi))


def make_param(kind: str, *, batch: int = 1, size=224, init: torch.Tensor | None = None,
               background=None, generator: torch.Generator | None = None, decay_power: float = 1.0,
               sd: float = 0.01, **kwargs) -> Param:
    """A parameterization by name: "pixel", "decorrelated", "fourier" (see the classes).

    For "pixel", ``init`` may be a tensor, "mean" (the ``background`` colour: a zero network input,
    Simonyan's start), or "noise" (background + N(0, 0.1)).
    """
    h, w = _hw(size)
    if kind == "pixel":
        bg = (torch.full((3,), 0.5) if background is None else torch.as_tensor(background).flatten().float()).view(1, 3, 1, 1)
        if init is None or (isinstance(init, str) and init == "mean"):
            x = bg.expand(batch, 3, h, w).clone()
        elif isinstance(init, str) and init == "noise":
            x = (bg + 0.1 * torch.randn(batch, 3, h, w, generator=generator)).clamp(0, 1)
        elif isinstance(init, torch.Tensor):
            x = init.expand(batch, -1, -1, -1) if init.shape[0] == 1 and batch > 1 else init
        else:
            raise ConvlensError(f"pixel init must be a tensor, 'mean' or 'noise', got {init!r}")
        return PixelParam(x, background=bg.flatten(), **kwargs)
    if kind == "decorrelated":
        if isinstance(init, torch.Tensor):
            init = init.expand(batch, -1, -1, -1) if init.shape[0] == 1 and batch > 1 else init
            return DecorrelatedParam(init=init)
        return DecorrelatedParam(batch, (h, w), sd=sd, generator=generator)
    if kind == "fourier":
        return FourierParam(batch, (h, w), decay_power=decay_power, sd=sd, generator=generator)
    raise ConvlensError(f"unknown parameterization '{kind}'; choose pixel, decorrelated, fourier "
                        "(or pass a GeneratorParam / any Param instance)")

