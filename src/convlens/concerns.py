"""Public functions of the technique packages, re-exported at ``convlens.*``.

Each package lists its public names in its own ``__all__``; adding a function there is enough.
"""
from .attribution import *  # noqa: F401,F403
from .attribution import __all__ as _a
from .inspect import *  # noqa: F401,F403
from .inspect import __all__ as _i
from .optim import *  # noqa: F401,F403
from .optim import __all__ as _o
from .recipes import *  # noqa: F401,F403
from .recipes import __all__ as _r
from .embed import *  # noqa: F401,F403
from .embed import __all__ as _e
from .adversarial import *  # noqa: F401,F403
from .adversarial import __all__ as _adv
from .texture import *  # noqa: F401,F403
from .texture import __all__ as _t
from .faithfulness import Evaluation, evaluate  # noqa: F401 - the report card; the metrics stay in convlens.faithfulness
from .scale import *  # noqa: F401,F403
from .scale import __all__ as _sc

__all__ = [*_i, *_a, *_o, *_r, *_e, *_adv, *_t, *_sc, "evaluate", "Evaluation"]
