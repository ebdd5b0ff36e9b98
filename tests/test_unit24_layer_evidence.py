"""The unit view's evidence route: the channel's finished visualization against its max-activating patches,
scored as ``natural_evidence`` scores (checked by hand: cosine of spatially pooled penultimate features (features.18.2, the last ReLU6) of
the saved visualization and of the library's own ``max_activating_patches`` crops), its figure, and the
errors before either job has run."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch.nn.functional as F

pytest.importorskip("fastapi")
from PIL import Image  # noqa: E402
from web_helpers import api_client, wait_job  # noqa: E402

import convlens  # noqa: E402
from convlens.web import create_app  # noqa: E402

N, K = 16, 4
VIZ = "steps=6&size=64&preset=robust&seed=0"
PATCH = f"n={N}&k={K}"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with api_client(create_app(threads=1, data_dir=tmp_path_factory.mktemp("web-evidence"))) as c:
        yield c


def _pooled(m, x):
    x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    return convlens.layer_activations(m, x, "features.18.2").mean((2, 3))


def test_evidence_is_plausibility_of_the_viz_against_its_patches(client, offline_model):
    base = "/api/layers/features.6/channels/3"
    r = client.get(f"{base}/evidence?{VIZ}&{PATCH}")
    assert r.status_code == 404 and "visualize" in r.json()["error"]           # no visualization yet: says how
    viz = wait_job(client, client.post(f"{base}/visualize?{VIZ}").json()["job"])
    assert viz["status"] == "done"
    r = client.get(f"{base}/evidence?{VIZ}&{PATCH}")
    assert r.status_code == 404 and "patches" in r.json()["error"]             # no patch pass yet: says how
    assert wait_job(client, client.post(f"/api/layers/features.6/patches?{PATCH}").json()["job"])["status"] == "done"
    e = client.get(f"{base}/evidence?{VIZ}&{PATCH}").json()

    # by hand: the saved visualization, the library's patches of channel 3 over the same samples
    img = convlens.load_image(Image.open(io.BytesIO(client.get(viz["result"]["image"]).content)))
    p = convlens.max_activating_patches(offline_model, convlens.sample_dataset(N), "features.6", [3], k=K)
    fv, fp = F.normalize(_pooled(offline_model, img), dim=1), F.normalize(_pooled(offline_model, p.crops[0]), dim=1)
    sim = fp @ fp.T
    assert e["plausibility"] == pytest.approx(float((fv @ fp.T).mean()), abs=1e-4)
    assert e["reference"] == pytest.approx(float((sim.sum() - sim.trace()) / (K * (K - 1))), abs=1e-4)
    assert e["exemplars"] == K and e["representation"] == "features.18.2" and e["transfer"] is None
    assert e["exemplar_names"] == [p.names[int(i)] for i in p.top.image_index[0]]
    assert e["noise"] < e["reference"] and "features.18.2" in e["explanation"] and "\n" not in e["explanation"]

    fig = client.get(e["figure"])                                             # one row: the viz, then K patches
    assert fig.status_code == 200 and fig.headers["content-type"] == "image/png"
    a = np.asarray(Image.open(io.BytesIO(fig.content)).convert("RGB"), dtype=np.float32)
    assert a.shape[1] > 4 * a.shape[0] and a.std() > 10                       # wide, and not a blank tile


def test_evidence_refuses_a_bad_unit(client):
    r = client.get(f"/api/layers/features.6/channels/999/evidence?{VIZ}&{PATCH}")
    assert r.status_code == 400 and "out of range" in r.json()["error"]
    r = client.get(f"/api/layers/nosuch/channels/0/evidence?{VIZ}&{PATCH}")
    assert r.status_code == 400 and "unknown layer" in r.json()["error"]
