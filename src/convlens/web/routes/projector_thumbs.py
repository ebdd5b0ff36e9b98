"""The projector's thumbnails: one row's image, and tiled atlases of a map.

``GET /api/projector/atlas.png`` sends thumbnails as tiled atlases of a map: the rows sorted along a
Z-order (Morton) curve of their 2-D coordinates (``order.bin``), atlas ``a`` holding
``order[a * 256 .. a * 256 + 255]`` as 32 x 32 (or 64 x 64) px cells, 16 a row, cell ``j`` at column
``j % 16``, row ``j // 16`` (RGBA; a row without a thumbnail stays transparent). Points close on the
map share an atlas, so the page fetches few atlases for what is visible at a zoom. The drawing is
``convlens.embed.atlas``; atlases are cached on disk under the server's cache folder.
"""
from __future__ import annotations

import numpy as np
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from ...embed.atlas import CELLS, PER_ATLAS, atlas_count, atlas_png
from ...embed.maps import grid_assign, grid_image
from ...errors import ConvlensError
from ...images import load_image, write_atomic
from ...images.io import to_uint8
from ..encode import png_bytes, png_response
from ..projector_state import (ProjectParams, StoreParam, check_row, map_key, map_order, map_query, open_store, projection,
                               store_key)
from ..state import AppState, app_state, save_upload

router = APIRouter(prefix="/api", tags=["projector"])


@router.get("/projector/order.bin", response_class=Response)
def projector_order(p: ProjectParams = Depends(map_query), state: AppState = Depends(app_state)):
    """The atlas order of a map: little-endian uint32 store rows, sorted along a Z-order curve of
    the 2-D coordinates; slot ``s`` is cell ``s % 256`` of atlas ``s // 256``. 409 until the map is computed."""
    order = map_order(state, open_store(state, p.store), p)
    return Response(np.ascontiguousarray(order, "<u4").tobytes(), media_type="application/octet-stream",
                    headers={"X-Count": str(len(order)), "Cache-Control": "no-cache"})


@router.get("/projector/atlas.png", response_class=Response)
def projector_atlas(atlas: int = Query(..., ge=0, description="atlas number: slots atlas*256 .. of order.bin"),
                    cell: int = Query(32, description="cell size in px: 32 or 64"),
                    p: ProjectParams = Depends(map_query), state: AppState = Depends(app_state)):
    """One thumbnail atlas of a map (PNG, 16 x 16 cells: the rows ``order[atlas*256 .. atlas*256+255]``
    of ``order.bin``), cached on disk."""
    if cell not in CELLS:
        raise ConvlensError(f"cell must be 32 or 64 (px), got {cell}")
    s = open_store(state, p.store)
    n_atlas = atlas_count(len(s))
    if atlas >= n_atlas:
        raise ConvlensError(f"atlas {atlas} out of range: the store has {n_atlas} atlas(es) of {PER_ATLAS} (0..{n_atlas - 1})")
    order = map_order(state, s, p)
    folder = state.folder("cache") / "projector" / store_key(s) / map_key(s, p)
    path = folder / f"atlas-{cell}-{atlas:05d}.png"
    if path.is_file():
        data = path.read_bytes()
    else:
        data = atlas_png(s, order[atlas * PER_ATLAS:(atlas + 1) * PER_ATLAS], cell)
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data)
    return Response(data, media_type="image/png", headers={"Cache-Control": "max-age=86400"})


@router.get("/projector/thumb.png", response_class=Response)
def projector_thumb(store: str | None = StoreParam, i: int = Query(..., description="store row"),
                    state: AppState = Depends(app_state)):
    """The stored thumbnail of row ``i`` (what the model saw, centre crop) as PNG."""
    s = open_store(state, store)
    check_row(s, i)
    if not s.metadata().column("thumbnail")[i].as_py():
        raise HTTPException(404, f"row {i} has no thumbnail (the store was made from vectors without thumbnails)")
    return png_response(np.asarray(s.thumbnail(i)))


class RowImage(BaseModel):
    """A store row to open in the other views."""
    store: str | None = Field(None, max_length=128)
    i: int = Field(..., description="store row")


@router.post("/projector/as-image")
def projector_as_image(params: RowImage, state: AppState = Depends(app_state)):
    """Row ``i``'s image as an upload (its source file when the stored path is a readable image, else its
    stored thumbnail), so the lab and the layer browser can open it: ``{"id", "url", "source"}``."""
    s = open_store(state, params.store)
    check_row(s, params.i)
    path = s.metadata().column("path")[params.i].as_py()
    arr, source = None, "thumbnail"
    if path and Path(path).is_file():
        try:
            arr, source = to_uint8(load_image(path)[0]), "file"
        except ConvlensError:   # moved, unreadable or too large since it was embedded: the thumbnail
            arr = None
    if arr is None:
        if not s.metadata().column("thumbnail")[params.i].as_py():
            raise HTTPException(404, f"row {params.i} has neither a readable image file nor a thumbnail")
        arr = np.asarray(s.thumbnail(params.i))
    image_id = save_upload(state, arr)
    return {"id": image_id, "url": f"/api/images/{image_id}.png", "source": source}


GRID_MAX = 10_000   # rows of a grid image (10,000 tiles of 48 px: a 4,800 px square)


@router.get("/projector/grid.png", response_class=Response)
def projector_grid(tile: int = Query(48, ge=16, le=128, description="tile size in px"),
                   p: ProjectParams = Depends(map_query), state: AppState = Depends(app_state)):
    """Karpathy's t-SNE grid of a computed map (any method; 2-D): every row's thumbnail in one cell of a
    square grid, rows assigned to cells along the map (``convlens.embed.maps.grid_assign``), cached on disk."""
    s = open_store(state, p.store)
    if len(s) > GRID_MAX:
        raise ConvlensError(f"the grid image draws at most {GRID_MAX} rows, the store has {len(s)}; use `convlens project "
                            "--grid` for a larger one")
    proj = projection(state, s, p)
    folder = state.folder("cache") / "projector" / store_key(s) / map_key(s, p)
    path = folder / f"grid-{tile}.png"
    if not path.is_file():
        img = grid_image(grid_assign(proj.coords[:, :2]), s.thumbnails(), tile)
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(path, png_bytes(img))
    return Response(path.read_bytes(), media_type="image/png", headers={"Cache-Control": "max-age=3600"})
