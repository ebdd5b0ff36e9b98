"""The layer browser (the layers of a model and their activation grids) and, in sibling modules, the unit views: activation grids, filters, max-activating patches, feature
visualization and guided backprop of one channel, for whatever model the server loads.

Pages: ``/layers`` (the default layer), ``/layers/<layer>?image=chelsea`` (its activation grid),
``/layers/<layer>/<channel>?image=chelsea`` (one unit, bookmarkable, like OpenAI Microscope).

Cheap views (grid, filters, one map, guided backprop) are synchronous PNG endpoints, cached per
(model, layer, channel, image). The dataset pass behind max-activating patches and the feature
visualization are jobs (``state.jobs``): ``POST`` returns ``{"job": id}``, the page follows
``/api/jobs/{id}/events``, and the matching ``GET ... .png`` serves the finished result.

Request names never reach the filesystem except through ``safe_child`` (image folders under
``<data_dir>/images/``, results under ``<data_dir>/results/``). Layers are looked up in the model,
channels range-checked, images resolved by ``state.image``.

Requests and jobs share the server's model: a ``Probe`` acts only on the forwards of the thread that
entered it (``convlens.probe.probe``), so no private copies and no locks are needed.

Modules: this one (layers, image sources, activation grids), ``layer_units`` (one unit: its map,
filters, guided backprop), ``layer_patches`` (max-activating patches), ``layer_visualize`` (feature
visualization); what they share is ``web/layers_state.py``; the figures are ``convlens.inspect``'s.
"""
from __future__ import annotations

from typing import Literal

import torch
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from ...drivers.onnx import prestart_export_worker
from ...images import list_images
from ...inspect.figures import GRID_WIDTH, activation_atlas, atlas_layout, unit_filters_figure  # noqa: F401 - as before
from ...inspect.stages import browsable, default_layer, stage_layers
from ..encode import png_bytes
from ..layers_state import (IMAGE_FOLDERS_ENV, STORE_SOURCE, ImageQ, ModelQ, browsable_layer, cached_png,  # noqa: F401 - as before
                            image_folders, layer_maps, store_source)
from ..state import AppState, app_state

router = APIRouter(prefix="/api/layers", tags=["layers"])


def atlas_png(maps: torch.Tensor, scale: str) -> tuple[bytes, dict]:
    """``convlens.inspect.activation_atlas`` as PNG bytes, with its layout."""
    img, lay = activation_atlas(maps, scale)
    return png_bytes(img), lay


@router.get("")
def list_layers(state: AppState = Depends(app_state), model: str | None = ModelQ):
    """The browsable layers (output (C, H, W)) in forward order, the default stage layers, and the
    conv that produces each layer's channels (its filters are what a unit view shows)."""
    name = state.check_model(model)
    prestart_export_worker()   # the layer's patch pass exports the model (onnxruntime): start the exporter now
    m = state.model(name)
    stages = stage_layers(m)
    return {"model": name, "input_size": list(m.input_size), "default": default_layer(m),
            "stages": stages,
            "layers": [{"name": li.name, "type": li.type, "channels": li.shape[0], "size": list(li.shape[1:]),
                        "stage": li.name in stages} for li in browsable(m)]}


@router.get("/sources")
def list_sources(state: AppState = Depends(app_state)):
    """Image sets for max-activating patches: 'samples' and the user's folders (``<data_dir>/images/<name>``
    or ``$CONVLENS_IMAGES`` at server start)."""
    out = [{"name": "samples", "description": "the bundled sample set (crops, scales, flips of bundled photos)"}]
    store = store_source(state)
    if store is not None:
        out.append({"name": STORE_SOURCE, "description": f"the store's {len(store)} thumbnails ({store.path.name})"})
    for name, p in image_folders(state).items():
        out.append({"name": name, "description": f"{len(list_images(p))} images"})
    return out


@router.get("/{layer}/activations")
def activation_stats(layer: str, state: AppState = Depends(app_state), image: str = ImageQ,
                     model: str | None = ModelQ):
    """Per-channel summary of ``image`` at ``layer``: mean, max, fraction > 0, the strongest channels,
    and the layout of ``activations.png`` (tile i is channel i, row-major) so a click finds its channel."""
    name = state.check_model(model)
    li = browsable_layer(state.model(name), layer)
    maps = layer_maps(state, name, layer, image)
    C, H, W = maps.shape
    flat = maps.flatten(1)
    mean = flat.mean(1)
    return {"layer": layer, "image": image, "channels": C, "size": [H, W], "signed": bool((maps < 0).any()),
            "mean": [round(float(x), 6) for x in mean], "max": [round(float(x), 6) for x in flat.amax(1)],
            "active": [round(float(x), 4) for x in (flat > 0).float().mean(1)],
            "strongest": torch.argsort(mean, descending=True, stable=True)[:8].tolist(),
            "layout": atlas_layout(C, H, W), "type": li.type}


@router.get("/{layer}/activations.png", response_class=Response)
def activation_grid(layer: str, state: AppState = Depends(app_state), image: str = ImageQ,
                    scale: Literal["layer", "channel"] = Query("layer", description="one scale for the layer or each map to its max"),
                    model: str | None = ModelQ):
    """The activation grid of ``image`` at ``layer``: every channel's map as a tile (channel order,
    layout in ``GET .../activations``). Black = 0, white = the layer's 99.5th percentile (signed layers:
    red > 0, blue < 0)."""
    name = state.check_model(model)
    browsable_layer(state.model(name), layer)
    maps = layer_maps(state, name, layer, image)
    return cached_png(state, ("atlas", name, layer, image, scale), lambda: atlas_png(maps, scale)[0])
