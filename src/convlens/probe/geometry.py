"""Receptive-field geometry of a traced graph: each ``torch.fx`` node's field in its input's units.

The rules (shared by ``receptive_field``'s analytic path and ``drivers.incremental``):
  * a sliding window (Conv2d, MaxPool2d, AvgPool2d, their functional forms) maps a field
    (size r, stride j, offset o) to (r + (k - 1) d j, j s, o - p j) per axis;
  * pointwise ops (activations, batch norm, dropout, ...) keep it;
  * elementwise ops of several inputs (residual add, mul) and channel concatenations take the union
    of their inputs' fields (the bounding box: the max over branches), when their strides agree;
  * anything else (global or adaptive pooling, flatten, a squeeze-excitation gate, padding modes
    other than zeros, asymmetric "same" padding) makes the field GLOBAL: not known here.
"""
from __future__ import annotations

import copy
import operator
from dataclasses import dataclass

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ReceptiveField:
    """Unit (y, x) of the layer sees input rows ``offset[0] + y*stride[0]`` .. ``+ size[0] - 1``.

    ``offset`` can be negative: that part of the field lies in the padding.
    """

    size: tuple[int, int]
    stride: tuple[int, int]
    offset: tuple[int, int]

    def box(self, y: int, x: int) -> tuple[int, int, int, int]:
        """(top, left, bottom, right), bottom/right exclusive, in input pixels (may exceed the image)."""
        top = self.offset[0] + y * self.stride[0]
        left = self.offset[1] + x * self.stride[1]
        return top, left, top + self.size[0], left + self.size[1]

    def crop(self, image: torch.Tensor, y: int, x: int, fill: float = 0.0) -> torch.Tensor:
        """The input patch under unit (y, x) of ``image`` (..., H, W), padded with ``fill`` where the
        field leaves the image (never shifted to fit)."""
        top, left, bottom, right = self.box(y, x)
        H, W = image.shape[-2:]
        out = image.new_full((*image.shape[:-2], self.size[0], self.size[1]), fill)
        t, l, b, r = max(top, 0), max(left, 0), min(bottom, H), min(right, W)
        if b > t and r > l:
            out[..., t - top:b - top, l - left:r - left] = image[..., t:b, l:r]
        return out


# Ops that act on each spatial position alone (their output unit (y, x) reads input units (y, x) only).
POINTWISE_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
                     nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh, nn.Mish, nn.Softplus, nn.Hardtanh,
                     nn.Identity, nn.Dropout, nn.Dropout2d, nn.BatchNorm2d, nn.LocalResponseNorm)
POINTWISE_FUNCTIONS = {F.relu, F.relu6, F.hardtanh, F.hardswish, F.hardsigmoid, F.silu, F.gelu, F.elu,
                       F.leaky_relu, F.sigmoid, F.tanh, F.mish, F.dropout, torch.relu, torch.sigmoid, torch.tanh,
                       torch.clamp, operator.neg, torch.neg}
BINARY_FUNCTIONS = {operator.add, operator.iadd, operator.sub, operator.mul, operator.imul, operator.truediv,
                    torch.add, torch.sub, torch.mul, torch.div}
POINTWISE_METHODS = {"relu", "relu_", "sigmoid", "sigmoid_", "tanh", "clamp", "clamp_", "contiguous",
                     "hardtanh", "hardtanh_", "neg"}
BINARY_METHODS = {"add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_"}
# functional sliding windows: positions in ``args`` of (kernel, stride, padding, dilation)
_WINDOW_FUNCTIONS = {F.max_pool2d: (1, 2, 3, 4), F.avg_pool2d: (1, 2, 3, None)}

IDENTITY = ReceptiveField(size=(1, 1), stride=(1, 1), offset=(0, 0))
GLOBAL = "global"  # the unit depends on the whole input (or on something this module cannot see through)
CONST = "const"    # no dependence on the graph's input (parameters, constants)


def pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, float)) else (int(v[0]), int(v[1]))


def window(field: ReceptiveField, kernel, stride, padding, dilation) -> ReceptiveField:
    """The field after a sliding window op (conv / pool) applied to a map whose units have ``field``."""
    k, s, p, d = (pair(v) for v in (kernel, stride, padding, dilation))
    return ReceptiveField(
        size=tuple(field.size[a] + (k[a] - 1) * d[a] * field.stride[a] for a in (0, 1)),
        stride=tuple(field.stride[a] * s[a] for a in (0, 1)),
        offset=tuple(field.offset[a] - p[a] * field.stride[a] for a in (0, 1)))


def union(fields):
    """Field of a pointwise op of several inputs (add, mul, concat along channels)."""
    fields = [f for f in fields if f is not CONST]
    if not fields:
        return CONST
    if any(f is GLOBAL for f in fields) or len({f.stride for f in fields}) > 1:
        return GLOBAL
    lo = tuple(min(f.offset[a] for f in fields) for a in (0, 1))
    hi = tuple(max(f.offset[a] + f.size[a] for f in fields) for a in (0, 1))
    return ReceptiveField(size=(hi[0] - lo[0], hi[1] - lo[1]), stride=fields[0].stride, offset=lo)


def shape(node):
    meta = node.meta.get("tensor_meta")
    return tuple(meta.shape) if hasattr(meta, "shape") else None


