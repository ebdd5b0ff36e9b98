"""convlens.evaluate, the report card (issue 22, item 5): the one-call table equals the metrics called
one by one, the exact map of a linear model ranks first, baselines are always in, bad input is refused."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import convlens
from convlens.errors import ConvlensError
from convlens.faithfulness import complexity, deletion, evaluate, insertion, sparseness


@pytest.fixture(scope="module")
def linear():
    """A float64 linear 2-class model on 3x8x8 images, three images, and the exact contribution map of
    class 1 (w_1 * x summed over channels) as a 'method'."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2)).double()
    m = convlens.Model.wrap(net, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), classes=["a", "b"], input_size=8)
    x = torch.rand(3, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    w = net[1].weight.detach().view(2, 3, 8, 8)

    def exact(model, images, target):
        return (w[target].view(-1, 3, 8, 8) * images).sum(1)
    return m, x, exact


def test_table_equals_the_metrics_called_one_by_one(linear):
    m, x, exact = linear
    cfg = {"deletion": {"steps": 16, "score": "logit", "baseline": "zero"},
           "insertion": {"steps": 16, "score": "logit", "baseline": "zero"}}
    card = evaluate(m, x, [exact], ["deletion", "insertion", "sparseness", "complexity"], target=1, configs=cfg)
    assert card.methods == ["exact", "random", "edge"]
    assert len(card.rows) == 3 * 3 * 4
    maps = exact(m, x, torch.tensor([1, 1, 1]))
    d = deletion(m, x, maps, target=1, **cfg["deletion"])
    i = insertion(m, x, maps, target=1, **cfg["insertion"])
    assert np.allclose(card.value("deletion", "exact"), d.normalized_auc.numpy(), atol=1e-12)
    assert np.allclose(card.value("insertion", "exact"), i.normalized_auc.numpy(), atol=1e-12)
    assert np.allclose(card.value("sparseness", "exact"), sparseness(maps).numpy(), atol=1e-12)
    assert np.allclose(card.value("complexity", "random"), complexity(card.maps["random"]).numpy(), atol=1e-12)
    again = evaluate(m, x, [exact], ["complexity"], target=1)
    assert torch.equal(again.maps["random"], card.maps["random"])          # the same images: the same random maps
    assert card.maps["random"].std() > 0.2 and not torch.equal(card.maps["random"][0], card.maps["random"][1])
    # the one-pass run of all methods gives each method's curve as if run alone
    r = deletion(m, x, card.maps["random"], target=1, **cfg["deletion"])
    assert torch.allclose(card.results[("deletion", "random")].scores, r.scores, atol=1e-12)
    row = next(r for r in card.rows if r["metric"] == "deletion")
    assert "steps=16" in row["params"] and "baseline=zero" in row["params"] and row["better"] == "lower"


def test_the_exact_map_ranks_first_and_summary_ranks_by_hand(linear):
    """Deleting by the exact contribution w.x (largest first, to zero) is the steepest possible descent
    of the logit, so it beats the random and edge maps; insertion mirrors it."""
    m, x, exact = linear
    cfg = {k: {"steps": 16, "score": "logit", "baseline": "zero"} for k in ("deletion", "insertion")}
    card = evaluate(m, x, [exact], ["deletion", "insertion"], target=1, configs=cfg)
    assert card.rank("deletion")[0] == "exact"
    assert card.rank("insertion")[0] == "exact"
    summary = {r["method"]: r for r in card.summary()}
    means = {k: float(np.mean(card.value("deletion", k))) for k in card.methods}
    want = sorted(means, key=means.get)
    assert [k for k in want] == sorted(summary, key=lambda k: summary[k]["deletion_rank"])
    assert summary["exact"]["deletion"] == pytest.approx(means["exact"], abs=1e-12)


def test_lerf_flips_the_direction_and_the_exact_map_still_ranks_first(linear):
    """Deleting the least relevant pixels first, a faithful map keeps the logit up longest: higher is
    better, and the exact contribution map (whose least relevant pixels lower the logit least) ranks first."""
    m, x, exact = linear
    cfg = {"deletion": {"steps": 16, "score": "logit", "baseline": "zero", "order": "lerf"}}
    card = evaluate(m, x, [exact], ["deletion", "complexity"], target=1, configs=cfg)
    assert card.better("deletion") == "higher" and card.better("complexity") == "lower"
    assert all(r["better"] == "higher" for r in card.rows if r["metric"] == "deletion")
    means = {k: float(np.mean(card.value("deletion", k))) for k in card.methods}
    assert card.rank("deletion") == sorted(means, key=means.get, reverse=True)
    assert card.rank("deletion")[0] == "exact"
    summary = {r["method"]: r for r in card.summary()}
    assert summary[max(means, key=means.get)]["deletion_rank"] == 1


def test_table_is_tidy_and_converts(linear):
    m, x, exact = linear
    card = evaluate(m, x[:1], [exact], ["sparseness"], target=0, baselines=False)
    t = card.table
    assert t.column_names == ["image", "label", "method", "metric", "value", "better", "params"]
    assert t.num_rows == 1 and t.column("label").to_pylist() == ["a (0)"]


def test_mask_metrics_and_errors(linear):
    m, x, exact = linear
    mask = torch.zeros(8, 8, dtype=torch.bool)
    mask[:4] = True
    card = evaluate(m, x, [exact], ["relevance_mass"], target=1, mask=mask)
    e = exact(m, x, torch.tensor([1, 1, 1])).abs()
    assert np.allclose(card.value("relevance_mass", "exact"), (e[:, :4].sum((1, 2)) / e.sum((1, 2))).numpy())
    with pytest.raises(ConvlensError, match="mask"):
        evaluate(m, x, [exact], ["pointing_game"])
    with pytest.raises(ConvlensError, match="unknown metric 'delition'"):
        evaluate(m, x, [exact], ["delition"])
    with pytest.raises(ConvlensError, match="unknown method 'salincy'"):
        evaluate(m, x, ["salincy"], ["sparseness"])
    with pytest.raises(ConvlensError, match="not asked for"):
        evaluate(m, x, [exact], ["sparseness"], configs={"deletion": {"steps": 3}})
    with pytest.raises(ConvlensError, match="steps"):
        evaluate(m, x, [exact], ["deletion"], configs={"deletion": {"steps": 0}})


def test_on_a_real_network_gradcam_beats_random_on_insertion(offline_model, cat):
    """The cat on MobileNetV2 (the offline ImageNet weights): Grad-CAM's insertion AUC is above the
    random map's (measured 0.74 vs 0.32 at 25 steps), and the curves plot."""
    card = evaluate(offline_model, cat, ["grad_cam"], ["insertion"], configs={"insertion": {"steps": 12}})
    assert card.mean("insertion", "grad_cam") > card.mean("insertion", "random") + 0.1
    img = np.asarray(card.plot())
    assert img.ndim == 3 and img.std() > 10


def test_every_metric_kind_is_called_by_its_convention(linear):
    """A metric of kind "model" without a one-pass runner gets each map; a metric of kind "explainer"
    gets each method as a function it can call again (here: the map of the image shifted by one)."""
    from convlens.faithfulness import METRICS, Metric, register
    m, x, exact = linear
    seen = []

    def per_map(model, images, maps, target=None, config=None, progress=None):
        seen.append(("model", maps.shape))
        return maps.flatten(1).sum(1)

    def re_explain(model, images, explain, target=None, config=None, progress=None):
        again = explain(model, images.roll(1, -1), target)
        return (again - explain(model, images, target)).abs().flatten(1).max(1).values

    try:
        register(Metric("test_sum", "model", per_map, "higher", "sum", "-"))
        register(Metric("test_shift", "explainer", re_explain, "lower", "shift", "-"))
        card = evaluate(m, x, [exact], ["test_sum", "test_shift"], target=1)
    finally:
        METRICS.pop("test_sum", None)
        METRICS.pop("test_shift", None)
    maps = exact(m, x, torch.tensor([1, 1, 1]))
    assert np.allclose(card.value("test_sum", "exact"), maps.flatten(1).sum(1).numpy())
    want = (exact(m, x.roll(1, -1), torch.tensor([1, 1, 1])) - maps).abs().flatten(1).max(1).values
    assert np.allclose(card.value("test_shift", "exact"), want.numpy())
    assert card.value("test_shift", "random").min() > 0.1     # the random map is drawn anew for a new input
    assert seen == [("model", (3, 8, 8))] * 3
