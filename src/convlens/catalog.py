"""The catalog of techniques: one entry per technique, one spelling, read by every front door.

Each ``Technique`` names its function, its config dataclass (the paper's defaults; the CLI's flags
and the web form's fields are generated from it), the CLI verbs that run it, whether the web lab
offers it, and a ``summarize(result)`` of its numbers. The web lab's registry, the demo's "open in
explorer" links (``explorer_view``), ``sanity_check``'s method names and the docs' tables come from
here; ``tests/test_catalog.py`` proves the front doors agree with it.

Adding a technique: its method file (in its family), its test, its doc page, and an entry below.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote, urlencode

from . import adversarial, attribution, embed, faithfulness, inspect, recipes, texture
from .adversarial import (EvolveConfig, FGSMConfig, FoolConfig, HogMatchConfig, PGDConfig, RobustnessConfig,
                          UnrecognizableConfig)
from .attribution import (GrabCutConfig, IntegratedGradientsConfig, OcclusionConfig, RiseConfig, SanityConfig,
                          ScoreCamConfig, SmoothGradConfig)
from .embed.project import ProjectConfig
from .errors import ConvlensError, closest
from .fields import config_fields
from .images.samples import SAMPLES
from .recipes import AccentuateConfig, DreamConfig, FacetsConfig, InvertConfig, StyleConfig, VizConfig
from .recipes.texture_synthesis import TextureSynthesisConfig, texture_synthesis

FAMILIES = {"inspect": "Inside the network", "attribution": "Which pixels matter", "faithfulness": "Which map to believe",
            "synthesis": "Images the network wants", "adversarial": "Fooling the network", "texture": "Texture and style",
            "embed": "Embedding spaces"}


@dataclass(frozen=True)
class Technique:
    """One technique of the lecture, as every front door sees it."""

    id: str                               # the one spelling (the web lab's and sanity_check's name)
    family: str                           # a key of FAMILIES
    title: str
    paper: str                            # "Author et al. YEAR" (docs/papers.md has the references)
    function: Callable
    config: type | None = None            # its config dataclass (None: no parameters beyond its inputs)
    cli: tuple[str, ...] = ()             # CLI verbs (the first is the command; others are its spellings)
    lab: bool = False                     # offered in the web explorer's image lab
    needs_image: bool = True
    iterative: bool = False               # streams progress and can be interrupted
    summarize: Callable[[Any], dict] | None = None
    blurb: str = ""                       # one line on what it does (the CLI's help of a generated command)

    @property
    def names(self) -> tuple[str, ...]:
        """Every accepted spelling: the id, the CLI verbs, and their ``-``/``_`` variants."""
        out = [self.id, *self.cli]
        return tuple(dict.fromkeys([*out, *(n.replace("-", "_") for n in out), *(n.replace("_", "-") for n in out)]))

    @property
    def reference(self) -> str:
        """``module.function`` of its function (for the API reference)."""
        return f"{self.function.__module__}.{self.function.__qualname__}"


# --- summaries: the numbers of a result, as JSON-able dicts (the web lab's "figures", the CLI's line) ---------

def _finite(v) -> float | None:
    v = float(v)
    return v if v == v and abs(v) != float("inf") else None


def attribution_summary(r) -> dict:
    """Method, target, raw range of the map (NaN where an interrupted occlusion computed nothing)."""
    known = r.map[~r.map.isnan()]
    return {"method": r.method, "target": r.labels[0], "target_index": int(r.target[0]),
            "raw_min": _finite(known.min()) if known.numel() else None,
            "raw_max": _finite(known.max()) if known.numel() else None, "map_shape": list(r.map.shape[-2:])}


def adversarial_summary(r) -> dict:
    """Before / after class and probability, the perturbation's size, steps, fooled."""
    return {"method": r.method, "before": {"class": r.name(int(r.pred_before[0])), "prob": float(r.prob_before[0])},
            "after": {"class": r.name(int(r.pred_after[0])), "prob": float(r.prob_after[0])},
            "target_prob_before": float(r.target_prob_before[0]), "target_prob_after": float(r.target_prob_after[0]),
            "linf_255": 255 * float(r.linf[0]), "l2": float(r.l2[0]), "steps": int(r.steps[0]),
            "fooled": bool(r.fooled[0]), "interrupted": bool(r.info.get("interrupted", False))}


