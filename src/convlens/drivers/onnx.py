"""The ONNX Runtime backend for forward-only passes (``batched_forward(..., backend=...)``).

What runs: the exact function the pass needs, normalization + the network, cut after the deepest
requested layer (torchvision's ``create_feature_extractor``, an fx graph cut: hook-based stopping
cannot be exported), returning those layers' outputs and/or the logits. It is exported once with
``torch.onnx.export`` (the TorchScript exporter, ``dynamo=False``: 0.5-0.6 s for MobileNetV2 or
ResNet-18 here, against 2-7 s for ``dynamo=True``), with a dynamic batch and a fixed spatial size,
in a child process (``onnx_worker``: fx's tracer patches torch globals while it runs, which broke
other threads' forwards; the child starts once per process, 3 s),
and run by an onnxruntime session with an explicit thread budget (intra-op = the pass's threads,
inter-op 1, all graph optimizations; spin-waiting threads only when the machine has an idle core
per thread when the session is made: ``decide_spin``). CUDA's execution provider is used when the
model is on a GPU and onnxruntime has it.

Exact to rounding, or not used: the first batch run through a *new* export is also run through
torch; the torch result is what that batch yields, and the session's outputs on (up to 8 of) its
images must agree with it to a relative max difference of 1e-4 (``RTOL``). If the export fails
(an op ONNX lacks, a custom autograd Function, data-dependent control flow, an fx-untraceable
network), or the session cannot be built, or the check fails, the pass continues in torch and
one ``BackendFallbackWarning`` line says why, once per (model, layers, size).

Caches: in memory per (weights fingerprint, layers, size, dtype, threads, provider) (a few sessions,
least recently used dropped), and on disk under ``cache_dir()`` (``$CONVLENS_CACHE``, else
``$XDG_CACHE_HOME/convlens``, else ``~/.cache/convlens``; subfolder ``onnx``), one ``.onnx`` file
and a ``.json`` sidecar per key. The key hashes every parameter and buffer (values, dtype, shape),
every module's class, ``extra_repr`` and ``forward`` code, the normalization, the layers, the size
and the torch / onnxruntime / export-format versions: an in-place weight edit gives a new export.

Which backend ``auto`` picks (``Switch``), the rule documented in docs/forward.md:
  1. torch unless onnxruntime imports, the model is float32, and it is on the CPU (or on CUDA with
     onnxruntime's CUDA provider); ``CONVLENS_BACKEND=torch`` forces torch everywhere.
  2. onnxruntime from the first batch when this process already holds a checked session for the
     pass (same weights, layers, size, threads).
  3. otherwise the first batch runs in torch and is timed. If the pass's remaining torch time
     (known length: remaining images x the measured time per image; a stream of unknown length:
     the time spent so far, i.e. a stream is assumed to last as long again) is at least
     ``LOAD_PAYOFF_S`` (1 s) and a checked export is on disk, or at least ``export_payoff_s``
     otherwise: 4x the expected export time, estimated as 0.5 s + 10 ms per MB of weights (+ 3 s
     when the export child is not running yet)
     (measured: MobileNetV2 0.6-0.8 s, ResNet-18 0.5-0.7 s, DenseNet-121 0.9 s, VGG-16 5.3 s),
     the export is loaded / made and the rest runs in onnxruntime. onnxruntime measured at least
     1.3x faster than the torch twin here, which saves at least a quarter of the torch time: 4x
     the export. Small passes (predict on a few images, the test suite, most of the demo) never export.
"""
from __future__ import annotations

import atexit
import collections
import contextlib
import hashlib
import json
import os
import sys
import threading
import time
import warnings
import weakref
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..assets import cache_dir  # noqa: F401 - the cache folder's owner; convlens.drivers.onnx.cache_dir as before
from ..errors import ConvlensError
from ..files import atomic_write

BACKENDS = ("auto", "torch", "onnxruntime")
RTOL = 1e-4                # relative max difference allowed between the session and torch
CHECK_IMAGES = 8           # images of the first batch the new session is checked on
EXPORT_PAYOFF_S = 4.0      # auto: export when the remaining torch time is at least this x the export's
LOAD_PAYOFF_S = 1.0        # auto: load a checked export from disk when at least this remains
WORKER_START_S = 3.0       # the export child's start (its imports; measured 3.1-3.5 s on a loaded 2-core machine)
MEMORY_SESSIONS = 4        # sessions kept in memory (least recently used dropped)
OPSET = 17
FORMAT = "convlens-onnx/1"  # bump when the exported function changes


