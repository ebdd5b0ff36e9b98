"""The ONNX export does not disturb forwards that other threads run on the same model meanwhile (issue
23, item 7): fx's tracer and the exporter patch torch globals while they run, so the export happens in
a child process (drivers/onnx_worker.py). A thread runs forwards in a loop for the whole export and
each output must equal the reference computed before."""
from __future__ import annotations

import os
import threading
import time

import pytest
import torch

import convlens
from convlens.drivers import onnx as ob
from convlens.drivers.onnx import rel_diff
from helpers import fresh_onnx_cache


_cache = pytest.fixture(autouse=True)(fresh_onnx_cache)  # every test: an empty export cache, no sessions


def _forwards_during(m, x, ref, action):
    """Run ``action()`` while another thread runs ``m(x)`` in a loop; (outputs' worst difference, errors,
    forwards that started while the action ran)."""
    done, errors, worst, count = threading.Event(), [], [0.0], [0]

    def loop():
        while not done.is_set():
            try:
                with torch.inference_mode():
                    y = m(x)
                worst[0] = max(worst[0], rel_diff(ref, y))
            except Exception as e:  # noqa: BLE001 - what a broken forward raises is the finding
                errors.append(f"{type(e).__name__}: {e}"[:200])
            count[0] += 1

    t = threading.Thread(target=loop)
    t.start()
    while count[0] == 0:                      # the loop is running before the action starts
        done.wait(0.001)
    try:
        action()
    finally:
        done.set()
        t.join()
    return worst[0], errors, count[0]


def test_forwards_of_another_thread_are_unchanged_while_the_model_exports():
    torch.set_num_threads(1)
    m = convlens.load_model("mobilenet_v2", weights=None)
    torch.manual_seed(0)
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        ref = m(x)
    path = ob.cache_dir() / "onnx" / "concurrent.onnx"
    names = []
    worst, errors, count = _forwards_during(
        m, x, ref, lambda: names.extend(ob.export(m, ["features.10"], True, (64, 64), path)))
    assert names == ["features.10"] and path.stat().st_size > 100_000    # the export did happen
    assert count >= 2 and errors == [] and worst <= 1e-6, (count, errors[:3], worst)
    # and the exported graph computes the layer (the child's copy had the caller's weights)
    r = ob.OrtRunner(path, names, 1, ["CPUExecutionProvider"], m.device, False, "k")
    with convlens.Probe(m, "features.10", detach=True) as p, torch.inference_mode():
        p.run(x)
        want = p["features.10"]
    assert rel_diff(want, r(x)[1]["features.10"]) <= 1e-4


def test_the_export_child_exits_when_idle(monkeypatch):
    """The child holds torch and a traced network (about 1.5 GB): it exits after ``idle_seconds`` without
    a job, and the next export starts it again."""
    monkeypatch.setattr(ob._WORKER, "idle_seconds", 1.0)
    m = convlens.load_model("mobilenet_v2", weights=None)
    for name in ("idle-a", "idle-b"):
        path = ob.cache_dir() / "onnx" / f"{name}.onnx"
        assert ob.export(m, ["features.2"], True, (32, 32), path) == ["features.2"]
        pid = ob._WORKER.proc.pid
        assert ob._WORKER.running()
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(pid) and not ob._WORKER.running(), "the idle export child is still alive"


def _alive(pid: int) -> bool:
    """Whether the process exists (a zombie, exited but not reaped by its parent, counts as alive)."""
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def test_a_network_defined_in_a_function_is_exported_in_the_child(monkeypatch):
    """A class defined where pickle cannot name it (inside a function; a notebook's ``__main__`` alike) is
    sent by value (cloudpickle, a dependency), so its export runs in the child too: the in-process
    exporter is made to fail here and the export still succeeds."""
    from torch import nn

    def make():
        class Local(nn.Module):
            def __init__(self):
                super().__init__()
                self.c = nn.Conv2d(3, 4, 3, padding=1)
                self.r = nn.ReLU()

            def forward(self, x):
                return self.r(self.c(x))
        return Local()

    def in_process(*a, **k):
        raise AssertionError("exported in the calling process")
    monkeypatch.setattr(ob, "_export", in_process)
    m = convlens.Model.wrap(make(), input_size=16)
    path = ob.cache_dir() / "onnx" / "local.onnx"
    assert ob.export(m, ["c"], True, (16, 16), path) == ["c"] and path.exists()
