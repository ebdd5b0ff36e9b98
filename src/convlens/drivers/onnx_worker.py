"""The child process that exports a pass's ONNX graph for ``drivers/onnx.py`` (``python -m
convlens.drivers.onnx_worker``).

Why a child: torch.fx's tracer (``create_feature_extractor``) replaces ``nn.Module.__call__`` and
``__getattr__`` for the whole process while it traces, and the TorchScript exporter toggles the
traced modules' train/eval flags, so a forward that another thread runs meanwhile (a server request on
the same shared model) went through the tracer and failed. Here the tracing touches only this
process's copy of the network.

Protocol: one JSON job per line on stdin ``{"payload", "layers", "truncate", "hw", "path"}``
(``payload``: a ``torch.save`` file holding ``{"net", "mean", "std"}``), one JSON reply per line on
the original stdout: ``{"names": [...]}``, ``{"error": "Type: reason"}`` (the export failed: the pass
falls back to torch) or ``{"load_error": ...}`` (the payload could not be read here). The process
lives until stdin closes (its parent ended or closed it); anything else written to stdout (the
exporter's graph dumps) goes to /dev/null.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace


def _first_line(e: BaseException) -> str:
    s = str(e).strip().splitlines()
    return (s[0] if s else "")[:160]


def main() -> None:
    reply = os.fdopen(os.dup(1), "w", buffering=1)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    import torch

    from .onnx import _export
    torch.set_num_threads(1)                 # a short job beside the parent's passes: one core
    for line in sys.stdin:
        job = json.loads(line)
        try:
            blob = torch.load(job["payload"], map_location="cpu", weights_only=False)
            model = SimpleNamespace(net=blob["net"], mean=blob["mean"], std=blob["std"])
        except Exception as e:  # noqa: BLE001 - e.g. a class the parent's pickle named by reference
            out = {"load_error": f"{type(e).__name__}: {_first_line(e)}"}
        else:
            try:
                out = {"names": _export(model, job["layers"], job["truncate"], tuple(job["hw"]), Path(job["path"]))}
            except Exception as e:  # noqa: BLE001 - any failure: the parent falls back to torch
                out = {"error": f"{type(e).__name__}: {_first_line(e)}"}
        blob = model = None          # the network is not kept between jobs
        reply.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