class BackendFallbackWarning(UserWarning):
    """The onnxruntime backend was asked for (or chosen) but the pass runs in torch; says why."""


def resolve_backend(backend: str | None) -> str:
    """``backend`` or ``$CONVLENS_BACKEND`` or "auto"; validated."""
    b = backend or os.environ.get("CONVLENS_BACKEND") or "auto"
    b = {"ort": "onnxruntime", "onnx": "onnxruntime"}.get(b.lower(), b.lower())
    if b not in BACKENDS:
        src = "" if backend else " (from CONVLENS_BACKEND)"
        raise ConvlensError(f"unknown backend '{b}'{src}; use one of {', '.join(BACKENDS)}")
    if os.environ.get("CONVLENS_BACKEND", "").lower() == "torch":
        return "torch"
    return b


def ort_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except Exception:  # noqa: BLE001 - missing or broken install: torch only
        return False
    return True


def providers_for(device: torch.device) -> list[str] | None:
    """onnxruntime execution providers for a model on ``device``; None when there is none for it."""
    import onnxruntime as ort
    have = ort.get_available_providers()
    if device.type == "cpu":
        return ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in have:
        return [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]
    return None


# --- fingerprints -------------------------------------------------------------------------------
_FINGERPRINTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def state_key(model: nn.Module) -> tuple:
    """Cheap identity of a model's current tensors (in-place edits bump ``_version``)."""
    return tuple((t.data_ptr(), t._version, t.dtype, str(t.device)) for t in (*model.parameters(), *model.buffers()))


def fingerprint(model: nn.Module) -> str:
    """A hash of the model's function: every parameter / buffer (values, dtype, shape) and every
    module's class, ``extra_repr`` and ``forward`` code. Cached while the tensors are unchanged."""
    key = state_key(model)
    hit = _FINGERPRINTS.get(model)
    if hit is not None and hit[0] == key:
        return hit[1]
    h = hashlib.blake2b(digest_size=20)
    for name, mod in model.named_modules():
        cls = type(mod)
        code = getattr(getattr(cls, "forward", None), "__code__", None)
        h.update(f"{name}|{cls.__module__}.{cls.__qualname__}|{mod.extra_repr()}|".encode())
        if code is not None:
            h.update(code.co_code)
            h.update(repr(code.co_consts).encode())
    for name, t in (*model.named_parameters(), *model.named_buffers()):
        t = t.detach()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    digest = h.hexdigest()
    _FINGERPRINTS[model] = (key, digest)
    return digest


def known_fingerprint(model: nn.Module) -> str | None:
    """The fingerprint if already computed for the model's current tensors (no hashing)."""
    hit = _FINGERPRINTS.get(model)
    return hit[1] if hit is not None and hit[0] == state_key(model) else None


# --- the exported function ----------------------------------------------------------------------
class _Exported(nn.Module):
    """Normalization + the (possibly cut) network, returning a tuple of tensors."""

    def __init__(self, model, net, names: list[str] | None):
        super().__init__()
        self.net, self.names = net, names
        self.register_buffer("mean", model.mean.detach().clone())
        self.register_buffer("std", model.std.detach().clone())

    def forward(self, x):
        out = self.net((x - self.mean) / self.std)
        if self.names is not None:
            return tuple(out[n] for n in self.names)
        if not isinstance(out, torch.Tensor):
            out = out[0]
        return (out,)


def _node_for(layer: str, nodes: list[str], modules: set[str]) -> str:
    """fx node of a layer's output; a module called several times gives its last call (as Probe)."""
    calls = [n for n in nodes if n == layer or (n.startswith(layer + "_") and n[len(layer) + 1:].isdigit()
                                                and n not in modules)]
    return calls[-1] if calls else layer


