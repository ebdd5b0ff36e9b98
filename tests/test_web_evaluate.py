"""The explorer's report card (issue 22, item 5): the lab's "evaluate" job equals convlens.evaluate,
ranks the map on screen among the others, streams progress and keeps finished metrics on cancel."""
from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
from web_helpers import api_client, wait_job  # noqa: E402

import convlens  # noqa: E402
from convlens.images import fit  # noqa: E402
from convlens.web import create_app  # noqa: E402


@pytest.fixture(scope="module")
def client(offline_model):
    app = create_app(threads=1)
    app.state.convlens._models[("mobilenet_v2", "default")] = offline_model
    with api_client(app) as c:
        yield c


def test_card_equals_the_library_and_ranks_the_focus(client, offline_model):
    params = {"focus": "grad_cam", "others": "saliency", "metrics": "insertion,sparseness", "steps": 8}
    r = client.post("/api/run", json={"technique": "evaluate", "image": "chelsea", "params": params})
    assert r.status_code == 200, r.text
    j = wait_job(client, r.json()["job"])
    assert j["status"] == "done", j
    f = j["result"]["figures"]
    assert f["methods"] == ["grad_cam", "saliency", "random", "edge"] and f["of"] == 4
    x = fit(convlens.sample_image("chelsea"), offline_model.input_size)
    card = convlens.evaluate(offline_model, x, ["grad_cam", "saliency"], ["insertion", "sparseness"],
                             configs={"insertion": {"steps": 8}})
    want = {r["method"]: r for r in card.summary()}
    for row in f["table"]:   # the perturbation passes may run in torch or in ONNX Runtime (checked to 1e-4)
        assert row["insertion"] == pytest.approx(want[row["method"]]["insertion"], abs=1e-4)
    assert f["rank"]["insertion"] == want["grad_cam"]["insertion_rank"]
    assert "steps=8" in f["params"]["insertion"]
    assert j["done"] == j["total"] and j["result"]["images"]   # progress reached the end; the curves PNG


def test_cancel_keeps_the_metrics_finished(client):
    params = {"focus": "saliency", "others": "grad_cam", "metrics": "sparseness,deletion", "steps": 400}
    r = client.post("/api/run", json={"technique": "evaluate", "image": "chelsea", "params": params}).json()
    t0 = time.time()
    while client.get(f"/api/jobs/{r['job']}").json()["done"] < 20:   # inside the deletion pass
        assert time.time() - t0 < 120
        time.sleep(0.05)
    assert client.delete(f"/api/jobs/{r['job']}").status_code == 200
    j = wait_job(client, r["job"])
    assert j["status"] == "cancelled", j
    f = j["result"]["figures"]
    assert f["stopped"] == "cancelled" and list(f["rank"]) == ["sparseness"]
    assert np.isfinite([row["sparseness"] for row in f["table"]]).all()


def test_unknown_metric_is_a_clear_failure(client):
    r = client.post("/api/run", json={"technique": "evaluate", "image": "chelsea",
                                      "params": {"metrics": "delition", "steps": 3}})
    j = wait_job(client, r.json()["job"]) if r.status_code == 200 else r.json()
    assert "delition" in str(j)
