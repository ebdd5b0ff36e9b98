"""Fooling the network: the lecture's linear walkthrough, FGSM, PGD, fooling images, unrecognizable
images, mixing in class weights, identical-HOG images, and a robustness report (docs/adversarial.md).

Every attack takes a ``convlens.Model`` and (N, 3, H, W) images in [0, 1] (eps in pixel units; the
normalization lives in the model) and returns an ``AdversarialResult``.
"""
from .base import AdversarialResult, parse_eps
from .evolve import EvolveConfig, Evolved, evolve_unrecognizable
from .fgsm import FGSMConfig, fgsm
from .fool import FoolConfig, fool
from .hog import HogMatch, HogMatchConfig, hog_match  # the HOG itself: convlens.adversarial.hog.hog
from .linear import DimensionStudy, LinearWalkthrough, dimension_study, linear_walkthrough
from .mixing import DeepMix, LinearDigits, LinearMix, linear_mixing_panel, mix_gradient, mix_linear, train_linear_digits
from .pgd import PGDConfig, pgd
from .robustness import Robustness, RobustnessConfig, robustness
from .universal import Universal, universal_perturbation
from .unrecognizable import Unrecognizable, UnrecognizableConfig, unrecognizable

__all__ = ["AdversarialResult", "parse_eps", "fgsm", "FGSMConfig", "pgd", "PGDConfig", "fool", "FoolConfig",
           "linear_walkthrough", "LinearWalkthrough", "dimension_study", "DimensionStudy",
           "unrecognizable", "Unrecognizable", "UnrecognizableConfig",
           "train_linear_digits", "LinearDigits", "mix_linear", "LinearMix", "linear_mixing_panel", "mix_gradient",
           "DeepMix", "robustness", "Robustness", "RobustnessConfig",
           "universal_perturbation", "Universal", "hog_match", "HogMatch", "HogMatchConfig",
           "evolve_unrecognizable", "Evolved", "EvolveConfig"]
