"""Identical HOG, different images (Tatu, Lecumberry, Sapiro & Randall 2011, "Exploring the
representation capabilities of the HOG descriptor"): the lecture's "these results were around
before ConvNets". A differentiable HOG equal to ``skimage.feature.hog``, and an optimization that
gives one image the HOG of another while its pixels stay close to where they started.

``hog`` reproduces scikit-image's algorithm step by step (``skimage/feature/_hog.py`` and
``_hoghistogram.pyx``):
  1. gradients by central differences, zero on the image border: ``g_r[i] = I[i+1] - I[i-1]``;
     for colour images, at each pixel the channel with the largest gradient magnitude
     (``channel_axis=-1`` in skimage);
  2. magnitude ``hypot(g_r, g_c)``, orientation ``atan2(g_r, g_c)`` in degrees modulo 180;
  3. each pixel votes its magnitude into ONE orientation bin ``[180 k / B, 180 (k+1) / B)`` of its
     cell (no interpolation); a cell's histogram is the mean over its pixels;
  4. blocks of cells normalized (L1, L1-sqrt, L2 or L2-Hys with eps = 1e-5, clip 0.2), flattened.
The hard vote (3) has zero derivative with respect to the orientation. For the optimization the
backward pass uses a soft vote instead (linear interpolation between the two nearest bin centres,
Dalal & Triggs 2005) while the forward value stays exactly skimage's (a straight-through estimator,
``soft_grad=True``); with ``soft_grad=False`` gradients flow through the magnitudes only.

Settings tested equal to skimage (to 1e-5, tests/test_adversarial_hog.py): orientations 9 and 6,
pixels_per_cell (8, 8) and (6, 6), cells_per_block (2, 2) and (3, 3), all four block norms,
grey and RGB images, float64 input. ``transform_sqrt`` is supported (sqrt of the image first).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConvlensError
from ..progress import ProgressFn, call
from ..render import grid

BLOCK_NORMS = ("L1", "L1-sqrt", "L2", "L2-Hys")


def _as_nchw(images: torch.Tensor) -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        images = torch.as_tensor(np.asarray(images))
    if images.ndim == 2:
        images = images[None, None]
    elif images.ndim == 3:
        images = images[:, None] if images.shape[0] not in (1, 3) else images[None]
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ConvlensError(f"HOG takes (H, W), (N, H, W), (N, 1, H, W) or (N, 3, H, W) images, got {tuple(images.shape)}")
    return images


def _gradients(x: torch.Tensor):
    """Central differences with zero borders, per channel: (g_row, g_col), each (N, C, H, W)."""
    gr = torch.zeros_like(x)
    gc = torch.zeros_like(x)
    gr[..., 1:-1, :] = x[..., 2:, :] - x[..., :-2, :]
    gc[..., :, 1:-1] = x[..., :, 2:] - x[..., :, :-2]
    return gr, gc


def _magnitude(gr: torch.Tensor, gc: torch.Tensor) -> torch.Tensor:
    sq = gr * gr + gc * gc
    pos = sq > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, sq, torch.ones_like(sq))), torch.zeros_like(sq))


def cell_histograms(images: torch.Tensor, orientations: int = 9, pixels_per_cell=(8, 8), soft_grad: bool = True,
                    transform_sqrt: bool = False, temperature: float | None = None,
                    smooth: bool = False) -> torch.Tensor:
    """Orientation histograms of the cells, (N, cells_row, cells_col, orientations), as skimage's.

    ``temperature`` (degrees): the backward pass differentiates a smoothed box vote,
    ``sigmoid((o - lo_k) / T) - sigmoid((o - hi_k) / T)`` (circular), instead of the linear
    interpolation; the value is still the hard vote. Small T concentrates the gradient on pixels near a
    bin edge, the ones a small change can move. ``smooth`` (with ``temperature``): the value is the
    smoothed vote too, a smooth function of the pixels that tends to the hard vote as T -> 0 (what
    ``hog_match`` minimizes with L-BFGS)."""
    x = _as_nchw(images)
    if transform_sqrt:
        x = torch.sqrt(x)
    gr, gc = _gradients(x)
    mag = _magnitude(gr, gc)
    if x.shape[1] > 1:  # the dominant channel per pixel (first one on ties, as numpy's argmax)
        idx = mag.argmax(1, keepdim=True)
        gr, gc, mag = gr.gather(1, idx), gc.gather(1, idx), mag.gather(1, idx)
    gr, gc, mag = gr[:, 0], gc[:, 0], mag[:, 0]
    N, H, W = mag.shape
    cr, cc = (int(v) for v in pixels_per_cell)
    nr, nc = H // cr, W // cc
    if nr < 1 or nc < 1:
        raise ConvlensError(f"image {H}x{W} is smaller than one cell {cr}x{cc}")
    mag, gr, gc = (t[:, :nr * cr, :nc * cc] for t in (mag, gr, gc))
    ori = torch.rad2deg(torch.atan2(gr, gc)) % 180  # [0, 180)
    width = 180.0 / orientations
    # skimage compares in float32: bin k holds  k*width <= ori < (k+1)*width  (thresholds as float32)
    edges = (torch.arange(orientations + 1, dtype=torch.float32) * np.float32(width)).to(ori.dtype).to(ori.device)
    hard_bin = (torch.bucketize(ori.detach(), edges, right=True) - 1).clamp(0, orientations - 1)
    hard = F.one_hot(hard_bin, orientations).to(mag.dtype) * mag[..., None]
    votes = hard
    if temperature:  # a smoothed box vote for the backward pass (straight-through): sharper as T -> 0
        k = torch.arange(orientations, dtype=ori.dtype, device=ori.device)
        lo_e, hi_e = k * width, (k + 1) * width
        box = 0
        for shift in (-180.0, 0.0, 180.0):  # circular: orientations wrap at 180
            o = ori[..., None] + shift
            box = box + torch.sigmoid((o - lo_e) / temperature) - torch.sigmoid((o - hi_e) / temperature)
        soft = box * mag[..., None]
        votes = soft if smooth else hard + (soft - soft.detach())
    elif soft_grad:  # linear interpolation between the two nearest bin centres (circular), for the backward only
        pos = ori / width - 0.5
        lo = torch.floor(pos.detach())
        frac = pos - lo
        lo_i = lo.long() % orientations
        hi_i = (lo_i + 1) % orientations
        soft = (F.one_hot(lo_i, orientations).to(mag.dtype) * (1 - frac)[..., None]
                + F.one_hot(hi_i, orientations).to(mag.dtype) * frac[..., None]) * mag[..., None]
        votes = hard + (soft - soft.detach())
    v = votes.view(N, nr, cr, nc, cc, orientations)
    return v.sum((2, 4)) / (cr * cc)


def _normalize_blocks(blocks: torch.Tensor, method: str, eps: float = 1e-5, soft_grad: bool = False) -> torch.Tensor:
    """blocks (..., br, bc, B): skimage's _hog_normalize_block over the last three dims. ``soft_grad``:
    the L2-Hys clip at 0.2 passes gradients (straight-through), so clipped entries are not stuck."""
    dims = (-3, -2, -1)
    if method == "L1":
        return blocks / (blocks.abs().sum(dims, keepdim=True) + eps)
    if method == "L1-sqrt":
        return torch.sqrt(blocks / (blocks.abs().sum(dims, keepdim=True) + eps))
    if method == "L2":
        return blocks / torch.sqrt((blocks ** 2).sum(dims, keepdim=True) + eps ** 2)
    if method == "L2-Hys":
        out = blocks / torch.sqrt((blocks ** 2).sum(dims, keepdim=True) + eps ** 2)
        clipped = torch.clamp(out, max=0.2)
        out = out + (clipped - out).detach() if soft_grad else clipped
        return out / torch.sqrt((out ** 2).sum(dims, keepdim=True) + eps ** 2)
    raise ConvlensError(f"unknown block_norm '{method}'; choose one of {', '.join(BLOCK_NORMS)}")


def hog(images, orientations: int = 9, pixels_per_cell=(8, 8), cells_per_block=(2, 2), block_norm: str = "L2-Hys",
        transform_sqrt: bool = False, feature_vector: bool = True, soft_grad: bool = True,
        temperature: float | None = None, smooth: bool = False) -> torch.Tensor:
    """Histogram of oriented gradients, equal to ``skimage.feature.hog`` and differentiable.

    Same arguments and defaults as skimage (except ``cells_per_block``, here Dalal & Triggs' (2, 2);
    skimage's default is (3, 3)). RGB images follow skimage's ``channel_axis=-1`` rule (the dominant
    channel per pixel); grey images are (N, 1, H, W) or (N, H, W).

    Args:
        images: (N, 3|1, H, W) or (N, H, W) or (H, W) tensor (any float dtype; float64 to compare with skimage).
        soft_grad: backward through a soft orientation vote (the forward value is unchanged).
    Returns:
        (N, D) features (``feature_vector``) or (N, blocks_r, blocks_c, cells_r, cells_c, orientations).
    Example:
        >>> h = hog(torch.rand(1, 1, 64, 64, dtype=torch.float64))   # == skimage.feature.hog(img, cells_per_block=(2, 2))
    """
    if orientations < 1:
        raise ConvlensError(f"orientations must be >= 1, got {orientations}")
    hist = cell_histograms(images, orientations, pixels_per_cell, soft_grad, transform_sqrt, temperature, smooth)
    br, bc = (int(v) for v in cells_per_block)
    N, nr, nc, B = hist.shape
    if nr < br or nc < bc:
        raise ConvlensError(f"the image is too small for blocks of {br}x{bc} cells: it has {nr}x{nc} cells")
    blocks = hist.unfold(1, br, 1).unfold(2, bc, 1)  # (N, nbr, nbc, B, br, bc)
    blocks = blocks.permute(0, 1, 2, 4, 5, 3)         # (N, nbr, nbc, br, bc, B)
    out = _normalize_blocks(blocks, block_norm, soft_grad=soft_grad)
    return out.reshape(N, -1) if feature_vector else out


def hog_picture(image, orientations: int = 9, pixels_per_cell=(8, 8), cells_per_block=(2, 2)) -> np.ndarray:
    """skimage's HOG visualization of one image (H, W) in [0, 1] (rescaled for display)."""
    from skimage.feature import hog as sk_hog
    x = _as_nchw(image)[0].detach().double().cpu().numpy()
    kw = dict(channel_axis=0) if x.shape[0] == 3 else {}
    x = x if x.shape[0] == 3 else x[0]
    _, pic = sk_hog(x, orientations=orientations, pixels_per_cell=pixels_per_cell, cells_per_block=cells_per_block,
                    visualize=True, **kw)
    return np.clip(pic / (np.percentile(pic, 99.5) + 1e-12), 0, 1)


@dataclass
class HogMatchConfig:
    """Parameters of ``hog_match``. HOG: 9 bins, L2-Hys, 2x2-cell blocks (Dalal & Triggs) with 16-pixel cells
    (8-pixel cells have 4x more constraints per pixel and converge to a few percent only; see the docs)."""

    size: int = field(default=128, metadata={"help": "images are resized (centre crop) to size x size, grey"})
    steps: int = field(default=600, metadata={"help": "optimization steps"})
    lr: float = field(default=0.01, metadata={"help": "Adam learning rate (pixel units), cosine-annealed to 10%"})
    temperature: tuple[float, float] = field(default=(5.0, 0.5), metadata={
        "help": "start,end width in degrees of the smoothed orientation vote used for gradients (annealed)"})
    pixel_weight: float = field(default=30.0, metadata={
        "help": "starting weight of the pull back to A (decoupled, AdamW-style); adapted each step: x1.03 "
                "while the HOG distance is below target, x0.97 above (0: no pull, the old behaviour)"})
    target: float = field(default=0.008, metadata={
        "help": "relative HOG distance to reach; the result is the closest-to-A step below it"})
    orientations: int = field(default=9, metadata={"help": "HOG orientation bins"})
    cell: int = field(default=16, metadata={"help": "HOG cell size in pixels"})
    block: int = field(default=2, metadata={"help": "HOG block size in cells"})


@dataclass
class HogMatch:
    """``image`` (1, 1, H, W) in [0, 1]: starts as ``a`` and ends with b's HOG; ``a``, ``b`` the grey
    inputs; ``distance`` = ||hog(image) - hog(b)|| / ||hog(b)|| (``start_distance`` at the start = for
    a), exact (skimage's HOG, float64); ``pixel_rms``: RMS pixel change from a (``psnr`` in dB);
    ``history`` of the distance; ``steps``; ``reached``: distance below the target."""

    image: torch.Tensor
    a: torch.Tensor
    b: torch.Tensor
    distance: float
    start_distance: float
    pixel_rms: float
    history: list[float]
    steps: int
    config: HogMatchConfig
    reached: bool = True

    @property
    def psnr(self) -> float:
        """PSNR of the result against A in dB (peak 1)."""
        return float("inf") if self.pixel_rms == 0 else -20 * float(np.log10(self.pixel_rms))

    def render(self, tile: int = 192):
        """Row: A | the result | B, then their HOG pictures below."""
        c = self.config
        kw = dict(orientations=c.orientations, pixels_per_cell=(c.cell, c.cell), cells_per_block=(c.block, c.block))

        def grey3(t):
            return t[0].float().clamp(0, 1).expand(3, -1, -1)
        pics = [torch.from_numpy(hog_picture(t, **kw)).float()[None].expand(3, -1, -1) for t in (self.a, self.image, self.b)]
        tiles = [grey3(self.a), grey3(self.image), grey3(self.b)] + pics
        labels = ["A", f"changed A, PSNR {self.psnr:.1f} dB", "B",
                  f"HOG(A): {self.start_distance:.0%} from HOG(B)", f"its HOG: {self.distance:.2%} from HOG(B)",
                  "HOG(B)"]
        return grid(tiles, labels, ncol=3, tile=tile, upscale="bilinear")


def to_grey(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 1, H, W) with skimage's rgb2gray weights (0.2125, 0.7154, 0.0721)."""
    if images.shape[1] == 1:
        return images
    w = torch.tensor([0.2125, 0.7154, 0.0721], dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * w).sum(1, keepdim=True)


def hog_match(a: torch.Tensor, b: torch.Tensor, config: HogMatchConfig | None = None, *,
              progress: ProgressFn | None = None, **overrides) -> HogMatch:
    """Give grey image ``a`` the HOG of ``b`` while its pixels stay close to ``a`` (Tatu et al. 2011).

    x = a + d, d from 0; each step an Adam step on ``||hog(x) - hog(b)||^2 / ||hog(b)||^2`` (x clipped
    to [0, 1]; the exact HOG as the value, a smoothed orientation vote of annealed width for the
    gradient, ``cell_histograms(temperature=...)``) and a decoupled pull ``d <- (1 - lr * w) d`` back
    to a (AdamW's weight decay on d). The weight w adapts: x0.97 per step while the distance is above
    ``target``, x1.03 below, so the run hovers at the target and the pull removes whatever change the
    HOG does not need. The result is the step with the smallest pixel change among those below the
    target (the closest-to-target step if none), then the affine map ``s x + c`` nearest to a by least
    squares when it stays in [0, 1]: HOG is invariant to it (gradients scale, blocks are normalized)
    up to the 1e-5 normalization epsilon. The loop runs in float32; ``distance`` is recomputed exactly.

    Args:
        a: (1, 3|1, H, W) image in [0, 1] (colour is turned grey).
        b: the same, of the same size.
    Returns:
        ``HogMatch`` (the image, both distances, the pixel change and PSNR vs a; ``render()`` draws
        A | result | B over their HOG pictures).
    Example:
        >>> r = hog_match(convlens.sample_image("rocket", 128), convlens.sample_image("astronaut", 128))
    """
    cfg = replace(config or HogMatchConfig(), **overrides)
    if a.shape[-2:] != b.shape[-2:]:
        raise ConvlensError(f"images A and B must have the same size, got {tuple(a.shape[-2:])} and {tuple(b.shape[-2:])}")
    if cfg.steps < 1 or cfg.lr <= 0 or cfg.pixel_weight < 0 or cfg.target <= 0:
        raise ConvlensError(f"need steps >= 1, lr > 0, pixel_weight >= 0, target > 0; got steps={cfg.steps}, "
                            f"lr={cfg.lr}, pixel_weight={cfg.pixel_weight}, target={cfg.target}")
    a = to_grey(_as_nchw(a)[:1].detach().double()).clamp(0, 1)
    b = to_grey(_as_nchw(b)[:1].detach().double())
    kw = dict(orientations=cfg.orientations, pixels_per_cell=(cfg.cell, cfg.cell), cells_per_block=(cfg.block, cfg.block))
    hb = hog(b, **kw)
    nb = float(hb.norm())
    dist = lambda img: float((hog(img, **kw) - hb).norm()) / nb  # noqa: E731 - exact, float64
    t0, t1 = (float(v) for v in cfg.temperature)
    a32, hb32 = a.float(), hb.float()
    d = torch.zeros_like(a32, requires_grad=True)
    opt = torch.optim.AdamW([d], lr=cfg.lr, weight_decay=cfg.pixel_weight)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps, eta_min=cfg.lr * 0.1)
    start_d = dist(a)
    history: list[float] = []
    best, best_key = a32.clone(), (1, start_d)  # (not below target, distance) or (0, pixel change)
    steps = 0
    try:
        for k in range(cfg.steps):
            temp = t0 * (t1 / t0) ** (k / max(1, cfg.steps - 1)) if t0 > 0 else None
            with torch.enable_grad():
                x = (a32 + d).clamp(0, 1)
                loss = ((hog(x, temperature=temp, **kw) - hb32) ** 2).sum() / nb ** 2
                dk = float(loss.detach().sqrt())  # the exact HOG's distance (the vote only shapes gradients)
                (g,) = torch.autograd.grad(loss, d)
            history.append(dk)
            below = dk < cfg.target
            key = (0, float(((x.detach() - a32) ** 2).mean())) if below else (1, dk)
            if key < best_key:
                best, best_key = x.detach().clone(), key
            for group in opt.param_groups:
                group["weight_decay"] *= 1.03 if below else 0.97
            d.grad = g
            opt.step()
            sched.step()
            steps = k + 1
            call(progress, steps, cfg.steps)
    except KeyboardInterrupt:
        pass
    best = best.double()
    cand = [best]
    X = torch.stack([best.flatten(), torch.ones_like(best.flatten())], 1)
    s_, c_ = torch.linalg.lstsq(X, a.flatten()[:, None]).solution[:, 0].tolist()
    fitted = s_ * best + c_
    if s_ > 0 and float(fitted.min()) >= 0 and float(fitted.max()) <= 1:
        cand.append(fitted)
    scored = [(0 if dist(c) < cfg.target * 1.25 else 1, float(((c - a) ** 2).mean()), i) for i, c in enumerate(cand)]
    best = cand[min(scored)[2]]
    best_d = dist(best)
    rms = float(((best - a) ** 2).mean().sqrt())
    return HogMatch(best, a, b, best_d, start_d, rms, history, steps, cfg, reached=best_d < cfg.target * 1.25)
