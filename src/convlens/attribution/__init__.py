"""Which pixels matter: saliency, occlusion, guided backprop / deconvnet, Grad-CAM, SmoothGrad,
integrated gradients, RISE, Score-CAM, GrabCut from saliency, and the model-randomization sanity check.

Every method takes a ``convlens.Model`` and images (N, 3, H, W) in [0, 1] and returns an
``Attribution`` (raw map + target + ``overlay()``); see docs/attribution.md.
"""
from .base import Attribution
from .gradcam import grad_cam
from .guided import deconvnet, guided_backprop
from .integrated import IntegratedGradientsConfig, integrated_gradients
from .occlusion import OcclusionConfig, occlusion
from .rise import RiseConfig, rise
from .scorecam import ScoreCamConfig, score_cam
from .grabcut import GrabCutConfig, GrabCutResult, grabcut, grabcut_from_saliency
from .sanity import SanityConfig, SanityResult, sanity_check
from .saliency import SmoothGradConfig, saliency, smoothgrad

__all__ = ["Attribution", "saliency", "smoothgrad", "occlusion", "guided_backprop", "deconvnet", "grad_cam",
           "integrated_gradients", "rise", "score_cam", "grabcut", "grabcut_from_saliency", "GrabCutResult",
           "sanity_check", "SanityResult",
           "SmoothGradConfig", "IntegratedGradientsConfig", "OcclusionConfig", "RiseConfig", "ScoreCamConfig",
           "GrabCutConfig", "SanityConfig"]
