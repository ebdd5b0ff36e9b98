"""Models by name, weights resolution, normalization inside the wrapper."""
from .imagenet import IMAGENET_MEAN, IMAGENET_STD, imagenet_classes
from .model import LayerInfo, Model
from .predict import Prediction, predict
from .registry import DEFAULT_MODEL, LECTURE_MODELS, available_models, load_model, load_state_dict_file

__all__ = ["Model", "LayerInfo", "load_model", "available_models", "predict", "Prediction",
           "imagenet_classes", "IMAGENET_MEAN", "IMAGENET_STD", "DEFAULT_MODEL", "LECTURE_MODELS",
           "load_state_dict_file"]