def build_function(model, layers: list[str], truncate: bool) -> tuple[nn.Module, list[str]]:
    """The module to export and its output names (layers, then "logits" when wanted)."""
    if not layers:
        return _Exported(model, model.net, None), ["logits"]
    from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names
    _, nodes = get_graph_node_names(model.net)
    modules = {n for n, _ in model.net.named_modules()}
    ret = {_node_for(layer, nodes, modules): f"o{i}" for i, layer in enumerate(layers)}
    names = list(layers)
    if not truncate:
        ret[nodes[-1]] = "logits"
        names.append("logits")
    fe = create_feature_extractor(model.net, return_nodes=ret)
    # a later in-place op (ReLU(inplace=True) after a probed conv) must not reach a returned value:
    # copy each returned value right where it is computed, as Probe does
    out = next(n for n in fe.graph.nodes if n.op == "output")
    for src in {a for a in out.args[0].values()}:
        with fe.graph.inserting_after(src):
            c = fe.graph.call_method("clone", (src,))
        out.args = ({k: (c if v is src else v) for k, v in out.args[0].items()},)
    fe.recompile()
    return _Exported(model, fe, list(ret.values())), names


def export(model, layers: list[str], truncate: bool, hw: tuple[int, int], path: Path) -> list[str]:
    """Export the pass's function to ``path`` (atomic); returns its output names. Raises on failure,
    including a tracer warning (data-dependent control flow would be baked into the graph).

    The export runs in a child process (``onnx_worker``, started once, kept until idle): fx's tracer and the
    exporter patch torch globals (``nn.Module.__call__``) while they run, which broke forwards run by
    other threads of this process meanwhile. Only a network that cannot be sent there (pickled;
    by value with cloudpickle, so classes defined in ``__main__`` or inside functions go too) is exported
    here, under the old caveat."""
    payload = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.model.pt")
    try:
        if _save_payload(model, payload):
            out = _WORKER.run({"payload": str(payload), "layers": list(layers), "truncate": bool(truncate),
                               "hw": [int(v) for v in hw], "path": str(path)})
            if "names" in out:
                return out["names"]
            if "error" in out:
                raise ExportFailed(out["error"])
    finally:
        payload.unlink(missing_ok=True)
    modes = {m: m.training for m in model.modules()}
    try:
        return _export(model, layers, truncate, hw, path)
    finally:  # the exporter and fx toggle train/eval: leave every module as it was
        for m, training in modes.items():
            m.training = training


class ExportFailed(RuntimeError):
    """The child's export failed; the message is its ``"Type: reason"`` line."""


def _save_payload(model, payload: Path) -> bool:
    """Write the network and normalization for the child; False when they cannot be pickled."""
    blob = {"net": model.net, "mean": model.mean.detach().cpu(), "std": model.std.detach().cpu()}
    payload.parent.mkdir(parents=True, exist_ok=True)
    try:
        import cloudpickle  # noqa: PLC0415 - optional: pickles classes of __main__ / functions by value
        kw = {"pickle_module": cloudpickle}
    except ImportError:
        kw = {}
    try:
        torch.save(blob, payload, **kw)
        return True
    except Exception:  # noqa: BLE001 - unpicklable (a lambda attribute, an open handle): export here
        payload.unlink(missing_ok=True)
        return False


