"""Image tiles of a store's rows, and the neighbour figure (``Neighbors.figure()``): the drawing
search results need, below search and the maps (``maps.py``)."""
from __future__ import annotations

from PIL import Image

from ..errors import ConvlensError
from ..render.figures import as_pil, grid


def tile_image(img, tile: int) -> Image.Image:
    """``img`` (a PIL image, tensor or array) as a ``tile`` x ``tile`` PIL image (bilinear)."""
    p = as_pil(img)
    return p.resize((tile, tile), Image.BILINEAR) if p.size != (tile, tile) else p


def neighbor_figure(nb, tile: int = 96, query_images=None) -> Image.Image:
    """Query images in the first column (red frame), their neighbours along each row with scores."""
    store = nb.store
    tiles, labels, hi = [], [], []
    k = nb.indices.shape[1]
    for r, q in enumerate(nb.queries):
        qimg = query_images[r] if query_images is not None else (store.thumbnail(q) if q >= 0 else None)
        if qimg is None:
            raise ConvlensError("an outside query needs query_images= to be drawn")
        tiles.append(tile_image(qimg, tile))
        labels.append(f"query #{q}" if q >= 0 else "query")
        hi.append(True)
        for i, s in zip(nb.indices[r], nb.scores[r]):
            tiles.append(tile_image(store.thumbnail(int(i)), tile))
            labels.append(f"#{int(i)} {s:.3f}")
            hi.append(False)
    return grid(tiles, labels, ncol=k + 1, tile=tile, highlight=hi, label_size=10)


_tile = tile_image  # the old private name
