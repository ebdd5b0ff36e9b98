"""Load any torchvision classifier by name, with weights resolved through torchvision's own API.

Weights:
  "default"  torchvision's DEFAULT weights, except mobilenet_v2 -> IMAGENET1K_V1 (the file that
             ships offline, see ``convlens.models.offline``); downloaded by torchvision as usual
             on a connected machine, read from its cache otherwise.
  None       random initialization, seeded (``seed=0``) so results repeat.
  "IMAGENET1K_V2" etc.  a named torchvision weights entry.
  a path     a local ``.safetensors`` or ``.pth``/``.pt`` state dict (loaded with weights_only=True).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torchvision
from torchvision.models import get_model, get_model_weights, list_models

from ..errors import ConvlensError, closest
from .efficientnet_lite import load_efficientnet_lite0, load_efficientnet_lite2
from .hed import load_vgg16_hed
from .imagenet import IMAGENET_MEAN, IMAGENET_STD, imagenet_classes
from .model import Model
from .offline import ensure_offline_weights
from .vgg_imagenet import load_vgg16_imagenet

DEFAULT_MODEL = "mobilenet_v2"
# convlens's "default" differs from torchvision's only where an offline file exists.
DEFAULT_WEIGHTS = {"mobilenet_v2": "IMAGENET1K_V1"}
LECTURE_MODELS = ["alexnet", "vgg16", "vgg19", "resnet18", "resnet50", "resnet101", "densenet121",
                  "googlenet", "squeezenet1_1", "mobilenet_v2"]


# name -> loader(device) of the networks built from offline package files (not torchvision names)
OFFLINE_MODELS = {"vgg16-imagenet": load_vgg16_imagenet, "vgg16-hed": load_vgg16_hed,
                  "efficientnet_lite2": load_efficientnet_lite2, "efficientnet_lite0": load_efficientnet_lite0}


def available_models() -> list[str]:
    """Every torchvision image-classification architecture name."""
    return list_models(module=torchvision.models)


def _weights_enum(name: str, weights: str):
    enum = get_model_weights(name)
    if weights == "default":
        weights = DEFAULT_WEIGHTS.get(name, "DEFAULT")
    try:
        return enum[weights] if weights != "DEFAULT" else enum.DEFAULT
    except KeyError:
        raise ConvlensError(f"unknown weights '{weights}' for {name}; choose one of: "
                            f"{', '.join(w.name for w in enum)}, a file path, or none") from None


def _cached(w) -> bool:
    fname = os.path.basename(w.url)
    return (Path(torch.hub.get_dir()) / "checkpoints" / fname).exists()


def load_model(name: str = DEFAULT_MODEL, weights="default", *, device: str | torch.device = "cpu",
               dtype: torch.dtype | str | None = None, seed: int = 0, classes=None) -> Model:
    """A torchvision classifier by name, in eval mode, normalization inside.

    Args:
        name: any of ``available_models()`` (e.g. "resnet18", "vgg16", "mobilenet_v2").
        weights: "default", None (seeded random init), a torchvision weights name, or a file path.
        device: where to put it; every convlens function follows the model's device.
        dtype: floating-point dtype (torch.float64 or "float64", ...; default float32); the
            normalization follows it, images in [0, 1] of any float dtype are accepted.
        seed: seed for random initialization (weights=None, or layers a file does not cover).
        classes: class names for a file with a non-ImageNet head.
    Returns:
        ``convlens.Model``.
    Example:
        >>> m = load_model("resnet18", weights=None)
        >>> m.input_size
        (224, 224)
    """
    if name in OFFLINE_MODELS:  # models read from files inside installed packages (convlens.assets)
        if weights not in ("default", "DEFAULT"):
            raise ConvlensError(f"{name} has one set of weights (read from its package); drop --weights / weights="
                                f"{str(weights)[:60]!r}, or load your own file into a torchvision architecture "
                                "(e.g. load_model('vgg16', weights='my.pth'))")
        return OFFLINE_MODELS[name](device)
    names = available_models()
    if name not in names:
        raise ConvlensError(f"unknown model '{name}'; closest: {closest(name, [*names, *OFFLINE_MODELS])} (see `convlens models`)")
    mean, std, size, cats, wname = IMAGENET_MEAN, IMAGENET_STD, 224, imagenet_classes(), None
    kwargs = {}
    if name in ("googlenet", "inception_v3"):
        kwargs["aux_logits"] = False if weights is None else True
        kwargs["init_weights"] = True if weights is None else False
    if weights is None or (isinstance(weights, str) and weights.lower() == "none"):
        torch.manual_seed(seed)
        net = get_model(name, weights=None, **kwargs)
        size = _default_size(name)
        wname = f"random(seed={seed})"
    elif isinstance(weights, (str, os.PathLike)) and (os.sep in str(weights) or Path(str(weights)).suffix
                                                      in (".pth", ".pt", ".safetensors", ".bin")):
        torch.manual_seed(seed)
        net = get_model(name, weights=None, **kwargs)
        state = load_state_dict_file(weights)
        _load_into(net, state, weights, name)
        size = _default_size(name)
        wname = str(weights)
    else:
        w = _weights_enum(name, str(weights))
        if not _cached(w):
            ensure_offline_weights(os.path.basename(w.url))
        try:
            net = get_model(name, weights=w)
        except (OSError, RuntimeError) as e:  # URLError is an OSError
            raise ConvlensError(
                f"could not get {name} {w.name} weights ({type(e).__name__}: {str(e)[:80]}); on an offline "
                f"machine run scripts/setup or use weights=None / a local file") from e
        t = w.transforms()
        mean, std, size = tuple(t.mean), tuple(t.std), t.crop_size[0]
        cats = w.meta.get("categories", cats)
        wname = w.name
    if classes is not None:
        cats = list(classes)
    if dtype is not None:
        dt = getattr(torch, dtype.removeprefix("torch.")) if isinstance(dtype, str) else dtype
        if not isinstance(dt, torch.dtype) or not dt.is_floating_point:
            raise ConvlensError(f"dtype must be a floating-point torch dtype such as float64, got {dtype!r}")
        net = net.to(dt)
    net = net.to(device)
    return Model(net, mean=mean, std=std, input_size=(size, size), classes=cats, name=name, weights=wname)


def _default_size(name: str) -> int:
    try:
        return get_model_weights(name).DEFAULT.transforms().crop_size[0]
    except Exception:
        return 224


def load_state_dict_file(path) -> dict:
    """A state dict from ``.safetensors`` or ``.pth`` (weights_only=True), unwrapping common nesting."""
    path = Path(path)
    if not path.exists():
        raise ConvlensError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise ConvlensError(f"cannot read weights file {path}: {type(e).__name__}: {str(e)[:100]}") from e
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ConvlensError(f"{path} holds a {type(state).__name__}, not a state dict; save model.state_dict()")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _load_into(net, state, path, name):
    missing, unexpected = net.load_state_dict(state, strict=False)
    if unexpected or len(missing) == len(net.state_dict()):
        raise ConvlensError(f"{path} does not fit {name}: {len(missing)} missing keys (e.g. "
                            f"{', '.join(list(missing)[:2])}), {len(unexpected)} unexpected (e.g. "
                            f"{', '.join(list(unexpected)[:2])}); pass the matching model name")
    if missing:
        raise ConvlensError(f"{path} lacks {len(missing)} of {name}'s tensors (e.g. {missing[0]}); "
                            f"pass the matching model name")
