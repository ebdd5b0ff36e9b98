"""The lab's adversarial studies (issue 23 item 8): the linear walkthrough, evolved unrecognizable images,
mix-weights, HOG match, the robustness curve and the universal perturbation, run through POST /api/run
and checked against the library call (the server's 1-thread budget), plus one slow browser pass that runs
each from the page."""
from __future__ import annotations

import io

import numpy as np
import pytest

pytest.importorskip("fastapi")
from PIL import Image  # noqa: E402

import convlens  # noqa: E402
from convlens import adversarial  # noqa: E402
from convlens.drivers.forward import thread_budget  # noqa: E402
from convlens.images import fit, sample_dataset  # noqa: E402
from convlens.web import create_app  # noqa: E402

from web_helpers import api_client, chromium_page, live_server, screenshot, wait_job  # noqa: E402


@pytest.fixture(scope="module")
def app(offline_model):
    a = create_app(threads=1)
    a.state.convlens._models[("mobilenet_v2", "default")] = offline_model
    return a


@pytest.fixture(scope="module")
def client(app):
    with api_client(app) as c:
        yield c


def run(client, technique, params, image="chelsea"):
    r = client.post("/api/run", json={"technique": technique, "image": image, "params": params})
    assert r.status_code == 200, r.text
    j = wait_job(client, r.json()["job"])
    assert j["status"] == "done", j
    return j["result"]


def png(client, url) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(client.get(url).content)).convert("RGB"))


def test_every_catalog_study_is_in_the_lab(client):
    listed = {t["name"]: t for t in client.get("/api/techniques").json()}
    for name in ("linear_walkthrough", "evolve_unrecognizable", "mix_weights", "hog_match", "robustness", "universal"):
        assert name in listed and listed[name]["family"] == "adversarial", name
    assert listed["hog_match"]["needs_image"] and not listed["robustness"]["needs_image"]
    pickers = {f["name"]: f.get("picker") for f in listed["hog_match"]["fields"]}
    assert pickers["image_b"] == "image"


def test_linear_walkthrough_is_the_lecture_example(client):
    r = run(client, "linear_walkthrough", {})
    f = r["figures"]
    assert (f["score"], f["score_adv"]) == (-3.0, 2.0)
    assert f["p"] == pytest.approx(1 / (1 + np.exp(3))) and f["p_adv"] == pytest.approx(1 / (1 + np.exp(-2)))
    assert "-2 + 1 + 3 + 2 + 2 - 2 + 1 - 4 - 5 + 1 = -3" in f["summary"]
    other = run(client, "linear_walkthrough", {"x": "1,1", "w": "1,-1", "b": 0.5, "eps": 0.25})["figures"]
    assert other["score"] == 0.5 and other["score_adv"] == pytest.approx(0.5 + 0.25 * 2)


def test_evolve_equals_the_library(client, offline_model):
    f = run(client, "evolve_unrecognizable", {"target": "starfish", "generations": 4, "size": 48})["figures"]
    with thread_budget(1):
        want = adversarial.evolve_unrecognizable(offline_model, ["starfish"], generations=4, size=48)
    assert f["confidence"] == pytest.approx(float(want.confidence[0]), rel=1e-3)
    assert f["confidence"] >= f["start_confidence"] and f["generations"] == 4
    assert len(f["objective"]) == 4


def test_mix_weights_equals_the_library(client, offline_model):
    r = run(client, "mix_weights", {"target": "goldfish", "eps": "0,2/255,4/255", "digits": False})
    f = r["figures"]
    img = fit(convlens.sample_image("chelsea"), offline_model.input_size)
    with thread_budget(1):
        want = adversarial.mix_gradient(offline_model, img, "goldfish", [0, 2 / 255, 4 / 255])
    assert f["p_target"] == pytest.approx(want.probs_target, abs=1e-4)
    assert f["p_target"][1] > 10 * f["p_target"][0]     # the template raises goldfish
    assert len(r["images"]) == 1


