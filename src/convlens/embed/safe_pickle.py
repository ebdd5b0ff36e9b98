"""A restricted reader for joblib pickles of numeric data (never a plain ``pickle.load`` of a file).

``load_joblib(path, stubs)`` runs Python's pickle machine with a ``find_class`` that allows only
numpy's array-reconstruction globals and the classes named in ``stubs`` (mapped to inert
``Stub`` objects that only keep their pickled state); every other global, such as ``os.system`` or
``builtins.eval``, raises ``ConvlensError``. Joblib's in-stream arrays (``NumpyArrayWrapper``: the raw
bytes follow the pickled wrapper) are read like joblib does, refusing object dtypes (those would
need an unrestricted pickle).
"""
from __future__ import annotations

import io
import pickle

import numpy as np

from ..errors import ConvlensError

NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}
JOBLIB_WRAPPER = ("joblib.numpy_pickle", "NumpyArrayWrapper")


class Stub:
    """An inert stand-in for a pickled class: it keeps the state and does nothing else."""

    qualname = ""

    def __init__(self, *args):
        self.args = args
        self.state = None

    def __setstate__(self, state):
        self.state = state

    def __reduce__(self):
        raise ConvlensError("stubs of unpickled classes are not picklable")


def new_obj(cls):
    """scikit-learn's ``newObj(cls)`` (``cls.__new__(cls)``), allowed only for stub classes."""
    if not (isinstance(cls, type) and issubclass(cls, Stub)):
        raise ConvlensError("refused: newObj on a class that is not an allowed stub")
    return cls()


class _Wrapper(Stub):
    """joblib's NumpyArrayWrapper: its state names the dtype, shape and order of raw bytes that follow."""


def _read_array(wrapper: _Wrapper, f) -> np.ndarray:
    state = wrapper.state or {}
    dtype, shape, order = np.dtype(state["dtype"]), tuple(state["shape"]), state.get("order", "C")
    if dtype.hasobject:
        raise ConvlensError("refused: an object-dtype array in a joblib pickle (it needs an unrestricted pickle)")
    if state.get("numpy_array_alignment_bytes") is not None:
        pad = f.read(1)
        if pad and pad[0]:
            f.read(pad[0])
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    data = f.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise ConvlensError("a joblib array is truncated (damaged file)")
    arr = np.frombuffer(data, dtype=dtype, count=count).copy()
    return arr.reshape(shape[::-1]).T if order == "F" else arr.reshape(shape)


class _Restricted(pickle._Unpickler):  # the pure-Python machine: its BUILD can be extended like joblib's
    def __init__(self, f, stubs: dict[tuple[str, str], type]):
        super().__init__(f)
        self.f = f
        self.stubs = stubs
        self.dispatch = dict(pickle._Unpickler.dispatch)
        self.dispatch[pickle.BUILD[0]] = _Restricted.load_build_array

    def find_class(self, module, name):
        if (module, name) in NUMPY_GLOBALS:
            return super().find_class(module, name)
        if (module, name) == JOBLIB_WRAPPER:
            return _Wrapper
        if (module, name) in self.stubs:
            return self.stubs[(module, name)]
        raise ConvlensError(f"refused to unpickle the global {module}.{name} (only numpy arrays and known data "
                            "classes are allowed)")

    def load_build_array(self):
        pickle._Unpickler.load_build(self)
        if isinstance(self.stack[-1], _Wrapper):
            self.stack.append(_read_array(self.stack.pop(), self.f))


def load_joblib(path_or_bytes, stubs: dict[tuple[str, str], type] | None = None):
    """Unpickle a joblib file (uncompressed) allowing only numpy arrays and the ``stubs`` classes."""
    f = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, (bytes, bytearray)) else open(path_or_bytes, "rb")
    with f:
        try:
            return _Restricted(f, dict(stubs or {})).load()
        except ConvlensError:
            raise
        except Exception as e:  # noqa: BLE001 - any malformed stream
            raise ConvlensError(f"cannot read the pickle ({type(e).__name__}: {str(e)[:80]}); the file is damaged "
                                "or not a joblib pickle of arrays") from None
