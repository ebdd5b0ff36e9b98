"""Driver 4: forward passes over a dataset, fast.

``batched_forward`` streams images (a tensor, a list of tensors/paths, or any iterable) through
the model in batches under ``inference_mode``, optionally in channels_last memory format, with an
explicit thread budget, and stops each pass after the deepest layer asked for (truncation). It
yields one ``Batch`` at a time, so callers keep bounded memory and can stop at any point without
losing what earlier batches produced (each batch is complete when yielded).
"""
from __future__ import annotations

import contextlib
import copy
import os
import threading
import weakref
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

import torch

from ..images.io import fit, load_image
from ..models.model import Model
from ..probe.probe import Probe
from .onnx import Switch
from .stem_grad import speed_up_stems

# Measured on the 2-core CPU this project targets (benchmarks/bench_forward.py): channels_last
# makes ordinary convs faster; it is the default for forward-only passes.
CHANNELS_LAST_DEFAULT = True


@contextlib.contextmanager
def thread_budget(threads: int | None):
    """Run torch with ``threads`` intra-op threads (None: leave as is), then restore."""
    if threads is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, int(threads)))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity; ``os.cpu_count()`` where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    """CONVLENS_THREADS if set, else the number of usable cores."""
    env = os.environ.get("CONVLENS_THREADS")
    if env:
        return max(1, int(env))
    return usable_cores()


@dataclass
class Batch:
    """One batch of a dataset pass: which items (``start`` .. ``start+len``), their images,
    the logits (None when truncated), the requested layers' activations (detached) and which
    backend computed them ("torch" or "onnxruntime")."""

    start: int
    images: torch.Tensor
    logits: torch.Tensor | None
    activations: dict[str, torch.Tensor]
    backend: str = "torch"

    def __len__(self) -> int:
        return self.images.shape[0]


def iter_batches(images, batch_size: int, size=None, loader: Callable | None = None) -> Iterator[torch.Tensor]:
    """Batches of (B, 3, H, W) from a tensor or an iterable of tensors / paths / PIL images."""
    if isinstance(images, torch.Tensor):
        for i in range(0, images.shape[0], batch_size):
            yield fit(images[i:i + batch_size], size) if size is not None else images[i:i + batch_size]
        return
    load = loader or (lambda item: load_image(item))
    buf: list[torch.Tensor] = []
    for item in images:
        t = load(item)
        if t.ndim == 3:
            t = t[None]
        buf.append(fit(t, size) if size is not None else t)
        if sum(b.shape[0] for b in buf) >= batch_size:
            yield torch.cat(buf)
            buf = []
    if buf:
        yield torch.cat(buf)


def batched_forward(model: Model, images: torch.Tensor | Iterable, layers: str | Sequence[str] | None = None,
                    *, batch_size: int = 32, size="model", channels_last: bool | None = None,
                    threads: int | None = None, truncate: bool = True, progress: Callable[[int], None] | None = None,
                    backend: str | None = None) -> Iterator[Batch]:
    """Stream ``images`` through ``model``; yield a ``Batch`` per ``batch_size`` images.

    Args:
        images: (N, 3, H, W) tensor in [0, 1], or an iterable of paths / PIL images / tensors.
        layers: layer names to record (None: logits only).
        size: "model" resizes to the model's input size; None keeps the images' own size.
        channels_last: memory format of the torch path (default ``CHANNELS_LAST_DEFAULT``); the
            caller's model is not touched (a converted copy is cached, see ``inference_twin``;
            for logits-only passes its batch norms are also folded into the convolutions).
        threads: intra-op thread budget for the pass, torch's and onnxruntime's (None: ``default_threads()``).
        truncate: with ``layers``, stop each forward after the deepest of them (no logits).
        progress: called with the number of images done after each batch.
        backend: "auto" (default, or ``$CONVLENS_BACKEND``), "torch" or "onnxruntime". "onnxruntime"
            exports the pass's function once (cached in memory and on disk), checks it against torch
            on the first batch (relative max difference <= 1e-4) and falls back to torch with one
            warning line if it cannot; "auto" does the same only when the pass is long enough for
            the export to pay off (``convlens.drivers.onnx``, docs/forward.md).
    Example:
        >>> m = load_model("resnet18", weights=None)
        >>> for b in batched_forward(m, torch.rand(4, 3, 64, 64), "layer1", size=None): pass
    """
    layer_list = [layers] if isinstance(layers, str) else list(layers or [])
    size = model.input_size if size == "model" else size
    run_torch = torch_pass(model, layer_list, channels_last, truncate)
    budget = threads if threads is not None else default_threads()
    switch = Switch(model, layer_list, truncate, budget, backend, total=length(images))
    done = 0
    with thread_budget(budget), torch.inference_mode():
        for batch in iter_batches(images, batch_size, size):
            logits, acts = switch.run(batch.to(model.device), run_torch)
            yield Batch(done, batch, logits, acts, switch.backend_used)
            done += batch.shape[0]
            if progress:
                progress(done)