def _optim_summary(r) -> dict:
    opt = getattr(r, "optim", r)
    return {"steps": getattr(opt, "steps", None), "stopped": getattr(opt, "stopped", None)}


def _grabcut_summary(r) -> dict:
    cut, sal = r if isinstance(r, tuple) else (r, None)
    return {"target": sal.labels[0] if sal is not None else None, "foreground_fraction": cut.foreground_fraction}


def _sanity_summary(r) -> dict:
    return {"method": r.method, "rows": [[n, float(a), float(s)] for n, a, s in r.rows]}


T = Technique
_ENTRIES = [
    # inside the network
    T("filters", "inspect", "First-layer and inner filters", "Krizhevsky et al. 2012", inspect.filters, cli=("filters",)),
    T("activations", "inspect", "Activation maps of a layer", "Yosinski et al. 2015", inspect.activations,
      cli=("activations",)),
    T("patches", "inspect", "Maximally activating patches", "Girshick et al. 2014; Zeiler & Fergus 2014",
      inspect.max_activating_patches, cli=("patches",), iterative=True),
    # concept discovery (issue 24)
    T("concepts", "inspect", "Concept discovery (CRAFT)", "Fel et al. 2023; Ghorbani et al. 2019", inspect.concepts,
      inspect.ConceptsConfig, cli=("concepts",), iterative=True, summarize=lambda r: r.summary(),
      blurb="NMF of a layer's activations over image crops: concepts, their crops, Sobol importance, heat maps"),
    # which pixels matter
    T("saliency", "attribution", "Saliency", "Simonyan et al. 2014", attribution.saliency, cli=("saliency",),
      lab=True, summarize=attribution_summary),
    T("guided_backprop", "attribution", "Guided backprop", "Springenberg et al. 2015", attribution.guided_backprop,
      cli=("guided",), lab=True, summarize=attribution_summary),
    T("deconvnet", "attribution", "Deconvnet", "Zeiler & Fergus 2014", attribution.deconvnet, cli=("deconvnet",),
      lab=True, summarize=attribution_summary),
    T("grad_cam", "attribution", "Grad-CAM", "Selvaraju et al. 2017", attribution.grad_cam, cli=("gradcam",),
      lab=True, summarize=attribution_summary),
    T("smoothgrad", "attribution", "SmoothGrad", "Smilkov et al. 2017", attribution.smoothgrad, SmoothGradConfig,
      cli=("smoothgrad",), lab=True, iterative=True, summarize=attribution_summary,
      blurb="saliency averaged over noisy copies of the image"),
    T("integrated_gradients", "attribution", "Integrated gradients", "Sundararajan et al. 2017",
      attribution.integrated_gradients, IntegratedGradientsConfig, cli=("ig",), lab=True, iterative=True,
      summarize=attribution_summary, blurb="gradients integrated along the path from a baseline, with the "
      "completeness check"),
    T("occlusion", "attribution", "Occlusion", "Zeiler & Fergus 2014", attribution.occlusion, OcclusionConfig,
      cli=("occlusion",), lab=True, iterative=True, summarize=attribution_summary),
    T("grabcut", "attribution", "GrabCut from saliency", "Rother et al. 2004; Simonyan et al. 2014",
      attribution.grabcut_from_saliency, GrabCutConfig, cli=("grabcut",), lab=True, summarize=_grabcut_summary),
    T("sanity_check", "attribution", "Sanity check: model randomization", "Adebayo et al. 2018",
      attribution.sanity_check, SanityConfig, cli=("sanity",), lab=True, iterative=True, summarize=_sanity_summary),
    # issue 22 item 7: perturbation methods native to the faithfulness metrics (through drivers/perturb.py)
    T("rise", "attribution", "RISE", "Petsiuk et al. 2018", attribution.rise, RiseConfig, cli=("rise",), lab=True,
      iterative=True, summarize=attribution_summary,
      blurb="random smooth masks averaged with the target's probability as weights"),
    T("score_cam", "attribution", "Score-CAM", "Wang et al. 2020", attribution.score_cam, ScoreCamConfig,
      cli=("scorecam",), lab=True, iterative=True, summarize=attribution_summary,
      blurb="a layer's channels as masks, weighted by the rise in the target's probability"),
    # which map to believe (issue 22: the first metrics; the API only so far)
    T("deletion", "faithfulness", "Deletion curve", "Petsiuk et al. 2018", faithfulness.deletion,
      faithfulness.PerturbationCurveConfig, blurb="the target's probability as the top pixels are removed"),
    T("insertion", "faithfulness", "Insertion curve", "Petsiuk et al. 2018", faithfulness.insertion,
      faithfulness.PerturbationCurveConfig, blurb="the target's probability as the top pixels are put back"),
    T("evaluate", "faithfulness", "Report card of attribution maps", "Hedstrom et al. 2023 (Quantus)",
      faithfulness.evaluate, cli=("evaluate",), lab=True, iterative=True,
      blurb="every method's map scored by every metric, random and edge maps as the floor"),
    T("sparseness", "faithfulness", "Sparseness (Gini index)", "Chalasani et al. 2020", faithfulness.sparseness),
    T("complexity", "faithfulness", "Complexity (entropy)", "Bhatt et al. 2020", faithfulness.complexity),
    T("pointing_game", "faithfulness", "Pointing game", "Zhang et al. 2018", faithfulness.pointing_game),
    T("relevance_mass", "faithfulness", "Relevance mass accuracy", "Arras et al. 2022", faithfulness.relevance_mass),
    T("relevance_rank", "faithfulness", "Relevance rank accuracy", "Arras et al. 2022", faithfulness.relevance_rank),
    # (metrics22: ROAD, flipping, correlation, robustness, randomization)
    T("road", "faithfulness", "ROAD (noisy linear imputation)", "Rong et al. 2022", faithfulness.road,
      faithfulness.ROADConfig, blurb="the target's accuracy as the top pixels are imputed from their neighbours"),
    T("pixel_flipping", "faithfulness", "Pixel flipping", "Bach et al. 2015", faithfulness.pixel_flipping,
      faithfulness.PixelFlippingConfig, blurb="the target's probability as the top pixels are flipped, step by step"),
    T("region_perturbation", "faithfulness", "Region perturbation (AOPC)", "Samek et al. 2017",
      faithfulness.region_perturbation, faithfulness.RegionPerturbationConfig,
      blurb="the mean drop of the target's probability as the top regions are perturbed"),
    T("faithfulness_correlation", "faithfulness", "Faithfulness correlation", "Bhatt et al. 2020",
      faithfulness.faithfulness_correlation, faithfulness.FaithfulnessCorrelationConfig,
      blurb="Pearson r of the map's mass on random subsets and the score's drop when they are removed"),
    T("max_sensitivity", "faithfulness", "Max-sensitivity", "Yeh et al. 2019", faithfulness.max_sensitivity,
      faithfulness.SensitivityConfig, blurb="the largest change of the map over noisy copies of the image"),
    T("avg_sensitivity", "faithfulness", "Average sensitivity", "Yeh et al. 2019", faithfulness.avg_sensitivity,
      faithfulness.SensitivityConfig, blurb="the mean change of the map over noisy copies of the image"),
    T("infidelity", "faithfulness", "Infidelity", "Yeh et al. 2019", faithfulness.infidelity,
      faithfulness.InfidelityConfig, blurb="how badly the map predicts the score's change under random noise"),
    T("mprt", "faithfulness", "Model-parameter randomization (MPRT)", "Adebayo et al. 2018", faithfulness.mprt,
      faithfulness.MPRTConfig, blurb="the map's similarity to the maps of the model randomized from the logits down"),
    T("random_logit", "faithfulness", "Random logit", "Sixt et al. 2020", faithfulness.random_logit,
      faithfulness.RandomLogitConfig, blurb="the map's similarity to the map of a random other class"),
    # images the network wants
    T("classviz", "synthesis", "Class visualization", "Simonyan et al. 2014; Yosinski et al. 2015",
      recipes.visualize_class, VizConfig, cli=("classviz",), lab=True, needs_image=False, iterative=True,
      summarize=_optim_summary),
    # the CLI's `neuronviz` runs both: a whole channel without --unit, one neuron with it
    T("channelviz", "synthesis", "Channel visualization", "Olah et al. 2017", recipes.visualize_channel, VizConfig,
      lab=True, needs_image=False, iterative=True, summarize=_optim_summary),
    T("neuronviz", "synthesis", "Neuron visualization", "Yosinski et al. 2015", recipes.visualize_neuron, VizConfig,
      cli=("neuronviz",), lab=True, needs_image=False, iterative=True, summarize=_optim_summary),
    T("facets", "synthesis", "Multifaceted visualization", "Nguyen et al. 2016", recipes.visualize_facets,
      FacetsConfig, cli=("facets",), lab=True, needs_image=False, iterative=True, summarize=_optim_summary),
    T("deepdream", "synthesis", "DeepDream", "Mordvintsev et al. 2015", recipes.deepdream, DreamConfig,
      cli=("dream",), lab=True, iterative=True, summarize=lambda d: {"octaves": len(d.sizes), "stopped": d.stopped}),
    T("inversion", "synthesis", "Feature inversion", "Mahendran & Vedaldi 2015", recipes.invert, InvertConfig,
      cli=("invert",), lab=True, iterative=True, summarize=_optim_summary),
    # maco24 (issue 24): MACO is a preset of class / channel / neuron visualization (--preset maco)
    T("maco", "synthesis", "MACO: phase-only visualization over a natural magnitude spectrum", "Fel et al. 2023",
      recipes.visualize_class, VizConfig, needs_image=False, iterative=True, summarize=_optim_summary,
      blurb="preset='maco' of classviz / channelviz / neuronviz; also a transparency map"),
    T("natural_evidence", "synthesis", "Natural exemplars, plausibility and transferability", "Fel et al. 2023",
      recipes.natural_evidence, needs_image=False,
      blurb="top-k natural exemplars beside a visualization (classviz / neuronviz --exemplars)"),
    T("accentuate", "synthesis", "Feature accentuation", "Hamblin et al. 2024", recipes.accentuate,
      AccentuateConfig, cli=("accentuate",), iterative=True,
      summarize=lambda a: {"target": a.label, "prob_before": a.prob_before, "prob_after": a.prob_after,
                           "distance": a.distance, "reg_layer": a.reg_layer}),
    # fooling the network
    T("linear_walkthrough", "adversarial", "Adversarial examples of a linear classifier", "Goodfellow et al. 2015",
      adversarial.linear_walkthrough, cli=("linear-demo",), lab=True, needs_image=False),
    T("fgsm", "adversarial", "FGSM", "Goodfellow et al. 2015", adversarial.fgsm, FGSMConfig, cli=("fgsm",), lab=True,
      summarize=adversarial_summary),
    T("pgd", "adversarial", "PGD", "Madry et al. 2018", adversarial.pgd, PGDConfig, cli=("pgd",), lab=True,
      iterative=True, summarize=adversarial_summary),
    T("fool", "adversarial", "Fooling image", "Szegedy et al. 2014", adversarial.fool, FoolConfig, cli=("fool",),
      lab=True, iterative=True, summarize=adversarial_summary),
    T("unrecognizable", "adversarial", "Unrecognizable image", "Nguyen et al. 2015", adversarial.unrecognizable,
      UnrecognizableConfig, cli=("unrecognizable",), lab=True, needs_image=False, iterative=True,
      summarize=_optim_summary),
    T("evolve_unrecognizable", "adversarial", "Unrecognizable images by evolution", "Nguyen et al. 2015",
      adversarial.evolve_unrecognizable, EvolveConfig, cli=("evolve-unrecognizable",), lab=True, needs_image=False,
      iterative=True),
    T("mix_weights", "adversarial", "Mixing in another class's weights", "Goodfellow et al. 2015",
      adversarial.mix_gradient, cli=("mix-weights",), lab=True),
    T("hog_match", "adversarial", "Identical HOG, different images", "Tatu et al. 2011", adversarial.hog_match,
      HogMatchConfig, cli=("hog-match",), lab=True, iterative=True),
    T("robustness", "adversarial", "Accuracy against eps", "Goodfellow et al. 2015; Madry et al. 2018",
      adversarial.robustness, RobustnessConfig, cli=("robustness",), lab=True, needs_image=False, iterative=True),
    # (issue 23, lab23) the universal perturbation: the API and the lab, no CLI verb
    T("universal", "adversarial", "Universal perturbation", "Moosavi-Dezfooli et al. 2017",
      adversarial.universal_perturbation, lab=True, needs_image=False, iterative=True,
      blurb="one perturbation that changes the top-1 of most images"),
    # texture and style
    T("texture", "texture", "Texture synthesis", "Efros & Leung 1999; Wei & Levoy 2000; Efros & Freeman 2001; "
      "Gatys et al. 2015", texture_synthesis, TextureSynthesisConfig, cli=("texture",), lab=True, iterative=True,
      summarize=lambda r: r.summary()),
    T("style", "texture", "Neural style transfer", "Gatys et al. 2016", recipes.style_transfer, StyleConfig,
      cli=("style",), lab=True, iterative=True,
      summarize=lambda r: {"seconds": round(r.seconds, 3), "stopped": r.stopped}),
    T("fast_style", "texture", "Fast style transfer", "Johnson et al. 2016; Dumoulin et al. 2017",
      recipes.fast_style, cli=("fast-style",), lab=True),
    # embedding spaces
    T("embed", "embed", "Image embeddings into a store", "Krizhevsky et al. 2012", embed.embed_images,
      cli=("embed",), iterative=True),
    T("neighbors", "embed", "Nearest neighbours", "Krizhevsky et al. 2012", embed.EmbeddingStore.neighbors,
      cli=("neighbors",)),
    T("project", "embed", "PCA / t-SNE / UMAP maps", "van der Maaten & Hinton 2008", embed.project, ProjectConfig,
      cli=("project",), iterative=True),
    T("why_similar", "embed", "Why two images are similar", "Selvaraju et al. 2017", embed.why_similar,
      cli=("similar-why",)),
    T("words", "embed", "Word and phrase neighbours", "Mikolov et al. 2013", embed.words.neighbors, cli=("words",),
      needs_image=False),
]
del T


