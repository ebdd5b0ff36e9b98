"""scikit-learn's bundled 8x8 handwritten digits as images: offline data whose classes are known
(``digits:N`` in ``resolve_images``; the embedding maps' sanity check)."""
from __future__ import annotations

import numpy as np
import torch


def digits_images(n: int = 1797, side: int = 64) -> tuple[torch.Tensor, list[str]]:
    """scikit-learn's bundled 8x8 digits as (n, 3, side, side) images (white on black, bilinear
    upscaled) and their labels ("0".."9"): offline data for maps whose classes are known."""
    from sklearn.datasets import load_digits
    d = load_digits()
    x = torch.from_numpy(d.images[:n].astype(np.float32) / 16.0)[:, None]
    x = torch.nn.functional.interpolate(x, size=(side, side), mode="bilinear", align_corners=False).clamp(0, 1)
    return x.expand(-1, 3, -1, -1).contiguous(), [str(int(t)) for t in d.target[:n]]
