"""The layer browser's max-activating-patch pass (issue 23 item 7): the server's job against the call
it made before.

Ours: ``POST /api/layers/<layer>/patches?n=N`` on a fresh server, followed to "done" (the sample set
decoded once per server and kept; the onnxruntime backend from the first batch, exported in a child
process), for a first layer
and then a second layer (the decoded images reused). Peer: the route's former call, measured in the same
run: ``top_activations(model, sample_dataset(N), layer, k=9)`` (the crops regenerated every pass, the
``auto`` backend deciding after a timed torch batch). Every export the passes need is made once before
timing, as a server that has already seen the layer has it on disk.
"""
from __future__ import annotations

import tempfile
import time

from .common import Row


def run(quick: bool) -> list[Row]:
    import torch
    from fastapi.testclient import TestClient

    import convlens
    from convlens.inspect import sample_dataset, top_activations
    from convlens.web import create_app

    n = 64 if quick else 200
    layers = ("features.6", "features.10")
    threads = torch.get_num_threads()
    model = convlens.load_model()
    for layer in layers:  # the exports on disk (a one-off per layer and model), as both sides may use them
        top_activations(model, sample_dataset(8), layer, None, 9, threads=threads, backend="onnxruntime")

    def before(layer):
        t = time.perf_counter()
        top_activations(model, sample_dataset(n), layer, None, 9, threads=threads)
        return time.perf_counter() - t

    def server_passes():
        with tempfile.TemporaryDirectory() as d:
            app = create_app(data_dir=d, threads=threads)
            state = app.state.convlens
            state._models[(state.model_name, state.weights)] = model
            out = []
            with TestClient(app, base_url="http://127.0.0.1", headers={"X-Convlens-Token": state.token}) as c:
                for layer in layers:
                    t = time.perf_counter()
                    job = c.post(f"/api/layers/{layer}/patches?n={n}&k=9").json()["job"]
                    while c.get(f"/api/jobs/{job}").json()["status"] not in ("done", "error", "cancelled"):
                        time.sleep(0.02)
                    out.append(time.perf_counter() - t)
            return out

    ours, peer = [], []
    for _ in range(1 if quick else 2):   # alternated, best of
        ours.append(server_passes())
        peer.append([before(layer) for layer in layers])
    first, second = min(o[0] for o in ours), min(o[1] for o in ours)
    p_first, p_second = min(p[0] for p in peer), min(p[1] for p in peer)
    return [
        Row(f"web layers: first patch pass, {n} samples to features.6 (job, end to end)", first, p_first, "s",
            "former route call", "faster", higher_is_better=False,
            note=f"onnxruntime backend, the decoded sample set kept; {threads} threads"),
        Row(f"web layers: next layer's pass, {n} samples to features.10", second, p_second, "s",
            "former route call", "faster", higher_is_better=False, note="the decoded sample set reused"),
    ]