def techniques() -> dict[str, Technique]:
    """Every technique by id, in the lecture's order."""
    return {t.id: t for t in _ENTRIES}


def get(name: str) -> Technique:
    """The technique named ``name`` (its id or any CLI spelling: ``gradcam``, ``grad-cam``, ``dream``...)."""
    for t in _ENTRIES:
        if name in t.names:
            return t
    raise ConvlensError(f"unknown technique '{str(name)[:40]}'; closest: "
                        f"{closest(str(name), [n for t in _ENTRIES for n in t.names])}")


def by_verb(verb: str) -> Technique | None:
    """The technique a CLI command runs (None for utility commands such as ``models`` or ``serve``)."""
    return next((t for t in _ENTRIES if verb in t.cli), None)


def lab_techniques() -> list[Technique]:
    return [t for t in _ENTRIES if t.lab]


def sanity_method_names() -> list[str]:
    """The names ``sanity_check`` accepts: each map-producing attribution method's id and CLI spellings."""
    return list(dict.fromkeys(n for t in _ENTRIES if t.family == "attribution" and t.id not in ("grabcut", "sanity_check")
                              for n in (t.id, *t.cli)))


# --- links into the explorer ---------------------------------------------------------------------

DEFAULT_MODEL = "mobilenet_v2"
LAYER_VIEWS = {"activations", "filters", "patches"}          # figures reproduced by the layer browser
PROJECTOR = {"embed", "project", "neighbors", "similar-why"}


