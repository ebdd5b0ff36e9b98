"""Non-parametric texture synthesis (see docs/texture-style.md): Efros & Leung 1999 (vectorized,
one onion layer per batched search), Wei & Levoy 2000 (multi-resolution, causal neighbourhoods,
tree-structured VQ or exact search), image quilting (Efros & Freeman 2001)."""
from .common import TextureResult, window_found_rate
from .efros_leung import efros_leung
from .quilting import quilting
from .wei_levoy import wei_levoy
from .samples import texture_image, texture_names

__all__ = ["efros_leung", "wei_levoy", "quilting", "TextureResult", "window_found_rate", "texture_image", "texture_names"]
