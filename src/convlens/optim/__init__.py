"""The optimization engine shared by every synthesis recipe: parameterizations, objectives,
robustness transforms, Yosinski's regularizers and one loop (see docs/synthesis.md).

    from convlens.optim import objectives, params, transforms, optimize
    p = params.FourierParam(1, 224)
    r = optimize(model, objectives.class_logit(130), p, transforms=transforms.standard())
"""
from . import maco, objectives, params, regularizers, transforms
from .loop import OptimResult, StepInfo, optimize
from .objectives import Objective
from .maco import MacoCrops, MacoParam
from .params import DecorrelatedParam, FourierParam, GeneratorParam, Param, PixelParam, make_param

__all__ = ["optimize", "OptimResult", "StepInfo", "Objective", "objectives", "params", "transforms",
           "regularizers", "maco", "MacoParam", "MacoCrops", "Param", "PixelParam", "FourierParam", "DecorrelatedParam", "GeneratorParam",
           "make_param"]
