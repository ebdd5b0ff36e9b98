"""ReLU gradient overrides for guided backprop and deconvnet, without touching anyone's model.

    with relu_mode("guided") as stats:
        logits = model(x)                  # every ReLU / ReLU6 in this forward is overridden
        g, = torch.autograd.grad(logits[0, 285], x)
    stats.count                            # how many activations were overridden

Backward rules (Springenberg et al. 2015, "Striving for simplicity"; Zeiler & Fergus 2014):

    plain      dx = dy * [x > 0]
    guided     dx = max(dy, 0) * [x > 0]           (only positive signal, only where the unit fired)
    deconvnet  dx = max(dy, 0)                     (the forward mask is ignored: a "deconv" ReLU)

For ReLU6 (MobileNetV2) the forward mask is [0 < x < 6], i.e. the positions where the activation
passed its input through; the deconvnet rule is the same ``max(dy, 0)``.

How: a ``torch.overrides.TorchFunctionMode`` intercepts the activation *functions* while the
context is active, so nothing is swapped, hooked or copied, and the caller's modules are never
modified (the mode is popped in ``finally``, also when the forward raises). Because modules call
these functions, both module and functional activations are covered. Per thread: torch keeps the
function-mode stack per thread, so another thread's forward of the same model (a web request beside a
guided-backprop job) keeps its ordinary ReLUs (tested in tests/test_probe.py). The override is fixed in
the graph at forward time, so the backward may run anywhere.

Overridden: ``nn.ReLU`` (also ``inplace=True``), ``nn.ReLU6``, ``nn.Hardtanh(0, x)``, ``F.relu``,
``F.relu_``, ``F.relu6``, ``F.hardtanh(min_val=0)``, ``torch.relu``, ``torch.relu_``,
``Tensor.relu``, ``Tensor.relu_``, ``torch.clamp(x, min=0)`` / ``clamp_min`` with a zero bound.

Smooth activations (``smooth=True``, which ``guided_backprop`` and ``deconvnet`` use): GELU
(ConvNeXt), SiLU / Swish (EfficientNet) and Hardswish (MobileNetV3), as ``F.gelu``, ``F.silu``,
``F.hardswish`` or their modules (also ``inplace=True``). Their forward is unchanged; with f' the
activation's own local derivative:

    plain      dx = dy * f'(x)                     (the ordinary gradient, by the native kernel)
    guided     dx = max(dy, 0) * f'(x) * [x > 0]   (only positive signal, only where the unit fired)
    deconvnet  dx = max(dy, 0)                     (as for ReLU: the forward is ignored)

For these three f(x) > 0 exactly when x > 0, so ``[x > 0]`` is "the unit fired", and f'(x) > 0
there, so the guided signal stays non-negative at every activation, as with ReLU. For ReLU,
f'(x) = [x > 0] and the guided rule is exactly Springenberg's ``max(dy, 0) * [x > 0]``, which is why
the ReLU rule above is this rule's special case (tested: bit-equal on a ReLU network). The same
definition is used by birder's guided backprop (``birder/introspection/guided_backprop.py``:
``GuidedBackpropSiLU`` / ``GELU`` / ``Hardswish`` multiply grad_output by f'(x), [x > 0] and
[grad_output > 0]); Captum's ``GuidedBackprop`` overrides ReLU modules only and leaves the other
activations' ordinary gradient (its result on a GELU network is the plain gradient).

Not overridden (they keep their ordinary gradient; ``relu_mode`` counts them in
``stats.skipped``): LeakyReLU, PReLU, ELU, SELU, Mish, Softplus (and GELU, SiLU, Hardswish
without ``smooth=True``), a hand-written ``x * torch.sigmoid(x)``, ``torch.maximum(x, 0)`` and
activations inside TorchScript / compiled graphs (those bypass Python dispatch). Guided backprop on
a network built only from those is just the gradient; the attribution functions therefore refuse a
model where ``count == 0``.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Iterator

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ..errors import ConvlensError

MODES = ("guided", "deconvnet", "plain")


class _Override(torch.autograd.Function):
    """y = clamp(x, lo, hi) with a guided / deconvnet backward; in-place when asked."""

    @staticmethod
    def forward(ctx, x, lo, hi, mode, inplace):
        if inplace:
            ctx.mark_dirty(x)
            y = x.clamp_(lo, hi) if hi is not None else x.clamp_(min=lo)
        else:
            y = x.clamp(lo, hi) if hi is not None else x.clamp(min=lo)
        ctx.mode, ctx.lo, ctx.hi = mode, lo, hi
        # the forward mask is recoverable from the output (lo < y < hi <=> lo < x < hi), which is
        # what makes the in-place variant possible
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved_tensors
        if ctx.mode == "deconvnet":
            return dy.clamp(min=0), None, None, None, None
        g = dy.clamp(min=0) if ctx.mode == "guided" else dy
        # the native masked backward kernels (one pass): g * [lo < y] or g * [lo < y < hi]
        if ctx.hi is None:
            g = torch.ops.aten.threshold_backward(g, y, ctx.lo)
        else:
            g = torch.ops.aten.hardtanh_backward(g, y, ctx.lo, ctx.hi)
        return g, None, None, None, None


class _Smooth(torch.autograd.Function):
    """y = f(x) for f in GELU / SiLU / Hardswish with a guided / deconvnet backward; in-place when asked."""

    @staticmethod
    def forward(ctx, x, kind, approximate, mode, inplace):
        xs = x.clone() if inplace else x  # f is not invertible: keep the input for f'(x)
        y = _SMOOTH_FORWARD[kind](xs, approximate)
        if inplace:
            ctx.mark_dirty(x)
            y = x.copy_(y)
        ctx.kind, ctx.approximate, ctx.mode = kind, approximate, mode
        ctx.save_for_backward(xs)
        return y

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        if ctx.mode == "deconvnet":
            return dy.clamp(min=0), None, None, None, None
        g = dy.clamp(min=0) if ctx.mode == "guided" else dy
        g = _SMOOTH_BACKWARD[ctx.kind](g, x, ctx.approximate)  # g * f'(x), the native kernel
        if ctx.mode == "guided":
            g = torch.ops.aten.threshold_backward(g, x, 0.0)  # * [x > 0]
        return g, None, None, None, None


_SMOOTH_FORWARD = {"gelu": lambda x, a: F.gelu(x, approximate=a), "silu": lambda x, a: F.silu(x),
                   "hardswish": lambda x, a: F.hardswish(x)}
_SMOOTH_BACKWARD = {"gelu": lambda g, x, a: torch.ops.aten.gelu_backward(g, x, approximate=a),
                    "silu": lambda g, x, a: torch.ops.aten.silu_backward(g, x),
                    "hardswish": lambda g, x, a: torch.ops.aten.hardswish_backward(g, x)}

_SKIPPED = {F.leaky_relu, F.elu, F.selu, F.gelu, F.silu, F.hardswish, F.mish, F.softplus, F.prelu,
            F.celu, F.rrelu, torch.prelu}


@dataclass
class OverrideStats:
    """What a ``relu_mode`` context did: overridden activation calls, and skipped ones by name."""

    mode: str
    count: int = 0
    skipped: dict = field(default_factory=dict)
    smooth: dict = field(default_factory=dict)  # smooth activations overridden (in ``count`` too), by name


class _ReluMode(TorchFunctionMode):
    def __init__(self, mode: str, stats: OverrideStats, smooth: bool = False):
        super().__init__()
        self.mode, self.stats = mode, stats
        self.table = {
            F.relu: self._relu, torch.relu: self._relu, torch.Tensor.relu: self._relu,
            F.relu_: self._relu_, torch.relu_: self._relu_, torch.Tensor.relu_: self._relu_,
            F.relu6: self._relu6, F.hardtanh: self._hardtanh, F.hardtanh_: self._hardtanh_,
            torch.clamp: self._clamp, torch.Tensor.clamp: self._clamp, torch.clamp_min: self._clamp_min,
            torch.Tensor.clamp_min: self._clamp_min,
        }
        if smooth:
            self.table.update({F.gelu: self._gelu, F.silu: self._silu, F.hardswish: self._hardswish})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        handler = self.table.get(func)
        if handler is not None:
            out = handler(*args, **kwargs)
            if out is not NotImplemented:
                self.stats.count += 1
                return out
        elif func in _SKIPPED:
            name = getattr(func, "__name__", str(func))
            self.stats.skipped[name] = self.stats.skipped.get(name, 0) + 1
        return func(*args, **kwargs)

    def _apply(self, x, lo, hi, inplace):
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            return NotImplemented
        return _Override.apply(x, lo, hi, self.mode, bool(inplace))

    def _relu(self, x, inplace=False):
        return self._apply(x, 0.0, None, inplace)

    def _relu_(self, x):
        return self._apply(x, 0.0, None, True)

    def _relu6(self, x, inplace=False):
        return self._apply(x, 0.0, 6.0, inplace)

    def _hardtanh(self, x, min_val=-1.0, max_val=1.0, inplace=False):
        if min_val != 0:
            return NotImplemented
        return self._apply(x, 0.0, float(max_val), inplace)

    def _hardtanh_(self, x, min_val=-1.0, max_val=1.0):
        return self._hardtanh(x, min_val, max_val, True)

    def _clamp(self, x, min=None, max=None, **kw):
        if kw or not isinstance(min, (int, float)) or min != 0 or not (max is None or isinstance(max, (int, float))):
            return NotImplemented
        return self._apply(x, 0.0, None if max is None else float(max), False)

    def _smooth(self, kind, x, approximate="none", inplace=False):
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            return NotImplemented
        self.stats.smooth[kind] = self.stats.smooth.get(kind, 0) + 1
        return _Smooth.apply(x, kind, approximate, self.mode, bool(inplace))

    def _gelu(self, x, approximate="none"):
        return self._smooth("gelu", x, approximate)

    def _silu(self, x, inplace=False):
        return self._smooth("silu", x, inplace=inplace)

    def _hardswish(self, x, inplace=False):
        return self._smooth("hardswish", x, inplace=inplace)

    def _clamp_min(self, x, min=None):
        if not isinstance(min, (int, float)) or min != 0:
            return NotImplemented
        return self._apply(x, 0.0, None, False)


@contextlib.contextmanager
def relu_mode(mode: str = "guided", smooth: bool = False) -> Iterator[OverrideStats]:
    """Override the backward of every ReLU-like activation run inside the block.

    Args:
        mode: "guided" (Springenberg 2015), "deconvnet" (Zeiler & Fergus 2014) or "plain"
            (ordinary gradient; useful to check the mechanism).
        smooth: also override GELU, SiLU and Hardswish with the same rule generalized (see the
            module docs: guided ``dx = max(dy, 0) * f'(x) * [x > 0]``).
    Yields:
        ``OverrideStats``: ``count`` of overridden calls, ``skipped`` activations that keep their
        ordinary gradient (see the module docs for the list).
    Example:
        >>> x = torch.tensor([-1.0, 2.0], requires_grad=True)
        >>> with relu_mode("guided"):
        ...     y = torch.relu(x)
        >>> torch.autograd.grad(y, x, torch.tensor([1.0, -1.0]))[0]
        tensor([0., 0.])
    """
    if mode not in MODES:
        raise ConvlensError(f"unknown ReLU mode '{mode}'; use one of {', '.join(MODES)}")
    stats = OverrideStats(mode)
    with _ReluMode(mode, stats, smooth):
        yield stats