def _options(args: list[str]) -> tuple[list[str], dict[str, str]]:
    pos, opts, i = [], {}, 0
    while i < len(args):
        a = args[i]
        if a.startswith("--"):
            key, eq, val = a[2:].partition("=")
            if eq:
                opts[key] = val
            elif i + 1 < len(args) and not args[i + 1].startswith("--"):
                opts[key] = args[i + 1]
                i += 1
            else:
                opts[key] = ""
        elif a.startswith("-") and len(a) == 2:
            i += 1  # a short option with a value (-o out.png)
        else:
            pos.append(a)
        i += 1
    return pos, opts


FORM_OPTIONS = ("target", "layer", "channel", "mode")   # the lab form's inputs beside a technique's config fields


def explorer_view(command: str | None) -> str | None:
    """The explorer path (with query) that reproduces the figure of a ``convlens ...`` command, or None.

    Layer figures (``activations``, ``filters``, ``patches``, ``guided --layer``) open the layer browser
    (``/layers/<layer>[/<channel>]?image=...``); the lab's techniques open the lab with the command's
    parameters (``/lab?image=<sample>&technique=<id>&layer=...&steps=...``: the form's field names);
    word commands the words view (``/words?q=...``, ``/words?tab=analogy&a=&b=&c=``); embedding figures
    the projector (``/projector?store=<store folder>&method=...&point=<row>``). Of commands chained
    with ``&&``, the last one with a view wins. Commands for another model than the default, or with
    no explorer view, give None. The demo passes this to its report.
    """
    if not command:
        return None
    views = [_view_of(part) for part in re.split(r"&&|;", re.split(r"\(", command)[0])]
    return next((v for v in reversed(views) if v), None)


