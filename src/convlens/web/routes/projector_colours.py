"""The projector's colours: a map's points coloured by a metadata column (``convlens.embed.colours``)."""
from __future__ import annotations

import base64

from fastapi import APIRouter, Depends, Query

from ...embed.colours import colour_codes
from ..projector_state import StoreParam, open_store
from ..state import AppState, app_state

router = APIRouter(prefix="/api", tags=["projector"])


def _b64(array) -> str:
    return base64.b64encode(array.tobytes()).decode()


@router.get("/projector/colours")
def projector_colours(store: str | None = StoreParam,
                      column: str = Query("label", max_length=40, description="label, folder, width or height"),
                      state: AppState = Depends(app_state)):
    """Colours by a metadata column: ``kind`` "category" (``categories``, ``codes`` = base64 uint8,
    one a point; at most 20 categories, the rarest folded into "(other)") or "numeric" (``values`` =
    base64 little-endian float32, ``min``, ``max``)."""
    c = colour_codes(open_store(state, store), column)
    if c.kind == "numeric":
        return {"column": c.column, "kind": c.kind, "min": c.min, "max": c.max, "values": _b64(c.values.astype("<f4"))}
    return {"column": c.column, "kind": c.kind, "categories": c.categories, "counts": c.counts, "codes": _b64(c.codes)}
