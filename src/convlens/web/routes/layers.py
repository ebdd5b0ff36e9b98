"""The layer browser and unit views: activation grids, filters, max-activating patches, feature
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
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import torch
from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response

from ...attribution import guided_backprop
from ...errors import ConvlensError, closest
from ...images import fit, list_images
from ...images.io import save_png
from ...inspect import max_activating_patches, sample_dataset, top_activations
from ...inspect.figures import GRID_WIDTH, activation_atlas, atlas_layout, unit_filters_figure  # noqa: F401 - as before
from ...inspect.stages import browsable, default_layer, stage_layers
from ...inspect.units import channel_top, conv_inputs
from ...probe import Probe, receptive_field
from ...recipes.visualize import visualize_channel
from ...render import overlay
from ..encode import png_bytes
from ..jobs import job_key
from ..state import LRU, AppState, app_state, safe_child, safe_name

router = APIRouter(prefix="/api/layers", tags=["layers"])

IMAGE_FOLDERS_ENV = "CONVLENS_IMAGES"  # a folder of the user's images, named by its basename as a patch source
MAX_SAMPLES = 2000

ModelQ = Query(None, description="model name; must be the server's model (default)")
ImageQ = Query("chelsea", description="a bundled sample name or an upload id (POST /api/images)")
SourceQ = Query("samples", description="'samples' (the bundled sample set) or the name of an image folder "
                "(GET /api/layers/sources)")
NQ = Query(200, ge=1, le=MAX_SAMPLES, description="images of the sample set (folders: at most this many files)")
KQ = Query(9, ge=1, le=32, description="patches per channel")


# --- per-server state of this view ---------------------------------------------------------------

def _cache(state: AppState) -> LRU:
    """Maps and PNG bytes of this view (model, layer, channel, image, ...)."""
    return state.cache("layers", 96)


def _tops(state: AppState) -> LRU:
    """(model, layer, source, n, k) -> (TopActivations of every channel, the images)."""
    return state.cache("layers.tops", 32)


def _model_name(state: AppState, model: str | None) -> str:
    """The model a request names: one of the server's (default: its first); anything else is a clear error."""
    return state.check_model(model)


# --- layers -------------------------------------------------------------------------------------

def _layer(model, layer: str):
    """The LayerInfo of a browsable layer, or a ConvlensError naming the fix."""
    names = {li.name: li for li in browsable(model)}
    if layer not in names:
        all_names = {li.name for li in model.layers()}
        if layer in all_names:
            shape = model.layer_info(layer).shape
            raise ConvlensError(f"layer '{layer}' has output shape {tuple(shape)}, not (C, H, W); pick a conv "
                                f"layer (closest: {closest(layer, list(names))}; all at GET /api/layers)")
        raise ConvlensError(f"unknown layer '{layer[:80]}'; closest: {closest(layer, list(names))} "
                            "(all layers at GET /api/layers)")
    return names[layer]


def _channel(li, channel: int) -> int:
    if not 0 <= channel < li.shape[0]:
        raise ConvlensError(f"channel {channel} out of range 0..{li.shape[0] - 1} for layer {li.name}")
    return channel


# --- images and sources -------------------------------------------------------------------------

def _image(state: AppState, model, image: str) -> torch.Tensor:
    return fit(state.image(image), model.input_size)


def image_folders(state: AppState) -> dict[str, Path]:
    """Named folders of the user's images: ``<data_dir>/images/<name>`` and ``$CONVLENS_IMAGES``."""
    out = {}
    root = state.data_dir / "images"
    if root.is_dir():
        for p in sorted(root.iterdir()):
            if p.is_dir():
                try:
                    out[p.name] = safe_child(root, p.name, what="image folder")
                except ConvlensError:
                    continue  # a symlink out of the data folder is not served
    env = os.environ.get(IMAGE_FOLDERS_ENV)
    if env and Path(env).expanduser().is_dir():
        p = Path(env).expanduser().resolve()
        out.setdefault(p.name, p)
    for name, p in state.image_folders.items():
        out.setdefault(name, Path(p).resolve())
    return out


