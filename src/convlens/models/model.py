"""`Model`: a classifier with its normalization inside, so every API takes images in [0, 1].

convlens never changes a user's module. `Model.wrap` works on a deep copy (eval mode,
parameters frozen), so `.eval()`, hooks, activation overrides and `.grad` never reach the
caller's object. The copy is a snapshot of the network, not of the user's instrumentation: the
user's own hooks (forward, forward-pre, backward, state-dict) stay on their module and never fire
inside convlens calls. Pass `copy=False` only for models too large to copy; convlens then still
removes every hook it adds, but the module is put in eval mode, its parameters frozen, and the
user's hooks on it do fire.
"""
from __future__ import annotations

import contextlib
import contextvars
import threading
import copy as _copy
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from ..errors import ConvlensError, closest
from .imagenet import IMAGENET_MEAN, IMAGENET_STD, imagenet_classes


def _dtype_device(net: nn.Module) -> tuple[torch.dtype, torch.device]:
    """dtype and device of the first floating-point parameter or buffer (float32 / CPU if none)."""
    for t in (*net.parameters(), *net.buffers()):
        if t.is_floating_point():
            return t.dtype, t.device
    return torch.float32, torch.device("cpu")


_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks", "_state_dict_hooks",
               "_state_dict_pre_hooks", "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks")
# per-hook flags keyed like the hooks of the dict they qualify
_HOOK_FLAGS = {"_forward_hooks_with_kwargs": "_forward_hooks", "_forward_hooks_always_called": "_forward_hooks",
               "_forward_pre_hooks_with_kwargs": "_forward_pre_hooks"}


def _is_torch_hook(hook) -> bool:
    """torch's own hooks (lazy modules, weight/spectral norm, pruning) are part of the network."""
    fn = getattr(hook, "func", hook)  # functools.partial
    mod = getattr(fn, "__module__", None) or type(fn).__module__
    return (mod or "").split(".")[0] == "torch"


def _drop_user_hooks(net: nn.Module) -> None:
    """Remove every hook the user registered on a (copied) network, keeping torch's own."""
    for m in net.modules():
        for attr in _HOOK_DICTS:
            hooks = getattr(m, attr, {})
            for key in [k for k, h in hooks.items() if not _is_torch_hook(h)]:
                del hooks[key]
        for flag, attr in _HOOK_FLAGS.items():
            flags, hooks = getattr(m, flag, {}), getattr(m, attr, {})
            for key in [k for k in flags if k not in hooks]:
                del flags[key]


_FROM_OPTIMIZER = contextvars.ContextVar("convlens_images_from_optimizer", default=False)


@contextlib.contextmanager
def optimizer_images():
    """Inside this block (this thread or task only), ``Model.forward`` does not validate its input: the
    images come from convlens's own optimization loop (an unconstrained parameterization may leave
    [0, 1] far behind for a few L-BFGS steps), and the user's images were checked at the edge."""
    token = _FROM_OPTIMIZER.set(True)
    try:
        yield
    finally:
        _FROM_OPTIMIZER.reset(token)


def validate_images(images, channels: int = 3) -> None:
    """Refuse anything but float (N, C, H, W) images in [0, 1], in one line naming the fix.

    Every image reaches a network through ``Model.forward`` (and ``predict``), so every technique
    gets this check. Small excursions outside [0, 1] pass: SmoothGrad's noise, integrated-gradient
    paths, unclamped optimisation steps and hand-made tests make them on purpose. What is refused is a
    whole image on another scale: a maximum above 10 with more than half of the values above 1.5
    (0-255 floats: a photo's brightest pixel is far above 10), or more than half of the values
    below -0.5 (an image normalized already), plus integer / bool / complex dtypes, NaN or inf, wrong ranks, channel
    counts and empty batches.
    """
    want = f"float32 (N, {channels}, H, W) in [0, 1]"
    if not isinstance(images, torch.Tensor):
        raise ConvlensError(f"images must be a torch tensor {want}, got {type(images).__name__}; "
                            "use convlens.load_image(path) or torch.as_tensor(array)")
    shape = tuple(images.shape)
    if not images.is_floating_point():
        fix = "images.float() / 255" if images.dtype == torch.uint8 else "images.float() (values in [0, 1])"
        raise ConvlensError(f"images must be {want}, got dtype {str(images.dtype).replace('torch.', '')} {shape}; "
                            f"use {fix} or convlens.load_image(path)")
    if images.ndim != 4:
        fix = {3: "add the batch dimension with images.unsqueeze(0)",
               2: f"a grey (H, W) image: images.expand({channels}, -1, -1).unsqueeze(0)"}.get(
            images.ndim, "use convlens.load_image(path)")
        raise ConvlensError(f"images must be {want}, got shape {shape}; {fix}")
    if shape[1] != channels:
        if shape[-1] == channels:
            fix = "channels-last: use images.permute(0, 3, 1, 2)"
        elif shape[1] == 4 and channels == 3:
            fix = "RGBA: drop the alpha with images[:, :3] or load with convlens.load_image(path)"
        elif shape[1] == 1:
            fix = f"grey: use images.expand(-1, {channels}, -1, -1)"
        else:
            fix = "use convlens.load_image(path)"
        raise ConvlensError(f"images must be {want}, got {shape[1]} channels {shape}; {fix}")
    if 0 in shape:
        raise ConvlensError(f"images must be {want}, got an empty batch {shape}; give at least one image of "
                            "at least 1x1 pixel")
    x = images.detach()
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise ConvlensError(f"images contain {bad} NaN or inf values of {x.numel()}; images must be {want}: "
                            "check what produced them (torch.nan_to_num fixes stray values)")
    lo, hi = torch.aminmax(x)
    if hi > 10 and float((x > 1.5).float().mean()) > 0.5:
        raise ConvlensError(f"images look like 0-255 values (max {float(hi):.4g}); images must be {want}: "
                            "divide by 255 (or use convlens.load_image)")
    if lo < -0.5 and float((x < -0.5).float().mean()) > 0.5:
        raise ConvlensError(f"images look normalized already (min {float(lo):.4g}); images must be {want}: "
                            "pass the [0, 1] image, the Model normalizes inside")