class _ExportWorker:
    """The export child (``python -m convlens.drivers.onnx_worker``): started on first use (or by
    ``prestart_export_worker``), one job at a time, restarted once if it died; stopped at exit, and after
    ``idle_seconds`` without a job (it holds torch and a traced network's memory, about 1.5 GB; the next
    export starts it again, 1-3 s of imports). ``$CONVLENS_EXPORT_IDLE`` sets the seconds."""

    def __init__(self):
        self.proc = None
        self.lock = threading.Lock()
        self.idle_seconds = float(os.environ.get("CONVLENS_EXPORT_IDLE", 300))
        self._used = 0.0
        self._timer: threading.Timer | None = None

    def _arm_idle_stop(self) -> None:
        """(Re)start the idle countdown; the lock is held."""
        self._used = time.monotonic()
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(self.idle_seconds, self._stop_if_idle)
        self._timer.daemon = True
        self._timer.start()

    def _stop_if_idle(self) -> None:
        with self.lock:
            if time.monotonic() - self._used >= self.idle_seconds * 0.99:
                self.stop_locked()

    def _start(self):
        import subprocess
        if self.proc is not None and self.proc.poll() is None:
            return self.proc
        path = os.pathsep.join(os.path.abspath(p or ".") for p in sys.path)
        self.proc = subprocess.Popen([sys.executable, "-m", "convlens.drivers.onnx_worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     env={**os.environ, "PYTHONPATH": path})
        self._arm_idle_stop()
        return self.proc

    def start(self) -> None:
        with self.lock:
            self._start()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def run(self, job: dict) -> dict:
        with self.lock:
            for _ in range(2):
                p = self._start()
                try:
                    p.stdin.write(json.dumps(job) + "\n")
                    p.stdin.flush()
                    line = p.stdout.readline()
                except OSError:
                    line = ""
                if line:
                    self._arm_idle_stop()
                    return json.loads(line)
                self.stop_locked()   # it died mid-job (a crash in the exporter): once more, fresh
            raise RuntimeError("the export process exited without an answer")

    def stop_locked(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        p, self.proc = self.proc, None
        if p is None:
            return
        try:
            p.stdin.close()
            p.wait(timeout=5)
        except Exception:  # noqa: BLE001
            p.kill()
            p.wait()

    def stop(self) -> None:
        with self.lock:
            self.stop_locked()


_WORKER = _ExportWorker()
atexit.register(_WORKER.stop)


def prestart_export_worker() -> None:
    """Start the export child now (in the background: about 1-3 s of imports), so that the first export
    a server needs does not wait for them. Nothing when torch is forced or onnxruntime is missing."""
    if resolve_backend(None) == "torch" or not ort_available() or _WORKER.running():
        return
    threading.Thread(target=_WORKER.start, daemon=True, name="convlens-onnx-worker").start()


def _export(model, layers, truncate, hw, path) -> list[str]:
    fn, names = build_function(model, layers, truncate)
    fn.eval()
    x = torch.rand(2, model.mean.shape[1], *hw, dtype=model.mean.dtype, device=model.mean.device)

    def write(tmp: Path) -> None:
        with warnings.catch_warnings(record=True) as caught, torch.inference_mode(False), torch.no_grad(), _quiet_stdout():
            warnings.simplefilter("always")
            torch.onnx.export(fn, (x,), str(tmp), input_names=["images"], output_names=[f"out{i}" for i in range(len(names))],
                              dynamic_axes={"images": {0: "batch"}, **{f"out{i}": {0: "batch"} for i in range(len(names))}},
                              opset_version=OPSET, dynamo=False, do_constant_folding=True)
        bad = [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
        if bad:  # the temporary file is removed; nothing is cached
            raise RuntimeError(f"the trace depends on the input ({str(bad[0].message).splitlines()[0][:90]})")
    atomic_write(path, write)
    return names


@contextlib.contextmanager
def _quiet_stdout():
    """The TorchScript exporter prints the whole graph to the C-level stdout when an op fails to
    export; keep that dump out of the user's terminal (the reason is reported in one line)."""
    try:
        sys.stdout.flush()
        saved, null = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError, AttributeError):
        yield
        return
    try:
        os.dup2(null, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)


# --- spin-waiting -------------------------------------------------------------------------------
SPIN_SAMPLE_S = 0.1     # how long the machine's CPU use is sampled when a session is made
SPIN_SLACK = 0.25       # spin when the idle cores (others' use left out) are >= threads - this


def _cpu_jiffies(text: str) -> tuple[int, int, int]:
    """(busy, total, cpus) from the text of /proc/stat: jiffies summed over all CPUs."""
    lines = text.splitlines()
    v = [int(x) for x in lines[0].split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)          # idle + iowait
    total = sum(v[:8])                                  # guest time is already in user / nice
    cpus = sum(1 for ln in lines[1:] if ln.startswith("cpu") and ln[3:4].isdigit())
    return total - idle, total, max(1, cpus)


def _own_jiffies() -> float:
    t = os.times()
    return (t.user + t.system) * os.sysconf("SC_CLK_TCK")


def idle_cores(before: str, after: str, own_jiffies: float = 0.0) -> float:
    """Cores left idle by *other* processes between two /proc/stat readings; ``own_jiffies`` is the
    CPU time this process used in between (left out: our own threads will be the session's)."""
    b0, t0, cpus = _cpu_jiffies(before)
    b1, t1, _ = _cpu_jiffies(after)
    per_cpu = max(1e-9, (t1 - t0) / cpus)               # jiffies of wall time, per CPU
    others = max(0.0, (b1 - b0 - own_jiffies) / per_cpu)
    return max(0.0, cpus - others)


def measure_idle_cores(sample_s: float = SPIN_SAMPLE_S) -> float | None:
    """Idle cores now: /proc/stat sampled over ``sample_s`` (our own use left out); elsewhere the
    1-minute load average; None when neither can be read."""
    try:
        with open("/proc/stat") as f:
            before = f.read()
        own = _own_jiffies()
        time.sleep(sample_s)
        with open("/proc/stat") as f:
            after = f.read()
        return idle_cores(before, after, _own_jiffies() - own)
    except (OSError, ValueError, IndexError):
        pass
    try:
        return max(0.0, (os.cpu_count() or 1) - os.getloadavg()[0])
    except (OSError, AttributeError):
        return None


def decide_spin(threads: int, idle: float | None, env: str | None = None) -> bool:
    """Whether the session's intra-op threads spin-wait: ``env`` ("0"/"1", from ``CONVLENS_ORT_SPIN``)
    forces it; else spin when the machine has an idle core for each thread (``idle`` >= threads -
    ``SPIN_SLACK``), since spinning costs nothing then and saves the wake-up between ops (measured
    on MobileNetV2: without it 0.83x a default session on a quiet machine); don't when other
    processes hold the cores (spinning threads steal them: 82 vs 111 img/s there). Unknown: don't."""
    if env is not None and env.strip() in ("0", "1"):
        return env.strip() == "1"
    return idle is not None and idle >= threads - SPIN_SLACK


def spin_setting(threads: int) -> bool:
    """``decide_spin`` for this machine now (measures only when ``CONVLENS_ORT_SPIN`` is unset)."""
    env = os.environ.get("CONVLENS_ORT_SPIN")
    if env is not None and env.strip() in ("0", "1"):
        return decide_spin(threads, None, env)
    return decide_spin(threads, measure_idle_cores())


# --- sessions -----------------------------------------------------------------------------------
class OrtRunner:
    """One onnxruntime session for one pass shape; ``runner(x) -> (logits | None, {layer: act})``."""

    def __init__(self, path: Path, names: list[str], threads: int, providers, device, verified: bool, key: str):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = max(1, int(threads))
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.spin = spin_setting(threads)  # from the machine's idle cores now (see spin_setting)
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spin else "0")
        so.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), so, providers=providers)
        self.threads, self.names, self.device, self.verified, self.key, self.path = threads, names, device, verified, key, path
        self.input = self.session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor):
        outs = self.session.run(None, {self.input: x.detach().cpu().contiguous().numpy()})
        outs = [torch.from_numpy(o).to(self.device) for o in outs]
        d = dict(zip(self.names, outs))
        return d.pop("logits", None), d

    def mark_verified(self) -> None:
        self.verified = True
        _write_meta(self.path, {"verified": True})