def _source(state: AppState, source: str, n: int):
    """The images a patch search runs over: the bundled sample set or a named user folder."""
    if source == "samples":
        return sample_dataset(n)
    safe_name(source, "image source")
    folders = image_folders(state)
    if source not in folders:
        raise ConvlensError(f"unknown image source '{source[:60]}'; use 'samples' or one of "
                            f"{sorted(folders) or 'no folders yet'} (put folders in <data_dir>/images/ "
                            f"or start the server with {IMAGE_FOLDERS_ENV}=FOLDER)")
    files = list_images(folders[source])[:n]
    if not files:
        raise ConvlensError(f"image folder '{source}' has no images")
    return files


# --- computations (cached) -----------------------------------------------------------------------

def layer_maps(state: AppState, name: str, layer: str, image: str) -> torch.Tensor:
    """(C, H, W) activations of ``image`` (fitted to the model's input) at ``layer``; cached."""
    cache = _cache(state)
    key = ("maps", name, layer, image)
    hit = cache.get(key)
    if hit is not None:
        return hit
    m = state.model(name)
    img = _image(state, m, image)
    with Probe(m, layer, detach=True, stop=True) as probe, torch.inference_mode():
        probe.run(img.to(m.device))
        a = probe[layer]
    return cache.put(key, a[0].detach().float().cpu().clone())


def atlas_png(maps: torch.Tensor, scale: str) -> tuple[bytes, dict]:
    """``convlens.inspect.activation_atlas`` as PNG bytes, with its layout."""
    img, lay = activation_atlas(maps, scale)
    return png_bytes(img), lay


def _png(data: bytes) -> Response:
    return Response(data, media_type="image/png", headers={"Cache-Control": "max-age=600"})


def _cached_png(state: AppState, key: tuple, make) -> Response:
    cache = _cache(state)
    hit = cache.get(key)
    if hit is None:
        hit = cache.put(key, make())
    return _png(hit)


# --- endpoints: layers and activations ------------------------------------------------------------

@router.get("")
def list_layers(state: AppState = Depends(app_state), model: str | None = ModelQ):
    """The browsable layers (output (C, H, W)) in forward order, the default stage layers, and the
    conv that produces each layer's channels (its filters are what a unit view shows)."""
    name = _model_name(state, model)
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
    for name, p in image_folders(state).items():
        out.append({"name": name, "description": f"{len(list_images(p))} images"})
    return out


@router.get("/{layer}/activations")
def activation_stats(layer: str, state: AppState = Depends(app_state), image: str = ImageQ,
                     model: str | None = ModelQ):
    """Per-channel summary of ``image`` at ``layer``: mean, max, fraction > 0, the strongest channels,
    and the layout of ``activations.png`` (tile i is channel i, row-major) so a click finds its channel."""
    name = _model_name(state, model)
    li = _layer(state.model(name), layer)
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
    name = _model_name(state, model)
    _layer(state.model(name), layer)
    maps = layer_maps(state, name, layer, image)
    return _cached_png(state, ("atlas", name, layer, image, scale), lambda: atlas_png(maps, scale)[0])


# --- endpoints: one unit -----------------------------------------------------------------------

def _unit(state: AppState, model: str | None, layer: str, channel: int):
    name = _model_name(state, model)
    m = state.model(name)
    li = _layer(m, layer)
    return name, m, li, _channel(li, channel)


@router.get("/{layer}/channels/{channel}")
def unit_info(layer: str, channel: int, state: AppState = Depends(app_state), image: str = ImageQ,
              model: str | None = ModelQ):
    """One unit (a channel of a layer): its activation on ``image`` (mean, max and where), the conv that
    produces it with its strongest input channels, the receptive field, and the URLs of its views."""
    name, m, li, c = _unit(state, model, layer, channel)
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
    name, m, li, c = _unit(state, model, layer, channel)
    maps = layer_maps(state, name, layer, image)

    def make():
        signed = bool((maps[c] < 0).any())
        return png_bytes(overlay(_image(state, m, image)[0], maps[c], alpha=0.6,
                                 mode="signed" if signed else "positive", colorbar=True))
    return _cached_png(state, ("map", name, layer, c, image), make)


@router.get("/{layer}/channels/{channel}/filters.png", response_class=Response)
def unit_filters(layer: str, channel: int, state: AppState = Depends(app_state), model: str | None = ModelQ):
    """The filter weights of the unit: the conv producing the layer's channel (RGB for a first layer,
    a per-input-channel grid of kernels deeper)."""
    name, m, li, c = _unit(state, model, layer, channel)
    return _cached_png(state, ("filters", name, layer, c), lambda: png_bytes(unit_filters_figure(m, layer, c)[0]))


