"""Image loading (any format -> float32 (1, 3, H, W) in [0, 1]), bundled samples and sample sets,
``resolve_images`` (which images a spec names), atomic PNG writes.

Names load on first use (PEP 562): ``convlens.images.samples`` (the sample list) needs no torch.
"""
import importlib

_NAMES = {**{n: "io" for n in ("check_image_header", "fit", "list_images", "load_image", "resize_long", "resize_shorter",
                               "save_png", "to_uint8", "write_atomic", "MAX_PIXELS")},
          **{n: "samples" for n in ("PAINTINGS", "PHOTOS", "TEXTURES", "image_from_arg", "sample_image", "sample_names")},
          **{n: "resolve" for n in ("ImageSet", "resolve_images")},
          **{n: "sample_set" for n in ("SampleDataset", "sample_dataset")},
          "digits_images": "digits",
          **{n: "labelled" for n in ("LabelledPhotos", "labelled_photos", "loo_1nn_accuracy")}}

__all__ = list(_NAMES)


def __getattr__(name: str):
    if name not in _NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    globals()[name] = value
    return value
