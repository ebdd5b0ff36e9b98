"""Driver 3, fast: many *local* perturbations of one image through a CNN, recomputing only what changed.

Incremental inference, the idea of Krypton (Nakandala, Kumar & Papakonstantinou, SIGMOD 2019): hiding a
16x16 window changes a small box of the early feature maps, so most of an occlusion pass repeats the
clean image's work.

How:
1. The forward-only twin of the model (batch norms folded, channels_last; ``inference_twin``) is traced
   with ``torch.fx`` and cut at its *single-tensor points* (nodes through which every value later nodes
   need passes) into segments.
2. Each segment's receptive field (size, stride, offset per axis, in its input's units) follows from the
   geometry of its ops: convolutions and pools compose, pointwise ops keep it, adds and channel
   concatenations take the union (``probe/geometry.py``, shared with ``receptive_field``). Any op whose
   geometry is not known there (global pooling, flatten, squeeze-excitation gates, ...) makes the
   segment *global*: from it on the network runs whole.
3. The clean image runs once; its activation at every cut is kept. A perturbed image differs from the
   clean one inside a box of the input, so at the next cut it differs only inside the box of units whose
   field meets it, and so on. Each local segment runs on a crop of its clean input with the changed
   values pasted in, and keeps only the changed units; once the crop would cover most of the map, the
   changed box is pasted into the whole clean map and the rest of the network runs as usual.
4. Exactness: a crop starts at a multiple of the segment's stride and either lies inside the map or ends
   on its border, so every kept unit sees exactly the inputs and the padding it sees in the whole pass.
   The result equals the whole forward pass up to float rounding; ``IncrementalNet.check`` compares
   the two on probe perturbations, and callers fall back to whole passes if they differ.
5. Cost: ``IncrementalPass.cost(window)`` estimates an incremental pass's FLOPs as a fraction of a whole
   pass's (each segment's FLOPs, counted once, weighted by the share of its map the crop covers), the
   cost model occlusion's ``incremental="auto"`` starts from.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
import torch.fx as fx
from torch import nn

from ..probe.geometry import CONST, GLOBAL, IDENTITY, node_field, shape
from ..probe.receptive_field import ReceptiveField
from .forward import inference_twin


@dataclass
class Segment:
    """A piece of the network between two cut points: ``module(x)`` maps the activation at one cut to
    the next; ``field`` is the receptive field of its output units in its input's units (or GLOBAL)."""

    module: nn.Module
    field: object

    @property
    def local(self) -> bool:
        return self.field is not GLOBAL and self.field is not CONST


def _subgraph(gm: fx.GraphModule, nodes: list[fx.Node], start: fx.Node) -> fx.GraphModule:
    """The nodes ``nodes`` (in order) as a module whose single input is ``start``'s value."""
    g = fx.Graph()
    env = {start: g.placeholder("x")}

    def arg(m):
        if m not in env:  # parameters and constants read by this segment (get_attr nodes)
            env[m] = g.node_copy(m, arg)
        return env[m]
    for n in nodes:
        env[n] = g.node_copy(n, arg)
    g.output(env[nodes[-1]])
    return fx.GraphModule(gm, g)


def split(gm: fx.GraphModule, example: torch.Tensor) -> list[Segment]:
    """Cut a traced network into segments at its single-tensor points (see the module docstring)."""
    from torch.fx.passes.shape_prop import ShapeProp

    with torch.inference_mode():
        ShapeProp(gm).propagate(example.clone())
    nodes = [n for n in gm.graph.nodes if n.op not in ("get_attr", "output")]
    out = next(n for n in gm.graph.nodes if n.op == "output")
    if len(nodes) < 2 or nodes[0].op != "placeholder" or sum(n.op == "placeholder" for n in nodes) != 1 \
            or not isinstance(out.args[0], fx.Node) or out.args[0] is not nodes[-1]:
        raise ValueError("the network is not a single-input, single-output chain of ops")
    index = {n: i for i, n in enumerate(nodes)}
    cuts, live_until = [nodes[0]], 0
    for i, n in enumerate(nodes):
        if i > 0 and live_until <= i and shape(n) is not None:
            cuts.append(n)
        live_until = max(live_until, max((index.get(u, len(nodes)) for u in n.users), default=i))
    if cuts[-1] is not nodes[-1]:
        raise ValueError("the network's output is not a cut point")
    modules = dict(gm.named_modules())
    pieces: list[tuple[fx.Node, list[fx.Node], object]] = []  # (start cut, nodes, field)
    for a, b in zip(cuts[:-1], cuts[1:]):
        body = nodes[index[a] + 1:index[b] + 1]
        fields = {a: IDENTITY}
        for n in body:
            fields[n] = node_field(n, fields, modules)
        prev = pieces[-1][2] if pieces else None
        # merge a pointwise piece into the local one before it; after the first global piece, all is global
        if prev is not None and (prev in (GLOBAL, CONST) or fields[b] == IDENTITY):
            pieces[-1][1].extend(body)
        else:
            pieces.append((a, list(body), fields[b]))
    return [Segment(_subgraph(gm, body, start), field) for start, body, field in pieces]


