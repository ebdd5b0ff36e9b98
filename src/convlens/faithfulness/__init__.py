"""Which map to believe: faithfulness metrics of attribution maps (issue 22; this is its first part).

(Named ``faithfulness`` so that ``convlens.evaluate(model, images, methods, metrics)``, the one-call report
card of issue 22, can be a function.)

``deletion`` and ``insertion`` (Petsiuk et al. 2018) score a map by how fast the target's probability
falls as the top pixels are removed, or rises as they are put back; ``sparseness`` and ``complexity``
describe a map alone, ``pointing_game``, ``relevance_mass`` and ``relevance_rank`` against an object mask
(a GrabCut mask is one); ``random_map`` and ``edge_map`` are the baselines every method must beat
(docs/attribution.md, "Which map to believe").
"""
from .registry import METRICS, Metric, get_metric, register
from .deletion import PerturbationCurve, PerturbationCurveConfig, deletion, insertion, pixel_ranks
from .evaluate import Evaluation, evaluate
from .imputation import noisy_linear_imputation
from .road import ROADConfig, ROADCurve, road
from .flipping import (FlippingCurve, PixelFlippingConfig, RegionPerturbationConfig, pixel_flipping,
                       region_perturbation)
from .correlation import FaithfulnessCorrelation, FaithfulnessCorrelationConfig, faithfulness_correlation
from .sensitivity import Sensitivity, SensitivityConfig, avg_sensitivity, max_sensitivity
from .infidelity import Infidelity, InfidelityConfig, infidelity
from .randomization import MPRT, MPRTConfig, RandomLogit, RandomLogitConfig, mprt, random_logit
from .maps import (as_maps, complexity, edge_map, pointing_game, random_map, relevance_mass, relevance_rank,
                   sparseness)

__all__ = ["evaluate", "Evaluation", "METRICS", "Metric", "get_metric", "register", "deletion", "insertion", "PerturbationCurve", "PerturbationCurveConfig", "pixel_ranks",
           "sparseness", "complexity", "pointing_game", "relevance_mass", "relevance_rank", "random_map",
           "edge_map", "as_maps",
           "road", "ROADConfig", "ROADCurve", "noisy_linear_imputation",
           "pixel_flipping", "region_perturbation", "PixelFlippingConfig", "RegionPerturbationConfig", "FlippingCurve",
           "faithfulness_correlation", "FaithfulnessCorrelationConfig", "FaithfulnessCorrelation",
           "max_sensitivity", "avg_sensitivity", "SensitivityConfig", "Sensitivity",
           "infidelity", "InfidelityConfig", "Infidelity",
           "mprt", "MPRTConfig", "MPRT", "random_logit", "RandomLogitConfig", "RandomLogit"]