@dataclass(frozen=True)
class LayerInfo:
    """One addressable layer: dotted name, module type, output shape (C, H, W) or (D,), params."""

    name: str
    type: str
    shape: tuple
    params: int

    @property
    def is_conv(self) -> bool:
        return self.type in ("Conv2d", "ConvTranspose2d")


class Model(nn.Module):
    """An image classifier taking float32 NCHW images in [0, 1].

    Attributes:
        net: the wrapped network (layer names are relative to it, e.g. ``features.18``).
        input_size: (H, W) the network was trained at.
        classes: list of class names (index -> name).
        name: architecture name; weights: which weights were loaded.
    """

    def __init__(self, net: nn.Module, mean=IMAGENET_MEAN, std=IMAGENET_STD, input_size=(224, 224),
                 classes: Sequence[str] | None = None, name: str = "custom", weights: str | None = None):
        super().__init__()
        self.net = net
        # the normalization follows the network's dtype and device (a float64 or CUDA module works as is)
        dtype, device = _dtype_device(net)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=dtype).view(1, -1, 1, 1).to(device))
        self.register_buffer("std", torch.as_tensor(std, dtype=dtype).view(1, -1, 1, 1).to(device))
        if isinstance(input_size, int):
            input_size = (input_size, input_size)
        self.input_size = tuple(int(s) for s in input_size)
        self.classes = list(classes) if classes is not None else None
        self.name = name
        self.weights = weights
        self._layers: list[LayerInfo] | None = None
        self.eval()
        self.requires_grad_(False)

    @classmethod
    def wrap(cls, module: nn.Module, mean=IMAGENET_MEAN, std=IMAGENET_STD, classes=None,
             input_size=(224, 224), name: str | None = None, copy: bool = True) -> "Model":
        """Wrap any ``nn.Module`` mapping normalized images to logits.

        Args:
            module: the user's network; it is deep-copied unless ``copy=False``: a snapshot of the
                network without the user's hooks (they stay on ``module`` and never fire inside
                convlens). The normalization takes the dtype and device of its parameters.
            mean: per-channel normalization the network expects (ImageNet by default): mean and
            std: standard deviation.
            classes: class names; default: ImageNet's if the output has 1000 logits, else indices.
            input_size: (H, W) or int.
        Example:
            >>> import torch, convlens
            >>> m = convlens.Model.wrap(torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Flatten(1),
            ...     torch.nn.LazyLinear(3)), input_size=8, classes=["a", "b", "c"])
        """
        if isinstance(module, Model):
            return module
        if not isinstance(module, nn.Module):
            raise ConvlensError(f"Model.wrap needs a torch.nn.Module, got {type(module).__name__}")
        net = module
        if copy:
            net = _copy.deepcopy(module)
            _drop_user_hooks(net)
        model = cls(net, mean=mean, std=std, input_size=input_size, classes=classes,
                    name=name or type(module).__name__, weights="user")
        if model.classes is None:
            n = model.num_outputs()
            model.classes = imagenet_classes() if n == 1000 else [str(i) for i in range(n)]
        return model

    # --- basic properties -------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        for t in self.parameters():
            return t.device
        return self.mean.device

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits for images in [0, 1], shape (N, 3, H, W) -> (N, num_classes)."""
        if not _FROM_OPTIMIZER.get():
            validate_images(images, self.mean.shape[1])
        out = self.net((images.to(self.mean.dtype) - self.mean) / self.std)
        if not isinstance(out, torch.Tensor):  # GoogLeNet / Inception namedtuples in train mode
            out = out[0]
        return out

    def num_outputs(self) -> int:
        with torch.inference_mode():
            x = torch.zeros(1, self.mean.shape[1], *self.input_size, device=self.device)
            return int(self(x).shape[-1])

    @property
    def dtype(self) -> torch.dtype:
        """The network's floating-point dtype (its normalization buffers follow it)."""
        return self.mean.dtype

    def train(self, mode: bool = True):  # noqa: D102 - a Model stays an inference object
        return super().train(False)

    # --- layers -----------------------------------------------------------------------------
    def module(self, name: str) -> nn.Module:
        """The submodule of ``net`` with this dotted name; unknown names list the closest ones."""
        if name in ("", "net"):
            return self.net
        mods = dict(self.net.named_modules())
        if name not in mods:
            raise ConvlensError(
                f"unknown layer '{name}' in {self.name}; closest: {closest(name, [k for k in mods if k])}"
                f" (list all with `convlens layers {self.name}`)")
        return mods[name]

    def layers(self, kind: str | None = None) -> list[LayerInfo]:
        """Every addressable layer with its output shape at ``input_size`` (one zero forward).

        Args:
            kind: optional filter on the type name, e.g. "conv" keeps Conv2d layers.
        A module called several times in one forward (a shared ReLU) reports its last call.
        """
        if self._layers is None:
            shapes: dict[str, tuple] = {}
            hooks = []
            names = [(n, m) for n, m in self.net.named_modules() if n]
            owner = threading.get_ident()  # another thread's forward during this one must not record shapes
            try:
                for n, m in names:
                    def hook(mod, inp, out, n=n):
                        if isinstance(out, torch.Tensor) and threading.get_ident() == owner:
                            shapes[n] = tuple(out.shape[1:])
                    hooks.append(m.register_forward_hook(hook))
                with torch.inference_mode():
                    self(torch.zeros(1, self.mean.shape[1], *self.input_size, device=self.device))
            finally:
                for h in hooks:
                    h.remove()
            self._layers = [LayerInfo(n, type(m).__name__, shapes.get(n, ()),
                                      sum(p.numel() for p in m.parameters(recurse=False)))
                            for n, m in names]
        out = self._layers
        if kind:
            out = [li for li in out if kind.lower() in li.type.lower()]
        return out

    def layer_info(self, name: str) -> LayerInfo:
        self.module(name)  # raises the helpful error
        for li in self.layers():
            if li.name == name:
                return li
        raise ConvlensError(f"layer '{name}' produced no tensor output in a forward pass")

    # --- classes ----------------------------------------------------------------------------
    def class_index(self, target) -> int:
        """Class index from an int, a numeric string, or a name ('Egyptian cat', case-insensitive)."""
        n = len(self.classes) if self.classes else self.num_outputs()
        if isinstance(target, torch.Tensor):
            target = int(target)
        if isinstance(target, str) and target.strip().lstrip("-").isdigit():
            target = int(target)
        if isinstance(target, int):
            if not 0 <= target < n:
                raise ConvlensError(f"class index {target} out of range 0..{n - 1} for {self.name}")
            return target
        if isinstance(target, str) and self.classes:
            low = [c.lower() for c in self.classes]
            if target.lower() in low:
                return low.index(target.lower())
            raise ConvlensError(f"unknown class '{target}'; closest: {closest(target.lower(), low)}")
        raise ConvlensError(f"target must be a class index or name, got {target!r}")

    def targets(self, target, images: torch.Tensor | None = None, logits: torch.Tensor | None = None) -> torch.Tensor:
        """Resolve ``target`` to a LongTensor of one class index per image.

        None -> the predicted class of each image; int/str -> the same class for all;
        a list/tensor -> one per image.
        """
        if target is None:
            if logits is None:
                with torch.inference_mode():
                    logits = self(images)
            return logits.argmax(-1).detach().clone()
        n = images.shape[0] if images is not None else logits.shape[0]
        if isinstance(target, (list, tuple)) or (isinstance(target, torch.Tensor) and target.ndim > 0):
            idx = [self.class_index(t) for t in target]
            if len(idx) != n:
                raise ConvlensError(f"got {len(idx)} targets for {n} images; give one per image or a single one")
            return torch.tensor(idx, dtype=torch.long, device=self.device)
        return torch.full((n,), self.class_index(target), dtype=torch.long, device=self.device)

    def extra_repr(self) -> str:
        return f"name={self.name}, weights={self.weights}, input_size={self.input_size}"