def _ceil_div(a: torch.Tensor, b: int) -> torch.Tensor:
    return -torch.div(-a, b, rounding_mode="floor")


class IncrementalNet:
    """A model prepared for incremental passes: ``IncrementalNet(model).at(image).logits(pos, patches)``.

    Raises ``ValueError`` when the network cannot be traced or split (callers then use whole passes).
    """

    def __init__(self, model, channels_last: bool = True, fuse_bn: bool = True, crop_limit: float = 0.8):
        self.twin = inference_twin(model, channels_last, fuse_bn)
        self.format = torch.channels_last if channels_last else torch.contiguous_format
        net = self.twin.net
        try:
            gm = net if isinstance(net, fx.GraphModule) else fx.symbolic_trace(net)
        except Exception as e:  # noqa: BLE001 - data-dependent control flow and the like
            raise ValueError(f"cannot trace the network with torch.fx ({type(e).__name__})") from e
        example = torch.rand(1, model.mean.shape[1], *model.input_size, dtype=model.mean.dtype,
                             device=model.device)
        self.segments = split(gm, (example - self.twin.mean) / self.twin.std)
        self.crop_limit = crop_limit
        self.flops = _segment_flops(self.segments, (example - self.twin.mean) / self.twin.std, self.format)
        self.check(example)

    def check(self, image: torch.Tensor, size: int = 8, rtol: float = 1e-4) -> None:
        """Compare incremental and whole passes on two boxes (a corner and the middle) of ``image``;
        raise ``ValueError`` if they differ by more than float rounding."""
        H, W = image.shape[-2:]
        size = min(size, H, W)
        pos = torch.tensor([[0, 0], [(H - size) // 2, (W - size) // 2]])
        patches = torch.rand(2, image.shape[1], size, size, dtype=image.dtype, device=image.device,
                             generator=torch.Generator(device=image.device).manual_seed(0))
        whole = image.expand(2, -1, -1, -1).clone()
        for b, (y, x) in enumerate(pos.tolist()):
            whole[b, :, y:y + size, x:x + size] = patches[b]
        with torch.inference_mode():
            ref = self.twin(whole.contiguous(memory_format=self.format))
        got = self.at(image).logits(pos, patches)
        if got.shape != ref.shape or float((got - ref).abs().max()) > rtol * (float(ref.abs().max()) + 1e-12):
            raise ValueError("incremental and whole passes disagree on this network")

    def at(self, image: torch.Tensor) -> "IncrementalPass":
        """Run the clean ``image`` (1, 3, H, W) in [0, 1] once; perturbations of it then cost less."""
        return IncrementalPass(self, image)


def _segment_flops(segments: list[Segment], x: torch.Tensor, fmt) -> list[float]:
    """FLOPs of each segment on ``x`` (one counted forward; the cost model's weights)."""
    from torch.utils.flop_counter import FlopCounterMode
    out = []
    with torch.inference_mode():
        a = x.contiguous(memory_format=fmt)
        for seg in segments:
            with FlopCounterMode(display=False) as fc:
                a = seg.module(a.clone(memory_format=fmt))
            out.append(float(fc.get_total_flops()))
    return out


class IncrementalPass:
    """The clean activations of one image at every cut, and ``logits(pos, patches)`` for its perturbations."""

    def __init__(self, net: IncrementalNet, image: torch.Tensor):
        self.net = net
        twin = net.twin
        with torch.inference_mode():
            a = ((image - twin.mean) / twin.std).contiguous(memory_format=net.format)
            self.clean = [a]
            for seg in net.segments:
                a = seg.module(a.clone(memory_format=net.format))  # clone: in-place ops must not touch kept maps
                self.clean.append(a)

    def logits(self, pos: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        """Logits of the images equal to the clean one except ``patches[b]`` (B, 3, h, w), pixels in [0, 1],
        placed with its top-left corner at ``pos[b]`` = (y, x) (the box must lie inside the image)."""
        net, twin = self.net, self.net.twin
        H, W = self.clean[0].shape[-2:]
        h, w = patches.shape[-2:]
        pos = pos.to(torch.long).cpu()
        if int(pos.min()) < 0 or int(pos[:, 0].max()) + h > H or int(pos[:, 1].max()) + w > W:
            raise ValueError("patch boxes must lie inside the image")
        with torch.inference_mode():
            data = (patches.to(self.clean[0]) - twin.mean) / twin.std
            for k, seg in enumerate(net.segments):
                A = self.clean[k]
                if not seg.local or A.ndim != 4:
                    return self._whole(k, pos, data)
                plan = _plan(seg.field, pos, data.shape[-2:], A.shape[-2:], self.clean[k + 1].shape[-2:])
                if plan is None or plan.crop[0] * plan.crop[1] > net.crop_limit * A.shape[-2] * A.shape[-1]:
                    return self._whole(k, pos, data)
                crops = _gather(A[0], plan.start, plan.crop, extra=1)
                _paste(crops, pos - plan.start, data)
                crop = crops[:, :, :plan.crop[0], :plan.crop[1]].contiguous(memory_format=net.format)
                out = seg.module(crop)
                rel = plan.out_pos - torch.div(plan.start, torch.tensor(seg.field.stride), rounding_mode="floor")
                data = _gather_batched(out, rel, plan.out_size)
                pos = plan.out_pos
            return self._whole(len(net.segments), pos, data)  # a fully local net: paste into the clean output

    def cost(self, size) -> float:
        """FLOPs of an incremental pass for an (h, w) box in the middle of the image, as a fraction of a
        whole pass's: each local segment before the switch to whole maps costs its FLOPs times the
        fraction of its input map its crop covers; from the switch on, the full FLOPs."""
        net = self.net
        H, W = self.clean[0].shape[-2:]
        h, w = min(int(size[0]), H), min(int(size[1]), W)
        pos = torch.tensor([[(H - h) // 2, (W - w) // 2]])
        total, spent = sum(net.flops), 0.0
        for k, seg in enumerate(net.segments):
            A = self.clean[k]
            if not seg.local or A.ndim != 4:
                break
            plan = _plan(seg.field, pos, (h, w), A.shape[-2:], self.clean[k + 1].shape[-2:])
            frac = plan.crop[0] * plan.crop[1] / (A.shape[-2] * A.shape[-1]) if plan is not None else 1.0
            if plan is None or frac > net.crop_limit:
                break
            spent += net.flops[k] * frac
            pos, (h, w) = plan.out_pos, plan.out_size
        else:
            k = len(net.segments)
        return (spent + sum(net.flops[k:])) / max(total, 1.0)

    def _whole(self, k: int, pos: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
        """Paste the changed box into the clean map at cut ``k`` and run the rest of the network whole."""
        A = self.clean[k]
        full = A.expand(data.shape[0], *A.shape[1:]).clone(memory_format=self.net.format)
        _paste(full, pos, data)
        for seg in self.net.segments[k:]:
            full = seg.module(full)
        return full


@dataclass
class _Plan:
    out_pos: torch.Tensor   # (B, 2) top-left of the changed box at the segment's output
    out_size: tuple         # its (h, w), the same for the batch
    start: torch.Tensor     # (B, 2) top-left of the input crop
    crop: tuple             # the crop's (h, w)


def _plan(field: ReceptiveField, pos: torch.Tensor, size, in_hw, out_hw):
    """Which output units a changed box reaches, and the input crop that computes them exactly."""
    out_pos, out_size, start, crop = [], [], [], []
    for a in (0, 1):
        s, t, o = field.size[a], field.stride[a], field.offset[a]
        p, L, n_in, n_out = pos[:, a], int(size[a]), int(in_hw[a]), int(out_hw[a])
        lo = _ceil_div(p - o - s + 1, t).clamp(min=0)
        hi = torch.div(p + L - 1 - o, t, rounding_mode="floor").clamp(max=n_out - 1)
        if bool((hi < lo).any()):
            return None  # a change no output unit sees (e.g. a strided 1x1 conv skipping it): run whole
        n = int((hi - lo + 1).max())
        q = lo.clamp(max=n_out - n)
        shift = min(0, o // t)  # crops start at multiples of the stride, at or before the first unit's field
        need = o - shift * t + (n - 1) * t + s
        length = min(n_in, need + (n_in - need) % t)  # bottom crops end on the border, still aligned
        c0 = ((q + shift) * t).clamp(min=0, max=n_in - length)
        out_pos.append(q), out_size.append(n), start.append(c0), crop.append(length)
    return _Plan(torch.stack(out_pos, 1), tuple(out_size), torch.stack(start, 1), tuple(crop))


def _gather(A: torch.Tensor, start: torch.Tensor, size, extra: int = 0) -> torch.Tensor:
    """Crops ``A[:, y:y+h, x:x+w]`` of a (C, H, W) map at each start (B, 2): (B, C, h+extra, w+extra);
    the extra last row and column are scratch space for ``_paste``."""
    h, w = size
    rows = (start[:, 0, None] + torch.arange(h)).to(A.device)
    cols = (start[:, 1, None] + torch.arange(w)).to(A.device)
    g = A[:, rows[:, :, None], cols[:, None, :]].permute(1, 0, 2, 3)  # (B, C, h, w)
    if not extra:
        return g
    out = g.new_empty(g.shape[0], g.shape[1], h + extra, w + extra)
    out[:, :, :h, :w] = g
    return out


def _gather_batched(X: torch.Tensor, start: torch.Tensor, size) -> torch.Tensor:
    """Crop ``X[b, :, y_b:y_b+h, x_b:x_b+w]`` of each batch item: (B, C, h, w)."""
    h, w = size
    b = torch.arange(X.shape[0], device=X.device)[:, None, None]
    rows = (start[:, 0, None] + torch.arange(h)).to(X.device)[:, :, None]
    cols = (start[:, 1, None] + torch.arange(w)).to(X.device)[:, None, :]
    return X[b, :, rows, cols].permute(0, 3, 1, 2)


def _paste(X: torch.Tensor, pos: torch.Tensor, data: torch.Tensor) -> None:
    """``X[b, :, y_b:y_b+h, x_b:x_b+w] = data[b]``, in place; rows/columns falling outside ``X``'s
    last row/column (kept as scratch by ``_gather``) or below 0 land in that scratch row/column."""
    h, w = data.shape[-2:]
    H, W = X.shape[-2:]
    b = torch.arange(X.shape[0], device=X.device)[:, None, None]
    rows = pos[:, 0, None] + torch.arange(h)
    cols = pos[:, 1, None] + torch.arange(w)
    rows = torch.where((rows >= 0) & (rows < H), rows, H - 1).to(X.device)[:, :, None]
    cols = torch.where((cols >= 0) & (cols < W), cols, W - 1).to(X.device)[:, None, :]
    X[b, :, rows, cols] = data.permute(0, 2, 3, 1)


_NETS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def incremental_net(model, channels_last: bool = True, fuse_bn: bool = True) -> IncrementalNet | None:
    """The cached ``IncrementalNet`` of ``model``, or None when the network cannot be split."""
    twin = inference_twin(model, channels_last, fuse_bn)
    hit = _NETS.get(model)
    if hit is not None and hit[0] is twin:
        return hit[1]
    try:
        net = IncrementalNet(model, channels_last, fuse_bn)
    except ValueError:
        net = None
    _NETS[model] = (twin, net)
    return net
