"""Which map to believe: faithfulness metrics of attribution maps (issue 22; this is its first part).

(Named ``faithfulness`` so that ``convlens.evaluate(model, images, methods, metrics)``, the one-call report
card of issue 22, can be a function.)

``deletion`` and ``insertion`` (Petsiuk et al. 2018) score a map by how fast the target's probability
falls as the top pixels are removed, or rises as they are put back (docs/attribution.md, "Which map to
believe").
"""
from .deletion import PerturbationCurve, PerturbationCurveConfig, deletion, insertion, pixel_ranks

__all__ = ["deletion", "insertion", "PerturbationCurve", "PerturbationCurveConfig", "pixel_ranks"]
