"""Image loading (any format -> float32 (1, 3, H, W) in [0, 1]), bundled samples, atomic PNG writes."""
from .io import fit, list_images, load_image, resize_shorter, save_png, to_uint8, write_atomic
from .labelled import LabelledPhotos, labelled_photos, loo_1nn_accuracy
from .samples import PAINTINGS, PHOTOS, TEXTURES, image_from_arg, sample_image, sample_names

__all__ = ["load_image", "fit", "resize_shorter", "save_png", "to_uint8", "write_atomic", "list_images", "sample_image",
           "sample_names", "image_from_arg", "PHOTOS", "TEXTURES", "PAINTINGS",
           "labelled_photos", "LabelledPhotos", "loo_1nn_accuracy"]