_SESSIONS: "collections.OrderedDict[tuple, OrtRunner]" = collections.OrderedDict()
_FAILED: dict[tuple, str] = {}
_LOCK = threading.Lock()


def _meta_path(path: Path) -> Path:
    return path.with_suffix(".json")


def _read_meta(path: Path) -> dict | None:
    try:
        return json.loads(_meta_path(path).read_text())
    except (OSError, ValueError):
        return None


def _write_meta(path: Path, update: dict) -> None:
    meta = _read_meta(path) or {}
    meta.update(update)
    try:
        atomic_write(_meta_path(path), json.dumps(meta))
    except OSError:  # a read-only cache only costs a re-check next time
        pass


def pass_key(model, layers: list[str], truncate: bool, hw, fp: str) -> str:
    import onnxruntime as ort
    desc = json.dumps([FORMAT, OPSET, fp, list(layers), bool(truncate) or not layers, list(hw), str(model.mean.dtype),
                       torch.__version__, ort.__version__])
    return hashlib.blake2b(desc.encode(), digest_size=16).hexdigest()


def _memory_key(model, layers, truncate, hw, threads, fp):
    return (fp, tuple(layers), bool(truncate), tuple(hw), str(model.mean.dtype), int(threads), str(model.device))


def cached_runner(model, layers, truncate, hw, threads) -> OrtRunner | None:
    """A checked session already in memory for this pass (no hashing, no disk)."""
    fp = known_fingerprint(model)
    if fp is None:
        return None
    r = _SESSIONS.get(_memory_key(model, layers, truncate, hw, threads, fp))
    return r if r is not None and r.verified else None