def test_hog_match_brings_the_hog_close(client):
    r = run(client, "hog_match", {"image_b": "coffee", "steps": 40, "size": 96})
    f = r["figures"]
    a, b = fit(convlens.sample_image("chelsea"), 96), fit(convlens.sample_image("coffee"), 96)
    want = adversarial.hog_match(a, b, steps=40, size=96)
    assert f["start_distance"] == pytest.approx(want.start_distance, rel=1e-6)
    assert f["distance"] == pytest.approx(want.distance, rel=1e-3) and f["distance"] < 0.6 * f["start_distance"]
    changed = png(client, r["images"][1]["url"])[..., 0] / 255.0
    assert changed.shape == (96, 96)
    assert np.abs(changed - want.image[0, 0].numpy()).max() <= 1 / 255 + 1e-6


def test_robustness_curve_equals_the_library(client, offline_model):
    f = run(client, "robustness", {"images": 4, "eps": "0,2/255"})["figures"]
    x = sample_dataset(4, size=offline_model.input_size[0]).tensor()
    with thread_budget(1):
        want = adversarial.robustness(offline_model, x, "0,2/255")
    assert f["fooling_rate"] == pytest.approx(want.fooling_rate) and f["fooling_rate"][0] == 0
    assert f["mean_prob"] == pytest.approx(want.mean_prob, abs=1e-4)


def test_universal_perturbation_equals_the_library(client, offline_model):
    r = run(client, "universal", {"images": 3, "steps": 2, "eps": "8/255"})
    f = r["figures"]
    data = sample_dataset(6, size=offline_model.input_size[0]).tensor()
    with thread_budget(1):
        want = adversarial.universal_perturbation(offline_model, data[:3], "8/255", steps=2, held_out=data[3:])
    assert f["fooling_rate"] == pytest.approx(want.fooling_rate) and f["held_out_rate"] == pytest.approx(want.held_out_rate)
    delta = png(client, r["images"][0]["url"]) / 255.0          # shown as 0.5 + delta / (2 eps)
    shown = (0.5 + want.delta[0] / (2 * want.eps)).clamp(0, 1).permute(1, 2, 0).numpy()
    assert np.abs(delta - shown).max() <= 1 / 255 + 1e-6


def test_bad_study_parameters_are_refused_at_once(client):
    for tech, params, words in [("mix_weights", {"eps": "zz"}, "not a number"), ("hog_match", {"image_b": "nosuch"}, "unknown image"),
                                ("universal", {"eps": "1/0"}, "eps"), ("evolve_unrecognizable", {"generations": 5000}, "limit")]:
        r = client.post("/api/run", json={"technique": tech, "image": "chelsea", "params": params})
        assert r.status_code == 400 and words in r.json()["error"], (tech, r.text)


STUDIES = [   # technique, form values, what the result must say
    ("linear_walkthrough", {}, "0.8808"),
    ("evolve_unrecognizable", {"target": "starfish", "generations": "3", "size": "48"}, "starfish"),
    ("mix_weights", {"target": "goldfish"}, "digits_accuracy"),     # with the 8x8-digit panel
    ("hog_match", {"image_b": "coffee", "steps": "30", "size": "96"}, "psnr_db"),
    ("robustness", {"images": "4", "eps": "0,2/255"}, "fooling_rate"),
    ("universal", {"images": "4", "steps": "2"}, "held_out_rate"),
]


@pytest.mark.slow
def test_each_study_runs_from_the_page(app):
    with live_server(app) as url, chromium_page(1400, 900) as page:
        page.goto(url + "/lab?image=chelsea")
        page.wait_for_selector("#lab-top5 table", timeout=60000)
        for tech, values, words in STUDIES:
            page.select_option("#lab-technique", tech)
            for name, v in values.items():
                if isinstance(v, bool):
                    page.set_checked(f"#lab-f-{name}", v)
                else:
                    page.fill(f"#lab-f-{name}", v)
            page.click("#lab-run")
            page.wait_for_function("document.getElementById('lab-status').textContent.startsWith('done')", timeout=120000)
            page.wait_for_function("""() => { const imgs = [...document.querySelectorAll('#lab-results img.result')];
                return imgs.length >= 1 && imgs.every((i) => i.complete && i.naturalWidth > 0); }""", timeout=30000)
            text = page.inner_text("#lab-results")
            assert words in text, (tech, text[:300])
            assert f"technique={tech}" in page.url
            screenshot(page, f"web-lab-study-{tech}")
        assert page.js_errors == []
