"""`Patch`: run the rest of a network from a layer's activations given by the caller.

    with Patch(model, "features.13.conv.0") as p:
        logits = p.run_from(acts, image)   # acts (B, C, h, w): the layer's output replaced by acts

The layer's output is replaced by ``acts`` (a forward hook through ``Probe``'s per-call gating, so
another thread's forward of the same model is untouched; removed on exit). The layers before it run
on ``image`` once (batch 1): the replacement may carry a larger batch B, and what flows in from
before the layer (a residual's identity branch) has batch 1 and broadcasts to B, which is its
correct value for every row. ``check`` verifies this on the model at hand (the rest of the network
from the layer's own activations gives the model's logits), since a network that reshapes with a
batch size read before the layer would not broadcast.
"""
from __future__ import annotations

import torch

from ..errors import ConvlensError
from .probe import Probe


class Patch(Probe):
    """Replace ``layer``'s output during this probe's forwards (see the module docs)."""

    def __init__(self, model, layer: str):
        super().__init__(model, layer)
        self.layer, self.value = layer, None

    def _hook(self, name):
        def hook(module, inputs, output):
            if not self._mine():
                return None
            self.activations[name] = output
            return output if self.value is None else self.value
        return hook

    def run_from(self, acts: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Logits (B, K) of the network with ``layer``'s output set to ``acts`` (B, ...) for ``image`` (1, 3, H, W)."""
        self.value = acts
        try:
            out = self.run(image)
        finally:
            self.value = None
        return out

    def check(self, image: torch.Tensor, atol: float = 1e-4) -> torch.Tensor:
        """The layer's activations for ``image`` (1, 3, H, W), after checking that running the rest of
        the network from them (twice, as a batch of 2) gives the model's own logits."""
        with torch.no_grad():
            logits = self.run(image)
            a = self.activations[self.layer].detach().clone()
            try:
                out = self.run_from(torch.cat([a, a]), image)
            except RuntimeError as e:
                raise ConvlensError(f"the network after '{self.layer}' cannot run from a batch of its activations "
                                    f"({str(e).splitlines()[0][:80]}); pick another layer") from None
        if out.shape[0] != 2 or not torch.allclose(out, logits.expand_as(out), atol=atol,
                                                   rtol=1e-4):
            raise ConvlensError(f"running the network from '{self.layer}' does not reproduce its logits (the output "
                                f"depends on more than this layer's activations); pick another layer")
        return a