def on_disk(model, layers, truncate, hw) -> bool:
    """A checked export of this pass is in the disk cache."""
    path = cache_dir() / "onnx" / f"{pass_key(model, layers, truncate, hw, fingerprint(model))}.onnx"
    meta = _read_meta(path)
    return path.exists() and bool(meta and meta.get("verified"))


def get_runner(model, layers: list[str], truncate: bool, hw, threads: int) -> OrtRunner | None:
    """The session for this pass: from memory, else from disk, else a new export. None (and one
    ``BackendFallbackWarning``) when it cannot be had."""
    fp = fingerprint(model)
    mkey = _memory_key(model, layers, truncate, hw, threads, fp)
    with _LOCK:
        r = _SESSIONS.get(mkey)
        if r is not None:
            _SESSIONS.move_to_end(mkey)
            return r
        if mkey[:-2] + mkey[-1:] in _FAILED:
            return None
        try:
            providers = providers_for(model.device)
            if providers is None:
                raise RuntimeError(f"onnxruntime has no execution provider for {model.device}")
            key = pass_key(model, layers, truncate, hw, fp)
            path = cache_dir() / "onnx" / f"{key}.onnx"
            meta = _read_meta(path) if path.exists() else None
            if meta and meta.get("failed"):
                raise RuntimeError(meta["failed"])
            if meta is None or "names" not in meta:
                t = time.perf_counter()
                names = export(model, layers, truncate, hw, path)
                _write_meta(path, {"names": names, "verified": False, "model": getattr(model, "name", "?"),
                                   "layers": layers, "size": list(hw), "export_s": round(time.perf_counter() - t, 3)})
                meta = _read_meta(path) or {"names": names, "verified": False}
            r = OrtRunner(path, meta["names"], threads, providers, model.device, bool(meta.get("verified")), key)
        except Exception as e:  # noqa: BLE001 - any failure means: torch, said once
            reason = str(e) if isinstance(e, ExportFailed) else f"{type(e).__name__}: {_first_line(e)}"
            fail(model, layers, truncate, hw, reason, mkey=mkey)
            return None
        _SESSIONS[mkey] = r
        while len(_SESSIONS) > MEMORY_SESSIONS:
            _SESSIONS.popitem(last=False)
        return r


def _first_line(e: Exception) -> str:
    s = str(e).strip().splitlines()
    return (s[0] if s else "")[:160]


def fail(model, layers, truncate, hw, reason: str, mkey=None, runner: OrtRunner | None = None) -> None:
    """Record that this pass cannot use onnxruntime and say so once (one line)."""
    fp = known_fingerprint(model) or "?"
    mkey = mkey or _memory_key(model, layers, truncate, hw, 0, fp)
    fkey = mkey[:-2] + mkey[-1:]
    if runner is not None:
        _SESSIONS.pop(_memory_key(model, layers, truncate, hw, runner.threads, fp), None)
        _write_meta(runner.path, {"verified": False, "failed": reason})
    if fkey in _FAILED:
        return
    _FAILED[fkey] = reason
    what = f"{getattr(model, 'name', 'model')}" + (f" ({', '.join(layers)})" if layers else "") + f" at {hw[0]}x{hw[1]}"
    # warn_explicit with no source file: the note prints as one line (no quoted source line under it)
    warnings.warn_explicit(f"onnxruntime backend not used for {what}: {reason}; running in torch "
                           f"(backend='torch' or CONVLENS_BACKEND=torch skips the attempt)",
                           BackendFallbackWarning, "convlens", 0)


def clear_memory_cache() -> None:
    """Forget every in-memory session, fingerprint and failure (the disk cache stays)."""
    with _LOCK:
        _SESSIONS.clear()
        _FAILED.clear()
        _FINGERPRINTS.clear()


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |a| (0 for two zero tensors)."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    if a.shape != b.shape:
        return float("inf")
    scale = float(a.abs().max()) if a.numel() else 0.0
    err = float((a - b).abs().max()) if a.numel() else 0.0
    return err / scale if scale > 0 else (0.0 if err == 0 else float("inf"))


