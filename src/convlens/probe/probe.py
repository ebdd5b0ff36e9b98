"""`Probe`: record activations (and gradients) of layers by dotted name. The one place hooks live.

    with Probe(model, ["features.3", "features.10"], gradients=True) as probe:
        logits = model(images)
        logits[:, 285].sum().backward()
    probe.activations["features.3"], probe.gradients["features.3"]

Semantics (documented because they are easy to get wrong):
  * The recorded activation is the layer's *output as it left the module*. Each recorded output is
    handed downstream as a clone, so a following in-place op (``ReLU(inplace=True)``) cannot
    overwrite what was recorded, and the gradient recorded is d(loss)/d(that output).
  * Functional activations (``F.relu`` inside ``forward``) are not modules and have no name; probe
    the module before them (its output is the pre-activation) or wrap the activation in a module.
  * A module called several times per forward (a shared ReLU in a ResNet block) reports its last call.
  * ``stop=True`` ends the forward pass right after the deepest probed layer has run (truncation:
    no work is spent on layers nobody reads); use ``probe.run(x)`` in that mode.
  * Hooks are removed when the ``with`` block exits, also when it raises.
  * Hooks are per call, not per module: they act only on forwards run by the thread that entered the
    probe, or from a context copied from it while the probe was active (``asyncio.to_thread``,
    ``contextvars.copy_context().run``, tasks created inside the block). Another thread's forward of
    the same model (a web request beside a job) runs as if no probe existed: nothing recorded, not
    truncated, its output untouched. So one shared ``Model`` serves concurrent probes and plain calls.
    (Coroutines of one event loop share its thread: a probe held across an ``await`` also sees
    the forwards that other tasks of that loop run meanwhile.)
"""
from __future__ import annotations

import contextvars
import threading
from typing import Iterable

import torch

from ..errors import ConvlensError
from ..models.model import Model


class _StopForward(Exception):
    """Raised inside a hook to end a forward pass early (truncation)."""


# Keys of the probes active in this context: inherited by contexts copied inside a ``with Probe``
# block (threads started with the context, asyncio tasks), never seen by other threads.
_ACTIVE: contextvars.ContextVar[frozenset] = contextvars.ContextVar("convlens_active_probes", default=frozenset())


class Probe:
    """Context manager recording named layers' outputs (``activations``) and, optionally, gradients.

    Args:
        model: a ``convlens.Model`` (layer names are relative to ``model.net``).
        layers: a name or list of dotted names (see ``model.layers()``).
        gradients: also record d(loss)/d(output) of each layer when backward runs.
        detach: store detached activations (saves memory when no gradient is needed).
        stop: raise inside the deepest layer's hook to skip the rest of the network; use ``run``.
    """

    def __init__(self, model: Model, layers: str | Iterable[str], *, gradients: bool = False,
                 detach: bool = False, stop: bool = False):
        if not isinstance(model, Model):
            raise ConvlensError("Probe needs a convlens.Model; wrap your module with convlens.Model.wrap(module)")
        self.model = model
        self.layers = [layers] if isinstance(layers, str) else list(layers)
        if not self.layers:
            raise ConvlensError("Probe needs at least one layer name")
        self.modules = {name: model.module(name) for name in self.layers}  # raises on unknown names
        self.gradients_on, self.detach, self.stop = gradients, detach, stop
        self.activations: dict[str, torch.Tensor] = {}
        self.gradients: dict[str, torch.Tensor] = {}
        self._handles: list = []
        self._owner: int | None = None   # thread ident of the ``with`` block
        self._key: object | None = None  # this activation's key in ``_ACTIVE``

    # --- context manager ------------------------------------------------------------------
    def __enter__(self) -> "Probe":
        self._owner, self._key = threading.get_ident(), object()
        _ACTIVE.set(_ACTIVE.get() | {self._key})
        try:
            for name, module in self.modules.items():
                self._handles.append(module.register_forward_hook(self._hook(name)))
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc) -> bool:
        self.remove()
        return False

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        # a set difference, not a token reset: probes may exit out of order, or in another context
        _ACTIVE.set(_ACTIVE.get() - {self._key})
        self._owner = self._key = None

    def _mine(self) -> bool:
        """True when the running forward belongs to this probe's caller (its thread or a context copied from it)."""
        return threading.get_ident() == self._owner or self._key in _ACTIVE.get()

    # --- hooks -------------------------------------------------------------------------------
    def _hook(self, name):
        def hook(module, inputs, output):
            if not self._mine():
                return None  # another thread's forward of the shared model: leave it alone
            if not isinstance(output, torch.Tensor):
                raise ConvlensError(f"layer '{name}' returns {type(output).__name__}, not a tensor; probe a submodule")
            record = output.detach() if self.detach else output
            self.activations[name] = record
            if self.gradients_on and output.requires_grad:
                output.register_hook(lambda g, name=name: self.gradients.__setitem__(name, g))
            if self.stop and all(n in self.activations for n in self.layers):
                raise _StopForward
            return output.clone()  # downstream in-place ops cannot overwrite the record
        return hook

    # --- running ---------------------------------------------------------------------------
    def run(self, images: torch.Tensor) -> torch.Tensor | None:
        """Forward ``images``; returns logits, or None when ``stop=True`` cut the pass short.

        The forward is this probe's call wherever it runs (also on a thread other than the one that
        entered the probe)."""
        self.activations.clear()
        self.gradients.clear()
        token = _ACTIVE.set(_ACTIVE.get() | {self._key}) if self._key is not None else None
        try:
            return self.model(images)
        except _StopForward:
            return None
        finally:
            if token is not None:
                _ACTIVE.reset(token)

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self.activations:
            raise ConvlensError(f"layer '{name}' has not run yet; call the model inside the Probe first")
        return self.activations[name]


def hook_count(module: torch.nn.Module) -> int:
    """Number of forward / pre / backward hooks on ``module`` and its children (for tests)."""
    n = 0
    for m in module.modules():
        n += len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        n += len(getattr(m, "_backward_pre_hooks", {}))
    return n


def activations(model: Model, images: torch.Tensor, layers, *, grad: bool = False) -> dict[str, torch.Tensor]:
    """Activations of ``layers`` for ``images``, stopping the forward after the deepest one.

    Runs under ``inference_mode`` unless ``grad=True`` (then the returned tensors are part of a
    graph rooted at ``images``).
    """
    single = isinstance(layers, str)
    with Probe(model, layers, stop=True, detach=not grad) as probe:
        if grad:
            probe.run(images)
        else:
            with torch.inference_mode():
                probe.run(images)
        out = dict(probe.activations)
    return out[layers] if single else out
