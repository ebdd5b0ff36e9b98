"""Synthetic and natural evidence side by side in the unit view: the channel's finished feature
visualization (``POST .../visualize``) next to its max-activating patches (``POST .../patches``), with
the plausibility score of ``convlens.natural_evidence`` computed by the same function
(``recipes.evidence.score_exemplars`` on ``patch_exemplars`` of the layer pass): the cosine similarity of
the visualization to the patches in the model's own penultimate representation, beside the patches'
similarity among themselves and uniform noise's. Transferability (other models reading the image as a
class) needs a class target, so a channel has none."""
from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import Response

from ...images import load_image
from ...recipes.evidence import patch_exemplars, score_exemplars
from ..encode import png_bytes
from ..layer_jobs import Preset, VizPreset, VizSeed, VizSize, VizSteps, channel_patches, viz_params, viz_path
from ..layers_state import KQ, ModelQ, NQ, SourceQ, cached_png, resolve_unit
from ..state import AppState, app_state

router = APIRouter(prefix="/api/layers", tags=["layers"])

EXPLAIN = ("Plausibility: cosine similarity of the visualization to these natural patches in the model's own "
           "representation ({layer}, spatial mean), beside the patches among themselves and uniform noise "
           "(natural_evidence; Fel et al. 2023). Transferability to other models needs a class target.")


def unit_evidence_of(state: AppState, name: str, layer: str, c: int, viz: dict, source: str, n: int, k: int):
    """The ``Evidence`` of the channel's finished visualization against its patches (cached per parameters)."""
    cache = state.cache("layers.evidence", 32)
    key = (name, layer, c, tuple(sorted(viz.items())), source, n, k)
    hit = cache.get(key)
    if hit is not None:
        return hit
    _, path = viz_path(state, name, layer, c, viz)
    if not path.exists():
        raise HTTPException(404, f"no visualization of {layer}:{c} with these parameters yet; start it with "
                                 f"POST /api/layers/{layer}/channels/{c}/visualize")
    ex, names, values = patch_exemplars(channel_patches(state, name, layer, c, source, n, k))
    if len(ex[0]) < 2:
        raise HTTPException(409, f"{layer}:{c} has {len(ex[0])} patch(es) over '{source}'; plausibility needs at "
                                 "least 2: raise k or n")
    e = score_exemplars(state.model(name), load_image(path), [viz["preset"]], ex, names, values)
    return cache.put(key, e)


@router.get("/{layer}/channels/{channel}/evidence")
def unit_evidence(layer: str, channel: int, state: AppState = Depends(app_state), steps: int = VizSteps,
                  size: int | None = VizSize, preset: Preset = VizPreset, seed: int = VizSeed,
                  source: str = SourceQ, n: int = NQ, k: int = KQ, model: str | None = ModelQ):
    """The plausibility of the channel's visualization (parameters of ``POST .../visualize``) against its
    max-activating patches (parameters of ``POST .../patches``; both must have finished): ``plausibility``
    (mean cosine to the patches), ``reference`` (the patches among themselves), ``noise`` (uniform noise's
    score), the representation ``layer``, the figure's URL and a one-line ``explanation``."""
    name, m, li, c = resolve_unit(state, model, layer, channel)
    viz = viz_params(steps, size, preset, seed, m)
    e = unit_evidence_of(state, name, layer, c, viz, source, n, k)
    q = urlencode({**viz, "source": source, "n": n, "k": k, **({"model": model} if model else {})})
    return {"layer": layer, "channel": c, "plausibility": float(e.plausibility[0]), "reference": float(e.reference[0]),
            "noise": float(e.noise[0]), "representation": e.layer, "exemplars": len(e.exemplars[0]),
            "exemplar_names": e.exemplar_names[0], "transfer": None, "text": e.text()[0],
            "explanation": EXPLAIN.format(layer=e.layer),
            "figure": f"/api/layers/{layer}/channels/{c}/evidence.png?{q}"}


@router.get("/{layer}/channels/{channel}/evidence.png", response_class=Response)
def unit_evidence_png(layer: str, channel: int, state: AppState = Depends(app_state), steps: int = VizSteps,
                      size: int | None = VizSize, preset: Preset = VizPreset, seed: int = VizSeed,
                      source: str = SourceQ, n: int = NQ, k: int = KQ, model: str | None = ModelQ):
    """One row: the visualization (labelled with its plausibility / the patches' reference), then its
    patches labelled with their activation and image (``Evidence.figure``)."""
    name, m, li, c = resolve_unit(state, model, layer, channel)
    viz = viz_params(steps, size, preset, seed, m)
    return cached_png(state, ("evidence", name, layer, c, tuple(sorted(viz.items())), source, n, k),
                      lambda: png_bytes(unit_evidence_of(state, name, layer, c, viz, source, n, k).figure()))