def export_payoff_s(model) -> float:
    """Remaining torch seconds from which ``auto`` exports: EXPORT_PAYOFF_S x the expected export
    time (0.5 s + 10 ms per MB of parameters and buffers, fitted to the measurements above, plus
    ``WORKER_START_S`` when this process's export child is not running yet)."""
    mb = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers())) / 1e6
    return EXPORT_PAYOFF_S * (0.5 + 0.01 * mb + (0.0 if _WORKER.running() else WORKER_START_S))


def eligible(model) -> bool:
    """Whether ``auto`` may consider onnxruntime for this model at all (rule 1; onnxruntime itself is
    imported only when a pass is long enough to want it)."""
    return model.mean.dtype == torch.float32 and model.device.type in ("cpu", "cuda")


class Switch:
    """Per-pass backend state: runs each batch in torch or onnxruntime following ``choose``'s rule.

    ``run(x, torch_fn)`` returns ``(logits | None, {layer: activation})``; ``torch_fn(x)`` is the
    torch path with the same return value. ``backend_used`` says which ran the last batch.
    """

    def __init__(self, model, layers: list[str], truncate: bool, threads: int, backend: str | None,
                 total: int | None = None):
        self.model, self.layers, self.truncate, self.threads, self.total = model, list(layers), truncate, threads, total
        self.mode = resolve_backend(backend)
        if self.mode == "auto" and not eligible(model):
            self.mode = "torch"
        if self.mode == "onnxruntime" and not ort_available():
            fail(model, layers, truncate, model.input_size, "onnxruntime is not installed")
            self.mode = "torch"
        self.runners: dict[tuple, OrtRunner | None] = {}
        self.torch_s, self.torch_n = 0.0, 0
        self.backend_used = "torch"

    def _remaining_torch_s(self) -> float:
        """Expected torch time of the rest of the pass (this batch included), from the batches so far."""
        if self.torch_n == 0:
            return 0.0
        if self.total is None:
            return self.torch_s
        return max(0, self.total - self.torch_n) * self.torch_s / self.torch_n

    def _runner(self, hw) -> OrtRunner | None:
        if hw in self.runners:
            return self.runners[hw]
        args = (self.model, self.layers, self.truncate, hw)
        if self.mode == "onnxruntime":
            r = get_runner(*args, self.threads)
        else:  # auto: the rule in the module docstring
            r = cached_runner(*args, self.threads)
            if r is None:
                rem = self._remaining_torch_s()
                if rem < LOAD_PAYOFF_S:
                    return None  # decide again after the next torch batch
                if not ort_available() or providers_for(self.model.device) is None:
                    self.mode = "torch"
                    return None
                if rem < export_payoff_s(self.model) and not on_disk(*args):
                    return None
                r = get_runner(*args, self.threads)
        self.runners[hw] = r
        return r

    def run(self, x: torch.Tensor, torch_fn: Callable):
        hw = tuple(int(s) for s in x.shape[2:])
        r = None if self.mode == "torch" else self._runner(hw)
        if r is not None and r.verified:
            self.backend_used = "onnxruntime"
            return r(x)
        t = time.perf_counter()
        ref = torch_fn(x)
        self.torch_s += time.perf_counter() - t
        self.torch_n += x.shape[0]
        self.backend_used = "torch"
        if r is not None:  # a new export: check it on this batch, which yields torch's result
            self._check(r, x, ref, hw)
        return ref

    def _check(self, r: OrtRunner, x, ref, hw) -> None:
        try:
            logits, acts = r(x[:CHECK_IMAGES])
            pairs = [(ref[1][k][:CHECK_IMAGES], acts.get(k)) for k in self.layers]
            if ref[0] is not None or logits is not None:
                pairs.append((ref[0][:CHECK_IMAGES] if ref[0] is not None else None, logits))
            worst = max((rel_diff(a, b) if a is not None and b is not None else float("inf")) for a, b in pairs)
            if not worst <= RTOL:
                raise RuntimeError(f"outputs differ from torch's (relative max difference {worst:.1e} > {RTOL:g})")
        except Exception as e:  # noqa: BLE001
            fail(self.model, self.layers, self.truncate, hw, f"{type(e).__name__}: {_first_line(e)}", runner=r)
            self.runners[hw] = None
            return
        r.mark_verified()