@router.get("/{layer}/channels/{channel}/guided.png", response_class=Response)
def unit_guided(layer: str, channel: int, state: AppState = Depends(app_state), image: str = ImageQ,
                unit: Literal["sum", "max"] = Query("sum", description="'sum': the whole channel (default); 'max': its "
                                                    "strongest position only (Zeiler & Fergus)"),
                model: str | None = ModelQ):
    """Guided backprop (Springenberg et al. 2015) of the unit on ``image``: which pixels, passed back
    through positive ReLU paths only, drive the channel (RGB, grey = 0), next to the image."""
    name, m, li, c = _unit(state, model, layer, channel)

    def make():
        a = guided_backprop(m, _image(state, m, image), layer=layer, channel=c,
                            unit="max" if unit == "max" else None)
        return png_bytes(a.overlay(0, "rgb", label=f"guided backprop: {layer} channel {c} ({unit})"))
    return _cached_png(state, ("guided", name, layer, c, image, unit), make)


# --- endpoints: max-activating patches (a job over the layer, then per channel) -------------------

def _patch_key(name: str, layer: str, source: str, n: int, k: int) -> str:
    return job_key("layers.patches", name, layer, source, n, k)


def _top_job(state: AppState, name: str, layer: str, source: str, n: int, k: int):
    """The job computing the top-k units of every channel of ``layer`` over the source (one pass)."""
    images = _source(state, source, n)
    key = _patch_key(name, layer, source, n, k)
    def work(job) -> dict:
        def progress(done, total):
            job.progress(done, total)
            if job.cancelled():
                raise KeyboardInterrupt
        try:
            top = top_activations(state.model(name), images, layer, None, k, progress=progress, threads=state.threads)
        except KeyboardInterrupt as e:
            top = getattr(e, "partial", None)
            if top is None:
                return {"layer": layer, "n_images": 0, "complete": False}
        complete = top.n_images == len(images)
        _tops(state).put(key, (top, images))
        return {"layer": layer, "source": source, "n_images": top.n_images, "k": k, "complete": complete,
                "channels": len(top.channels)}
    return state.jobs.submit(key, work, label=f"patches {layer} over {source}")


@router.post("/{layer}/patches")
def start_patches(layer: str, state: AppState = Depends(app_state), source: str = SourceQ, n: int = NQ,
                  k: int = KQ, model: str | None = ModelQ):
    """Start (or reuse) the job finding the ``k`` strongest units of every channel of ``layer`` over the
    source (one pass over the images). Follow ``/api/jobs/{job}/events``; then ``GET
    .../channels/{c}/patches.png`` draws any channel's patches at once."""
    name = _model_name(state, model)
    _layer(state.model(name), layer)
    job = _top_job(state, name, layer, source, n, k)
    return {"job": job.id, "status": job.status}


def channel_patches(state: AppState, name: str, layer: str, channel: int, source: str, n: int, k: int):
    """The ``Patches`` of one channel from the finished layer pass (``max_activating_patches`` with that
    pass as its state: no second pass over the images)."""
    hit = _tops(state).get(_patch_key(name, layer, source, n, k))
    if hit is None:
        raise HTTPException(404, f"patches of {layer} over '{source}' (n={n}, k={k}) are not computed yet; "
                                 f"start them with POST /api/layers/{layer}/patches?source={source}&n={n}&k={k}")
    top, images = hit
    sub = channel_top(top, channel)
    if top.n_images < len(images):
        images = images[:top.n_images]   # a cancelled pass: the images it saw
    return max_activating_patches(state.model(name), images, layer, [channel], top.k, state=sub)


@router.get("/{layer}/channels/{channel}/patches")
def unit_patches(layer: str, channel: int, state: AppState = Depends(app_state), source: str = SourceQ,
                 n: int = NQ, k: int = KQ, model: str | None = ModelQ):
    """The channel's max-activating units over the source (after ``POST /api/layers/{layer}/patches``):
    activation value, image name, unit position and the receptive-field box in the image, strongest first."""
    name, m, li, c = _unit(state, model, layer, channel)
    p = channel_patches(state, name, layer, c, source, n, k)
    rows = []
    for j in range(p.top.k):
        i = int(p.top.image_index[0, j])
        if i >= 0:
            rows.append({"value": float(p.top.values[0, j]), "image_index": i, "image": p.names.get(i, f"#{i}"),
                         "position": p.top.positions[0, j].tolist(), "box": p.boxes[0, j].tolist()})
    return {"layer": layer, "channel": c, "source": source, "n_images": p.top.n_images,
            "receptive_field": list(p.rf.size), "patches": rows}


