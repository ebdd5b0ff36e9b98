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
"""
from .drivers import batched_forward, thread_budget
from .errors import ConvlensError
from .images import fit, labelled_photos, list_images, load_image, loo_1nn_accuracy, sample_image, sample_names, save_png
from .models import LayerInfo, Model, Prediction, available_models, imagenet_classes, load_model, predict
from .probe import Probe, ReceptiveField, activations as layer_activations, receptive_field
from .render import Report, grid, heatmap, overlay, side_by_side

__version__ = "0.1.0"

__all__ = ["Model", "LayerInfo", "load_model", "available_models", "predict", "Prediction", "imagenet_classes",
           "Probe", "layer_activations", "receptive_field", "ReceptiveField", "load_image", "sample_image",
           "sample_names", "labelled_photos", "loo_1nn_accuracy", "fit", "save_png", "list_images", "grid", "overlay", "heatmap", "side_by_side",
           "Report", "batched_forward", "thread_budget", "ConvlensError", "__version__"]

# Each technique package adds its public functions here (see the concern's __init__).
from .concerns import *  # noqa: E402,F401,F403
from .concerns import __all__ as _concern_all  # noqa: E402

__all__ += _concern_all
