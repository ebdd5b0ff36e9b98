"""The extraction's forward pass: ``default_layer`` (the layer a store embeds by default), the
backend of a whole store (``extraction_backend``: torch or onnxruntime, chosen once and recorded in
the manifest) and ``ExtractForward`` (``fwd(x) -> (B, dim)`` pooled float32 vectors, one backend for
every batch), ``forward_group`` (the vectors of a decoded group's readable items).

Works on any store with the ``VectorStore`` write interface (``manifest``, ``write_manifest``).
"""
from __future__ import annotations

import numpy as np
import torch

from ..drivers import onnx
from ..drivers.forward import default_threads, thread_budget, torch_pass
from ..models.model import Model
from .decode import pool
from .vectors import VectorStore


def default_layer(model: Model) -> str:
    """The layer whose output feeds the classifier: the one executed just before the last Linear.

    MobileNetV2 -> ``classifier.0`` (the pooled 1280-d vector), ResNet -> ``avgpool`` (512),
    AlexNet -> ``classifier.5`` (FC7 after its ReLU, 4096), VGG -> ``classifier.5`` (FC7).
    """
    layers = model.layers()
    lin = [i for i, li in enumerate(layers) if li.type == "Linear"]
    if not lin:
        spatial = [li for li in layers if li.shape]
        return spatial[-1].name
    last = layers[lin[-1]].name
    for li in reversed(layers[:lin[-1]]):
        if not last.startswith(li.name + "."):  # skip the containers holding the classifier
            return li.name
    return last


ORT_MIN_ITEMS = 128  # auto: onnxruntime for extractions of at least this many items (or a checked export on disk)
def extraction_backend(store: VectorStore, model: Model, layer: str, size, items_left: int | None,
                       backend: str | None = None) -> str:
    """The backend ("torch" or "onnxruntime") of the whole extraction into ``store``.

    Chosen once and recorded in the manifest (``backend``), so a resumed run uses the same one and
    writes bit-equal vectors. ``auto`` (the default, or ``$CONVLENS_BACKEND``) picks onnxruntime
    (1.3-2.3x faster than torch here, docs/forward.md) when the model is eligible and the job has
    at least ``ORT_MIN_ITEMS`` items or a checked export is on disk; a small job stays in torch
    (no export). An explicit ``backend`` applies to a new store only."""
    recorded = store.manifest.get("backend")
    if recorded in ("torch", "onnxruntime"):
        return recorded
    b = onnx.resolve_backend(backend)
    if b == "auto":
        ok = onnx.eligible(model) and onnx.ort_available() and onnx.providers_for(model.device) is not None
        big = items_left is None or items_left >= ORT_MIN_ITEMS
        b = "onnxruntime" if ok and (big or onnx.on_disk(model, [layer], True, tuple(size))) else "torch"
    store.manifest["backend"] = b
    store.write_manifest()
    return b


class ExtractForward:
    """``fwd(x) -> (B, dim) float32``: the extraction's forward pass to ``layer``, pooled, in one
    backend for every batch.

    With onnxruntime the session is made (or loaded) and checked against torch on a small random
    batch *before* the first real one (``batched_forward`` yields torch's result for the batch that
    checks a new export), so every batch of the store comes from the same backend. If the export
    cannot be used the extraction runs in torch (one warning line, as ``batched_forward``) and
    ``backend`` says so."""

    def __init__(self, model: Model, layer: str, size, threads: int | None = None, backend: str = "torch"):
        self.model, self.layer = model, layer
        self.budget = threads if threads is not None else default_threads()
        self.switch = onnx.Switch(model, [layer], True, self.budget, backend)
        self.torch_fn = torch_pass(model, [layer])
        self.backend = "torch"
        if self.switch.mode == "onnxruntime":
            g = torch.Generator().manual_seed(0)
            self(torch.rand(2, 3, *size, generator=g))  # export / load + check; the result is dropped
            r = self.switch.runners.get(tuple(int(s) for s in size))
            if r is not None and r.verified:
                self.backend = "onnxruntime"
            else:
                self.switch.mode = "torch"

    def from_uint8(self, rgb: np.ndarray) -> torch.Tensor:
        """(B, H, W, 3) uint8 -> (B, 3, H, W) float in [0, 1], laid out for the backend (NCHW for
        onnxruntime, channels_last for torch): one float pass, no layout copy afterwards."""
        u8 = torch.from_numpy(rgb).permute(0, 3, 1, 2)
        if self.backend == "onnxruntime":
            u8 = u8.contiguous()  # a 1-byte copy instead of a 4-byte one in the session's input
        return u8.float().div_(255)

    def __call__(self, x: torch.Tensor) -> np.ndarray:
        with thread_budget(self.budget), torch.inference_mode():
            _, acts = self.switch.run(x.to(self.model.device), self.torch_fn)
        return pool(acts[self.layer]).cpu().numpy().astype(np.float32)


def forward_group(forward: ExtractForward, group: list[dict], kind: str) -> np.ndarray | None:
    """The vectors of a group's readable items (None when there are none)."""
    ok = [g for g in group if g["ok"]]
    if not ok:
        return None
    x = forward.from_uint8(np.stack([g["rgb"] for g in ok])) if kind == "files" else \
        torch.cat([g["tensor"] for g in ok])
    return forward(x)
