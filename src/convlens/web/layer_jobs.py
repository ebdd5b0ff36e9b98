"""The layer browser's jobs and their keys, shared by its routes (which do not import each other): the
layer pass behind the max-activating patches, and where a unit's feature visualization is kept."""
from __future__ import annotations

import typing
from pathlib import Path

from fastapi import HTTPException, Query

from ..inspect import max_activating_patches, top_activations
from ..inspect.units import channel_top
from ..recipes.visualize import VizConfig
from .context import JobFeed
from .forms import LIMITS
from .jobs import job_key
from .layers_state import image_source, pass_backend, sample_images, source_size
from .state import LRU, AppState, safe_child


def tops(state: AppState) -> LRU:
    """(model, layer, source, n, k) -> (TopActivations of every channel, the images)."""
    return state.cache("layers.tops", 32)


def patch_key(name: str, layer: str, source: str, n: int, k: int) -> str:
    return job_key("layers.patches", name, layer, source, n, k)


def top_job(state: AppState, name: str, layer: str, source: str, n: int, k: int):
    """The job computing the top-k units of every channel of ``layer`` over the source (one pass)."""
    images = image_source(state, source, n)
    key = patch_key(name, layer, source, n, k)
    def work(job) -> dict:
        feed = JobFeed(job)
        imgs = sample_images(state, n) if source == "samples" else images  # the samples: decoded once a server
        try:
            top = top_activations(state.model(name), imgs, layer, None, k, progress=feed.progress,
                                  threads=state.threads, backend=pass_backend(len(imgs)), size=source_size(source))
        except KeyboardInterrupt as e:
            top = getattr(e, "partial", None)
            if top is None:
                return {"layer": layer, "n_images": 0, "complete": False}
        complete = top.n_images == len(imgs)
        tops(state).put(key, (top, imgs))
        return {"layer": layer, "source": source, "n_images": top.n_images, "k": k, "complete": complete,
                "channels": len(top.channels)}
    return state.jobs.submit(key, work, label=f"patches {layer} over {source}")


def channel_patches(state: AppState, name: str, layer: str, channel: int, source: str, n: int, k: int):
    """The ``Patches`` of one channel from the finished layer pass (``max_activating_patches`` with that
    pass as its state: no second pass over the images)."""
    hit = tops(state).get(patch_key(name, layer, source, n, k))
    if hit is None:
        raise HTTPException(404, f"patches of {layer} over '{source}' (n={n}, k={k}) are not computed yet; "
                                 f"start them with POST /api/layers/{layer}/patches?source={source}&n={n}&k={k}")
    top, images = hit
    sub = channel_top(top, channel)
    if top.n_images < len(images):
        images = images[:top.n_images]   # a cancelled pass: the images it saw
    return max_activating_patches(state.model(name), images, layer, [channel], top.k, state=sub, size=source_size(source))


def viz_params(steps: int, size: int | None, preset: str, seed: int, model) -> dict:
    return {"steps": steps, "size": size or model.input_size[0], "preset": preset, "seed": seed}


def viz_path(state: AppState, name: str, layer: str, channel: int, params: dict) -> tuple[str, Path]:
    key = job_key("layers.visualize", name, layer, channel, params)
    return key, safe_child(state.folder("results"), f"viz-{key}.png", what="result")


_VIZ = VizConfig()  # the lab's and the CLI's defaults (one source)
VizSteps = Query(_VIZ.steps, ge=1, le=LIMITS["steps"], description="optimization steps")
VizSize = Query(None, ge=32, le=512, description="image side in pixels (default: the model's input size)")
Preset = typing.get_type_hints(VizConfig)["preset"]   # VizConfig's Literal: a new preset (maco) appears here too
VizPreset = Query(_VIZ.preset, description=f"one of {', '.join(typing.get_args(Preset))} (see VizConfig)")
VizSeed = Query(_VIZ.seed, ge=0, description="random seed")
