"""Fooling the network: the lecture's linear walkthrough, FGSM, PGD, fooling images, unrecognizable
images, mixing in class weights, identical-HOG images, and a robustness report (docs/adversarial.md).

Every attack takes a ``convlens.Model`` and (N, 3, H, W) images in [0, 1] (eps in pixel units; the
normalization lives in the model) and returns an ``AdversarialResult``.
"""
from .base import AdversarialResult, parse_eps
from .fgsm import FGSMConfig, fgsm
from .pgd import PGDConfig, pgd

__all__ = ["AdversarialResult", "parse_eps", "fgsm", "FGSMConfig", "pgd", "PGDConfig"]
