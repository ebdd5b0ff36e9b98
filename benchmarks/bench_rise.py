"""RISE and Score-CAM through the perturbation driver vs plain torch loops (issue 22, item 7).

* RISE, 4,000 masks (400 with --quick) on MobileNetV2 (offline weights) at 224 px: ``convlens.rise`` (masks
  built a chunk at a time, chunks sized to memory, the ONNX Runtime switch) vs a straightforward torch loop
  over batches of 64 of the same masks (``RiseMasks``), ``no_grad``, softmax, ``probs @ masks``.
* Score-CAM on the same model and image, the default layer (features.18, 1,280 channels; features.14, 160
  channels, with --quick): ``convlens.score_cam`` vs the authors' loop (one masked image per forward, as
  haofanwang/Score-CAM), the same masks and baseline.

Each side gets one warm-up call (the ONNX export is made then, as a second run of a user would find it)
and the best of ``rounds`` alternated calls is kept; the maps' largest difference is reported (float32
torch vs onnxruntime: ~1e-6 of the map's range).
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from .common import Row, race

warnings.filterwarnings("ignore")


def run(quick: bool) -> list[Row]:
    import convlens
    m = convlens.load_model()
    cat = convlens.sample_image("chelsea", 224)
    return _rise(m, cat, quick) + _score_cam(m, cat, quick)


def _plain_rise(m, x, t, masks, batch: int = 64) -> torch.Tensor:
    """The plain loop: the same masks, a batch at a time, through the model in torch."""
    H, W = x.shape[-2:]
    sal = torch.zeros(H * W, dtype=torch.float64)
    with torch.no_grad():
        for i in range(0, len(masks), batch):
            mk = masks[i:i + batch]
            probs = m(x * mk[:, None].float()).softmax(-1)[:, t].double()
            sal += probs @ mk.view(len(mk), -1)
    return (sal / (len(masks) * masks.p)).view(H, W)


def _rise(m, x, quick: bool) -> list[Row]:
    import convlens
    from convlens.attribution.rise import RiseMasks
    n = 400 if quick else 4000
    t = int(m(x).argmax())
    masks = RiseMasks(n, (224, 224), 8, 0.5, seed=0)
    out = {}
    best = race({"ours": lambda: out.__setitem__("ours", convlens.rise(m, x, t, masks=n)),
                 "plain": lambda: out.__setitem__("plain", _plain_rise(m, x, t, masks))}, rounds=1)
    r = out["ours"]
    diff = float((r.map[0] - out["plain"]).abs().max())
    span = float(r.map.max() - r.map.min())
    return [Row(f"RISE {n} masks, MobileNetV2 224 px: convlens.rise vs a plain torch loop (batches of 64, same masks)",
                best["ours"], best["plain"], "s", "plain torch loop", "report", higher_is_better=False,
                note=f"backend {r.info['backend']}, auto chunk; max abs diff {diff:.1e} (map range {span:.3f})")]


def _plain_score_cam(m, x, t, layer) -> torch.Tensor:
    """The authors' loop: one channel, one masked image, one forward at a time; the paper's black baseline."""
    import convlens
    with torch.no_grad(), convlens.Probe(m, layer, detach=True) as p:
        p.run(x)
        A = p[layer][0].detach().clone()
    with torch.no_grad():
        base = m(torch.zeros_like(x)).softmax(-1)[0, t]
        cam = torch.zeros(A.shape[1:], dtype=torch.float64)
        for k in range(A.shape[0]):
            up = F.interpolate(A[k][None, None], size=x.shape[-2:], mode="bilinear", align_corners=False)
            if up.max() == up.min():
                continue
            score = m(x * (up - up.min()) / (up.max() - up.min())).softmax(-1)[0, t]
            cam += float(score - base) * A[k].double()
    return torch.relu(cam)


def _score_cam(m, x, quick: bool) -> list[Row]:
    import convlens
    layer = "features.14" if quick else "features.18"
    t = int(m(x).argmax())
    out = {}
    best = race({"ours": lambda: out.__setitem__("ours", convlens.score_cam(m, x, t, layer=layer)),
                 "plain": lambda: out.__setitem__("plain", _plain_score_cam(m, x, t, layer))}, rounds=1)
    r = out["ours"]
    diff = float((r.map[0].double() - out["plain"]).abs().max())
    span = float(out["plain"].max())
    return [Row(f"Score-CAM {layer} ({r.info['channels']} channels, {r.info['live_channels']} live), MobileNetV2 "
                "224 px: convlens.score_cam vs the authors' per-channel loop", best["ours"], best["plain"], "s",
                "per-channel loop", "report", higher_is_better=False,
                note=f"backend {r.info['backend']}; max abs diff {diff:.1e} (map max {span:.3g})")]