def _view_of(text: str) -> str | None:
    try:
        args = shlex.split(text)
    except ValueError:
        return None
    if len(args) < 2 or args[0] != "convlens":
        return None
    verb, (pos, opts) = args[1], _options(args[2:])
    if opts.get("model", DEFAULT_MODEL) != DEFAULT_MODEL:
        return None
    image = next((p for p in pos if p in SAMPLES), None) or (opts.get("image") if opts.get("image") in SAMPLES else None)
    layer = opts.get("layer")
    if verb in LAYER_VIEWS or (verb == "guided" and layer):
        if not layer:
            return None
        q = {"image": image or "chelsea"}
        channel = (opts.get("channels") or opts.get("channel") or "").split(",")[0]
        if verb == "patches":
            m = re.fullmatch(r"samples:(\d+)", pos[0]) if pos else None
            if m:
                q["n"] = m.group(1)
            if opts.get("k"):
                q["k"] = opts["k"]
        elif verb == "filters":
            channel = channel or "0"
        path = f"/layers/{quote(layer)}" + (f"/{int(channel)}" if channel.isdigit() else "")
        return f"{path}?{urlencode(q)}"
    if verb == "words" and pos:
        return _words_view(pos[0], pos[1:], opts)
    t = by_verb(verb)
    if (t is not None and t.lab) or verb == "predict":   # the lab shows every image's top-5
        q = {"image": image} if image else {}
        if t is not None:
            q["technique"] = t.id
            q.update(_form_values(t, opts))
        return f"/lab?{urlencode(q)}" if q else "/lab"
    if verb in PROJECTOR:
        q = {}
        store = next((p for p in pos if p.endswith((".emb", ".store"))), opts.get("out"))
        if store:
            q["store"] = Path(store).name
        if verb == "project" and opts.get("method"):
            q["method"] = opts["method"]
        if opts.get("index", "").isdigit():
            q["point"] = opts["index"]
        return f"/projector?{urlencode(q)}" if q else "/projector"
    return None