def length(images) -> int | None:
    """Number of images in a tensor or sized collection; None for a stream of unknown length."""
    if isinstance(images, torch.Tensor):
        return int(images.shape[0])
    try:
        return len(images)
    except TypeError:
        return None


def torch_pass(model: Model, layer_list: list[str], channels_last: bool | None = None, truncate: bool = True):
    """The torch path of ``batched_forward``: ``fn(x) -> (logits | None, {layer: activation})``."""
    cl = CHANNELS_LAST_DEFAULT if channels_last is None else channels_last

    def run(x):
        # logits only: a BN-folded channels_last twin; probing layers: a channels_last copy (names
        # intact). Made (or fetched from its cache) only when torch runs a batch: a pass served by
        # onnxruntime from its first batch never pays for it.
        net_model = inference_twin(model, cl, fuse_bn=not layer_list) if (cl or not layer_list) else model
        if cl:
            x = x.contiguous(memory_format=torch.channels_last)
        if layer_list:
            with Probe(net_model, layer_list, detach=True, stop=truncate) as probe:
                logits = probe.run(x)
                return logits, {k: v.contiguous() for k, v in probe.activations.items()}
        return net_model(x), {}
    return run


_TWINS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
# One twin is built at a time: torch.fx tracing patches nn.Module.__call__ process-wide while it runs,
# so two threads tracing at once (the web explorer's first concurrent requests) can break each other.
_TWIN_BUILD = threading.Lock()


def inference_twin(model, channels_last: bool = True, fuse_bn: bool = True):
    """A forward-only deep copy of ``model``: batch norms folded into the preceding convolutions
    (``torch.fx`` ``fuse``; skipped when the network cannot be traced) and channels_last memory format.

    The copy is checked against the model on a random input (relative difference < 1e-4, i.e.
    rounding only) and cached while the model's parameters, dtype and device stay the same (in-place
    edits bump the tensors' version counters, which invalidates the copy).
    """
    key = (channels_last, fuse_bn, tuple((t.data_ptr(), t._version, t.dtype, str(t.device)) for t in
                                         (*model.parameters(), *model.buffers())))
    hit = _TWINS.get(model)
    if hit is not None and hit[0] == key:
        return hit[1]
    with _TWIN_BUILD:
        hit = _TWINS.get(model)  # built by another thread while this one waited
        if hit is not None and hit[0] == key:
            return hit[1]
        with torch.inference_mode(False):  # called inside inference_mode (batched_forward): the copy must stay usable for gradients
            return _build_twin(model, key, channels_last, fuse_bn)


def _build_twin(model, key, channels_last: bool, fuse_bn: bool):
    twin = copy.deepcopy(model)
    fused = False
    if fuse_bn:
        try:
            from torch.fx.experimental.optimization import fuse
            with torch.no_grad():
                net = fuse(twin.net)
            x = torch.rand(2, model.mean.shape[1], 64, 64, dtype=model.mean.dtype, device=model.device,
                           generator=torch.Generator(device=model.device).manual_seed(0))
            with torch.inference_mode():
                a, b = model.net((x - model.mean) / model.std), net((x - model.mean) / model.std)
            if isinstance(a, torch.Tensor) and float((a - b).abs().max()) <= 1e-4 * (float(a.abs().max()) + 1e-12):
                twin.net, fused = net, True
        except Exception:  # noqa: BLE001 - not fx-traceable: keep the unfused copy
            pass
    speed_up_stems(twin.net)  # the image's input gradient by output phase (drivers/stem_grad.py)
    if channels_last:
        twin = twin.to(memory_format=torch.channels_last)
    twin.__dict__["_convlens_fused"] = fused
    _TWINS[model] = (key, twin)
    return twin
