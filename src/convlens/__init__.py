"""convlens: see inside convolutional networks and their embedding spaces.

    import convlens
    model = convlens.load_model()                      # offline MobileNetV2 (ImageNet)
    cat = convlens.sample_image("chelsea")
    convlens.predict(model, cat, topk=5)
    with convlens.Probe(model, "features.14") as p:
        model(convlens.fit(cat, 224))
    p["features.14"].shape                              # (1, 160, 7, 7)

Conventions: images are float32 (N, 3, H, W) in [0, 1]; normalization lives in ``Model``; layer
names are dotted module names (``model.layers()``); the caller's modules are never modified.

The public names are loaded on first use (PEP 562), so ``import convlens`` (and the ``convlens``
command's ``--help``) does not import torch until a name that needs it is touched.
"""
from __future__ import annotations

import importlib
import importlib.util

__version__ = "0.1.0"

# public name -> (submodule, attribute); the technique packages' names come from `concerns`
_CORE = {
    "batched_forward": ("drivers", "batched_forward"), "thread_budget": ("drivers", "thread_budget"),
    "ConvlensError": ("errors", "ConvlensError"),
    **{n: ("images", n) for n in ("fit", "labelled_photos", "list_images", "load_image", "loo_1nn_accuracy",
                                  "sample_image", "sample_names", "save_png")},
    **{n: ("models", n) for n in ("LayerInfo", "Model", "available_models", "imagenet_classes", "load_model")},
    "Prediction": ("drivers", "Prediction"), "predict": ("drivers", "predict"),
    "Probe": ("probe", "Probe"), "ReceptiveField": ("probe", "ReceptiveField"),
    "layer_activations": ("probe", "activations"), "receptive_field": ("probe", "receptive_field"),
    **{n: ("render", n) for n in ("Report", "grid", "heatmap", "overlay", "side_by_side")},
}


_LIGHT = {"errors", "progress", "assets", "cli", "ConvlensError"}  # names that need no torch


def _load_all():
    """What ``import convlens`` used to import (so ``convlens.drivers.onnx`` etc. resolve as before)."""
    for module in ("drivers", "errors", "images", "models", "probe", "render", "concerns"):
        importlib.import_module(f".{module}", __name__)


def _concern_names() -> list[str]:
    return list(importlib.import_module(".concerns", __name__).__all__)


def __getattr__(name: str):
    if name.startswith("__") and name != "__all__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in _LIGHT:
        _load_all()  # the first touch of a name that needs torch loads the whole package, once
    if name == "__all__":
        value = [*_CORE, "__version__", *_concern_names()]
    elif name in _CORE:
        module, attr = _CORE[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
    elif importlib.util.find_spec(f"{__name__}.{name}") is not None:  # a submodule: convlens.embed
        return importlib.import_module(f".{name}", __name__)
    elif name in _concern_names():
        value = getattr(importlib.import_module(".concerns", __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__getattr__("__all__")})