def _form_values(t: Technique, opts: dict) -> dict:
    """The command's options that are fields of the technique's lab form, by field name."""
    by_flag = {name: name for name in FORM_OPTIONS}
    for f in config_fields(t.config) if t.config is not None else ():
        by_flag[f.cli_flag[2:]] = f.name
        by_flag[f.name.replace("_", "-")] = f.name
    return {by_flag[k]: v for k, v in opts.items() if k in by_flag and v != ""}


def _words_view(sub: str, words: list[str], opts: dict) -> str | None:
    if sub == "neighbors" and words:
        q = [("q", w) for w in words]
        if opts.get("topk") or opts.get("k"):
            q.append(("topk", opts.get("topk") or opts.get("k")))
        if opts.get("encoder"):
            q.append(("vocab", "food"))    # the phrase path: the bundled food phrases through the encoder
        elif opts.get("vocab"):
            q.append(("vocab", opts["vocab"]))
        return f"/words?{urlencode(q)}"
    if sub == "analogy" and len(words) == 3:
        return "/words?" + urlencode({"tab": "analogy", "a": words[0], "b": words[1], "c": words[2]})
    if sub in ("analogy", "evaluate", "vocab"):
        return "/words?" + urlencode({"tab": "analogy" if sub != "vocab" else "vocab"})
    return None
