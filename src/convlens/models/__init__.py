"""Models by name, weights resolution, normalization inside the wrapper."""
from .imagenet import IMAGENET_MEAN, IMAGENET_STD, imagenet_classes
from .model import LayerInfo, Model
from .registry import DEFAULT_MODEL, LECTURE_MODELS, available_models, load_model, load_state_dict_file

__all__ = ["Model", "LayerInfo", "load_model", "available_models", "predict", "Prediction",
           "imagenet_classes", "IMAGENET_MEAN", "IMAGENET_STD", "DEFAULT_MODEL", "LECTURE_MODELS",
           "load_state_dict_file"]


def __getattr__(name: str):
    # ``predict`` / ``Prediction`` moved to ``drivers/predict.py`` (a forward pass: it needs the thread
    # budget and the onnxruntime switch); this alias keeps ``convlens.models.predict`` working. The
    # import is upward (models -> drivers): pyproject's import-linter config lists it, issue 21 item 4.
    if name in ("predict", "Prediction"):
        from ..drivers.predict import Prediction, predict
        return {"predict": predict, "Prediction": Prediction}[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
