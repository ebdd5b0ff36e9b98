"""One unit of the layer browser (``/layers/<layer>/<channel>``): its activation on an image, the conv
producing it and its strongest inputs, its map over the image, its filters, its guided backprop."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from ...attribution import guided_backprop
from ...inspect.figures import unit_filters_figure
from ...inspect.units import conv_inputs
from ...probe import receptive_field
from ...render import overlay
from ..encode import png_bytes
from ..layers_state import ImageQ, ModelQ, cached_png, fit_image, layer_maps, resolve_unit
from ..state import AppState, app_state

router = APIRouter(prefix="/api/layers", tags=["layers"])


@router.get("/{layer}/channels/{channel}")
def unit_info(layer: str, channel: int, state: AppState = Depends(app_state), image: str = ImageQ,
              model: str | None = ModelQ):
    """One unit (a channel of a layer): its activation on ``image`` (mean, max and where), the conv that
    produces it with its strongest input channels, the receptive field, and the URLs of its views."""
    name, m, li, c = resolve_unit(state, model, layer, channel)
    maps = layer_maps(state, name, layer, image)
    a = maps[c]
    pos = int(a.flatten().argmax())
    u = conv_inputs(m, layer, c)
    conv_info = None if u is None else {
        "name": u.conv, "kernel": list(u.kernel), "in_channels": u.in_channels, "groups": u.groups,
        "first_layer": u.first_layer, "weight_norm": round(u.weight_norm, 6),
        "strongest_inputs": [{"input": i, "norm": round(n, 6)} for i, n in u.strongest]}
    try:
        r = receptive_field(m, layer)
        rf = {"size": list(r.size), "stride": list(r.stride), "offset": list(r.offset)}
    except Exception:  # noqa: BLE001 - some layers (e.g. after attention) have no exact field; the view still works
        rf = None
    q = f"?image={image}"
    base_url = f"/api/layers/{layer}/channels/{c}"
    return {"layer": layer, "channel": c, "channels": li.shape[0], "size": list(li.shape[1:]), "image": image,
            "model": name, "mean": float(a.mean()), "max": float(a.max()), "argmax": [pos // a.shape[1], pos % a.shape[1]],
            "active": float((a > 0).float().mean()), "conv": conv_info, "receptive_field": rf,
            "urls": {"page": f"/layers/{layer}/{c}{q}", "map": f"{base_url}/map.png{q}",
                     "filters": f"{base_url}/filters.png", "guided": f"{base_url}/guided.png{q}",
                     "patches": f"/api/layers/{layer}/patches", "visualize": f"{base_url}/visualize"}}


@router.get("/{layer}/channels/{channel}/map.png", response_class=Response)
def unit_map(layer: str, channel: int, state: AppState = Depends(app_state), image: str = ImageQ,
             model: str | None = ModelQ):
    """The channel's map on ``image``, upsampled and blended over it (colour bar: the raw range)."""
    name, m, li, c = resolve_unit(state, model, layer, channel)
    maps = layer_maps(state, name, layer, image)

    def make():
        signed = bool((maps[c] < 0).any())
        return png_bytes(overlay(fit_image(state, m, image)[0], maps[c], alpha=0.6,
                                 mode="signed" if signed else "positive", colorbar=True))
    return cached_png(state, ("map", name, layer, c, image), make)


@router.get("/{layer}/channels/{channel}/filters.png", response_class=Response)
def unit_filters(layer: str, channel: int, state: AppState = Depends(app_state), model: str | None = ModelQ):
    """The filter weights of the unit: the conv producing the layer's channel (RGB for a first layer,
    a per-input-channel grid of kernels deeper)."""
    name, m, li, c = resolve_unit(state, model, layer, channel)
    return cached_png(state, ("filters", name, layer, c), lambda: png_bytes(unit_filters_figure(m, layer, c)[0]))


@router.get("/{layer}/channels/{channel}/guided.png", response_class=Response)
def unit_guided(layer: str, channel: int, state: AppState = Depends(app_state), image: str = ImageQ,
                unit: Literal["sum", "max"] = Query("sum", description="'sum': the whole channel (default); 'max': its "
                                                    "strongest position only (Zeiler & Fergus)"),
                model: str | None = ModelQ):
    """Guided backprop (Springenberg et al. 2015) of the unit on ``image``: which pixels, passed back
    through positive ReLU paths only, drive the channel (RGB, grey = 0), next to the image."""
    name, m, li, c = resolve_unit(state, model, layer, channel)

    def make():
        a = guided_backprop(m, fit_image(state, m, image), layer=layer, channel=c,
                            unit="max" if unit == "max" else None)
        return png_bytes(a.overlay(0, "rgb", label=f"guided backprop: {layer} channel {c} ({unit})"))
    return cached_png(state, ("guided", name, layer, c, image, unit), make)