@router.get("/{layer}/channels/{channel}/patches.png", response_class=Response)
def unit_patches_png(layer: str, channel: int, state: AppState = Depends(app_state), source: str = SourceQ,
                     n: int = NQ, k: int = KQ, whole: bool = Query(False, description="whole images with the "
                                                                     "receptive field outlined"),
                     model: str | None = ModelQ):
    """The channel's max-activating patches (its exact receptive field in each image), labelled with the
    activation and image; ``whole=true`` shows the whole images instead."""
    name, m, li, c = _unit(state, model, layer, channel)
    return _cached_png(state, ("patches", name, layer, c, source, n, k, whole),
                       lambda: png_bytes(channel_patches(state, name, layer, c, source, n, k).render(whole=whole)))


# --- endpoints: feature visualization (a job with previews) --------------------------------------

def _viz_params(steps: int, size: int | None, preset: str, seed: int, model) -> dict:
    return {"steps": steps, "size": size or model.input_size[0], "preset": preset, "seed": seed}


def _viz_path(state: AppState, name: str, layer: str, channel: int, params: dict) -> tuple[str, Path]:
    key = job_key("layers.visualize", name, layer, channel, params)
    return key, safe_child(state.folder("results"), f"viz-{key}.png", what="result")


VizSteps = Query(128, ge=1, le=2048, description="optimization steps")
VizSize = Query(None, ge=32, le=512, description="image side in pixels (default: the model's input size)")
VizPreset = Query("robust", description="robust (Lucid-style, clearest), yosinski or simonyan (see VizConfig)")
VizSeed = Query(0, ge=0, description="random seed")


@router.post("/{layer}/channels/{channel}/visualize")
def start_visualize(layer: str, channel: int, state: AppState = Depends(app_state), steps: int = VizSteps,
                    size: int | None = VizSize, preset: Literal["robust", "yosinski", "simonyan"] = VizPreset,
                    seed: int = VizSeed, model: str | None = ModelQ):
    """Start (or reuse) the feature visualization of the channel (``convlens.visualize_channel``):
    previews stream via ``/api/jobs/{job}/preview.png``; cancelling keeps the best image so far.
    The result is served by ``GET .../visualization.png`` with the same parameters."""
    name, m, li, c = _unit(state, model, layer, channel)
    params = _viz_params(steps, size, preset, seed, m)
    key, path = _viz_path(state, name, layer, c, params)

    def work(job) -> dict:
        every = max(1, params["steps"] // 16)

        def callback(info):
            if info.step % every == 0 or info.step == info.total:
                job.set_preview(png_bytes(info.image[0]))
            return job.cancelled()
        v = visualize_channel(state.model(name), layer, c, steps=params["steps"], size=params["size"],
                              preset=params["preset"], seed=params["seed"], callback=callback,
                              progress=job.progress)
        save_png(v.images[0], path)
        q = "&".join(f"{k}={val}" for k, val in params.items())
        return {"layer": layer, "channel": c, "score": float(v.scores[0]), "steps": int(v.optim.steps),
                "stopped": v.optim.stopped, "params": params,
                "image": f"/api/layers/{layer}/channels/{c}/visualization.png?{q}"}
    job = state.jobs.submit(key, work, label=f"visualize {layer}:{c}")
    return {"job": job.id, "status": job.status}


@router.get("/{layer}/channels/{channel}/visualization.png", response_class=Response)
def unit_visualization(layer: str, channel: int, state: AppState = Depends(app_state), steps: int = VizSteps,
                       size: int | None = VizSize, preset: Literal["robust", "yosinski", "simonyan"] = VizPreset,
                       seed: int = VizSeed, model: str | None = ModelQ):
    """The finished feature visualization of the channel for these parameters (404 until the job of
    ``POST .../visualize`` with the same parameters has finished)."""
    name, m, li, c = _unit(state, model, layer, channel)
    _, path = _viz_path(state, name, layer, c, _viz_params(steps, size, preset, seed, m))
    if not path.exists():
        raise HTTPException(404, f"no visualization of {layer}:{c} with these parameters yet; start it with "
                                 f"POST /api/layers/{layer}/channels/{c}/visualize")
    return _png(path.read_bytes())