def _window_args(node: fx.Node, mod):
    """(kernel, stride, padding, dilation) of a sliding-window node, or None when it is not one (or
    its padding is not plain zeros on both sides)."""
    if isinstance(mod, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        padding = mod.padding
        if isinstance(padding, str):  # "same" pads asymmetrically for even kernels: not modelled
            padding = 0 if padding == "valid" else None
        if padding is None or getattr(mod, "padding_mode", "zeros") != "zeros":
            return None
        return mod.kernel_size, mod.stride or mod.kernel_size, padding, getattr(mod, "dilation", 1)
    if node.op == "call_function" and node.target in _WINDOW_FUNCTIONS:
        names = ("kernel_size", "stride", "padding", "dilation")
        vals = []
        for name, i in zip(names, _WINDOW_FUNCTIONS[node.target]):
            v = node.kwargs.get(name, node.args[i] if i is not None and len(node.args) > i else None)
            vals.append(v)
        k, s, p, d = vals
        s = s if s not in (None, [], ()) else k
        return k, s, 0 if p is None else p, 1 if d is None else d
    return None


def node_field(node: fx.Node, fields: dict, modules: dict):
    """Receptive field of ``node``'s output in the graph input's units (GLOBAL when unknown);
    ``fields`` holds the fields of the nodes before it, ``modules`` the graph's named modules."""
    args = node.all_input_nodes
    ins = [fields.get(a, CONST) for a in args]
    if all(f is CONST for f in ins):
        return CONST
    out_shape = shape(node)
    if out_shape is None or len(out_shape) != 4:
        return GLOBAL
    mod = modules.get(node.target) if node.op == "call_module" else None
    if isinstance(mod, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)) or \
            (node.op == "call_function" and node.target in _WINDOW_FUNCTIONS):
        geometry = _window_args(node, mod)
        if ins[0] is GLOBAL or geometry is None or any(f is not CONST for f in ins[1:]):
            return GLOBAL
        return window(ins[0], *geometry)
    # pointwise and elementwise ops: every input that depends on the graph input has the output's size
    if any(f is not CONST and (shape(a) is None or shape(a)[-2:] != out_shape[-2:]) for a, f in zip(args, ins)):
        return GLOBAL
    if len(args) == 1 and (isinstance(mod, POINTWISE_MODULES) or
                           (node.op == "call_function" and node.target in POINTWISE_FUNCTIONS) or
                           (node.op == "call_method" and node.target in POINTWISE_METHODS)):
        return ins[0]
    if (node.op == "call_function" and node.target in BINARY_FUNCTIONS) or \
            (node.op == "call_method" and node.target in BINARY_METHODS):
        return union(ins)
    if node.op == "call_function" and node.target is torch.cat:
        dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
        return union(ins) if dim in (1, -3) else GLOBAL
    return GLOBAL


class _ModuleTracer(fx.Tracer):
    """A tracer that remembers which node holds each module's output (its last call, as ``Probe``)."""

    def __init__(self):
        super().__init__()
        self.outputs: dict[str, fx.Node] = {}

    def call_module(self, m, forward, args, kwargs):
        out = super().call_module(m, forward, args, kwargs)
        if isinstance(out, fx.Proxy):
            self.outputs[self.path_of_module(m)] = out.node
        return out


class _ShapeRecorder(fx.Interpreter):
    """Runs a graph once, keeping each tensor-valued node's shape where ``shape()`` reads it."""

    def run_node(self, n):
        out = super().run_node(n)
        if isinstance(out, torch.Tensor):
            n.meta["tensor_meta"] = _Shape(tuple(out.shape))
        return out


@dataclass(frozen=True)
class _Shape:
    shape: tuple


def _meta_copy(net: nn.Module) -> nn.Module:
    """``net`` with every parameter and buffer replaced by a "meta" tensor (shape and dtype, no data):
    a forward through it infers shapes without computing anything."""
    memo = {}
    for t in (*net.parameters(), *net.buffers()):
        m = torch.empty(t.shape, dtype=t.dtype, device="meta")
        memo[id(t)] = nn.Parameter(m, requires_grad=False) if isinstance(t, nn.Parameter) else m
    return copy.deepcopy(net, memo)


def _traced_shapes(net: nn.Module, example: torch.Tensor) -> tuple[fx.GraphModule, dict]:
    """The fx graph of ``net`` with each node's output shape, and {module name: its output node}."""
    tracer = _ModuleTracer()
    graph = tracer.trace(net)
    gm = fx.GraphModule(tracer.root, graph)
    with torch.inference_mode():
        _ShapeRecorder(gm).run(example)
    return gm, tracer.outputs


def module_fields(net: nn.Module, example: torch.Tensor) -> dict[str, tuple]:
    """{dotted module name: (field, output shape)} of every module of ``net`` whose output is one
    tensor, from one ``torch.fx`` trace and one forward of ``example`` for the shapes (on "meta"
    tensors: no arithmetic; on the real network if an op has no meta kernel); the field is GLOBAL
    where the rules above do not reach. Raises ``ValueError`` when ``net`` cannot be traced."""
    try:
        gm, outputs = _traced_shapes(_meta_copy(net), example.to("meta"))
    except Exception:  # noqa: BLE001 - an op without a meta kernel, a tensor attribute: try for real
        try:
            gm, outputs = _traced_shapes(net, example)
        except Exception as e:  # noqa: BLE001 - data-dependent control flow and the like
            raise ValueError(f"cannot trace the network with torch.fx ({type(e).__name__})") from e
    modules = dict(gm.named_modules())
    fields: dict = {}
    for n in gm.graph.nodes:
        if n.op == "placeholder":
            fields[n] = IDENTITY
        elif n.op not in ("get_attr", "output"):
            fields[n] = node_field(n, fields, modules)
    return {name: (fields.get(node, GLOBAL), shape(node)) for name, node in outputs.items()}
