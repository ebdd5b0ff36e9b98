"""A faster input gradient for a network's stem convolution (the strided conv that reads the image).

The gradient of a strided convolution with respect to its input is a transposed convolution whose
output has the image's 3 channels. oneDNN runs that at about a sixth of its forward speed (a matrix
product with 3 columns): in ResNet-18's FGSM step, conv1's input gradient took 29 ms of 212 ms
while its forward took 5 ms. Split by output phase, the same gradient is an ordinary stride-1
convolution with ``3 * s * s`` output channels (each phase ``(a, b)`` of a stride-``s`` conv is
fed by the kernel taps ``w[..., s*q + a, s*t + b]``), followed by ``pixel_shuffle``: the same sums,
in another order (equal to autograd's gradient to 1e-13 in float64), measured 2.4x faster on the
stem of ResNet-18 (``tests/test_stem_grad.py`` checks the values, ``benchmarks/bench_adversarial.py``
the speed).

``speed_up_stems(net)`` swaps such convolutions (few input channels, stride >= 2, no groups or
dilation) in a network the caller owns, e.g. the gradient twin of ``drivers.forward.inference_twin``;
the forward pass is the same ``F.conv2d`` call, so outputs do not change at all.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def phase_kernels(weight: torch.Tensor, stride: int) -> torch.Tensor:
    """(O, C, k, k) conv weight -> (C*s*s, O, Q, Q) flipped per-phase kernels, Q = ceil(k / s).

    Channel ``c*s*s + a*s + b`` holds the taps ``weight[:, c, s*q + a, s*t + b]``, the order
    ``pixel_shuffle`` expects.
    """
    out_ch, in_ch, k, _ = weight.shape
    s = stride
    q = -(-k // s)
    w = F.pad(weight, (0, q * s - k, 0, q * s - k)).view(out_ch, in_ch, q, s, q, s)
    return w.permute(1, 3, 5, 0, 2, 4).reshape(in_ch * s * s, out_ch, q, q).flip(-1, -2).contiguous()


def stem_input_grad(grad_out: torch.Tensor, weight: torch.Tensor, stride: int, padding: int,
                    in_hw: tuple[int, int]) -> torch.Tensor:
    """d(loss)/d(input) of ``F.conv2d(x, weight, stride=stride, padding=padding)`` given d(loss)/d(output)."""
    kernels = phase_kernels(weight, stride)
    q = kernels.shape[-1]
    phases = F.conv2d(grad_out, kernels, padding=q - 1)              # (N, C s^2, Ho+q-1, Wo+q-1)
    padded = F.pixel_shuffle(phases, stride)                        # the gradient of the padded input
    h, w = in_hw
    short_h, short_w = padding + h - padded.shape[-2], padding + w - padded.shape[-1]
    if short_h > 0 or short_w > 0:  # rows the conv never read get zero gradient
        padded = F.pad(padded, (0, max(short_w, 0), 0, max(short_h, 0)))
    return padded[..., padding:padding + h, padding:padding + w]


class _StemConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride: int, padding: int):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding
        return F.conv2d(x, weight, bias, stride, padding)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        s, p = ctx.stride, ctx.padding
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = stem_input_grad(grad_out, weight, s, p, x.shape[-2:])
        if ctx.needs_input_grad[1]:
            gw = torch.nn.grad.conv2d_weight(x, weight.shape, grad_out, s, p)
        if ctx.needs_input_grad[2]:
            gb = grad_out.sum((0, 2, 3))
        return gx, gw, gb, None, None


class StemConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose input gradient runs by output phase (see the module docstring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _StemConv.apply(x, self.weight, self.bias, self.stride[0], self.padding[0])


def eligible(conv: nn.Module, max_in_channels: int = 4) -> bool:
    """A plain strided conv on few channels: square stride >= 2 and kernel, int padding, no groups or dilation."""
    return (type(conv) is nn.Conv2d and conv.in_channels <= max_in_channels and conv.groups == 1
            and conv.dilation == (1, 1) and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)
            and conv.stride[0] == conv.stride[1] >= 2 and conv.kernel_size[0] == conv.kernel_size[1]
            and conv.padding[0] == conv.padding[1])


def speed_up_stems(net: nn.Module) -> list[str]:
    """Turn the eligible stem convs of ``net`` into ``StemConv2d`` in place (same parameters); returns their names.

    Only for networks the caller owns (a copy): the modules change class."""
    swapped = []
    for name, mod in net.named_modules():
        if eligible(mod):
            mod.__class__ = StemConv2d
            swapped.append(name)
    return swapped
