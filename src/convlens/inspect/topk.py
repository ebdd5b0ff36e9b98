"""Streaming top-k activations per channel over a dataset of any size (driver 4).

One pass of ``convlens.drivers.batched_forward`` (inference_mode, channels_last, truncated after the
layer); after each batch the candidates of every requested channel are merged into a running
top-k of shape (channels, k), so memory is bounded by the batch plus ``channels x k`` numbers.

Order: by value, descending; equal values keep stream order (earlier image first, then row-major
position). ``per_image=True`` first reduces each image to its strongest position per channel (the
first one in row-major order on ties), so a channel's top-k are k *different* images (the "top-k
whole images" of Zeiler & Fergus 2014 / Springenberg et al. 2015).

Interruption and resumption: the running state is a ``TopActivations`` updated in place after
every complete batch. Pass ``state=`` an existing ``TopActivations`` to continue it (the first
``state.n_images`` images of the stream are skipped), or a file path: it is loaded when it exists
and re-written atomically after every batch, so a killed process resumes where it stopped.
A ``KeyboardInterrupt`` propagates with the state so far attached as ``exc.partial``.
"""
from __future__ import annotations

import io
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch

from ..drivers import batched_forward
from ..drivers.forward import length as _length
from ..errors import ConvlensError
from ..images.io import write_atomic
from ..images.resolve import resolve_images
from ..models.model import Model

_BIG = torch.iinfo(torch.long).max


@dataclass
class TopActivations:
    """Running (or final) top-k of some channels of a layer over a stream of images.

    Attributes:
        layer: the layer's dotted name; channels: channel indices, in row order; k: slots per channel.
        values: (len(channels), k) float, descending; -inf in slots not filled yet.
        image_index: (len(channels), k) long, index of the image in stream order (-1 when empty).
        positions: (len(channels), k, 2) long, (y, x) of the unit in the layer's map (-1 when empty).
        n_images: images processed so far; per_image: one position per image per channel.
        map_size: (H, W) of the layer's map (None before the first batch).
    """

    layer: str
    channels: list[int]
    k: int
    values: torch.Tensor
    image_index: torch.Tensor
    positions: torch.Tensor
    n_images: int = 0
    per_image: bool = False
    map_size: tuple[int, int] | None = None
    total: int | None = field(default=None, repr=False)

    @classmethod
    def empty(cls, layer: str, channels, k: int, per_image: bool = False) -> "TopActivations":
        C = len(channels)
        return cls(layer=layer, channels=[int(c) for c in channels], k=int(k),
                   values=torch.full((C, k), float("-inf")), image_index=torch.full((C, k), -1, dtype=torch.long),
                   positions=torch.full((C, k, 2), -1, dtype=torch.long), per_image=per_image)

    def row(self, channel: int) -> list[tuple[int, tuple[int, int], float]]:
        """The filled (image_index, (y, x), value) entries of one channel, strongest first."""
        if channel not in self.channels:
            raise ConvlensError(f"channel {channel} was not tracked; tracked: {self.channels[:10]}...")
        r = self.channels.index(channel)
        return [(int(self.image_index[r, j]), (int(self.positions[r, j, 0]), int(self.positions[r, j, 1])),
                 float(self.values[r, j])) for j in range(self.k) if self.image_index[r, j] >= 0]

    def select(self, channels) -> "TopActivations":
        """The same pass restricted to some of its channels (rows in the order given): e.g. the state for
        ``max_activating_patches(..., channels, state=top.select(channels))``, which then crops without
        running the images through the network again."""
        missing = [c for c in channels if int(c) not in self.channels]
        if missing:
            raise ConvlensError(f"channel {missing[0]} was not tracked; tracked: {self.channels[:10]}...")
        rows = torch.tensor([self.channels.index(int(c)) for c in channels], dtype=torch.long)
        return TopActivations(layer=self.layer, channels=[int(c) for c in channels], k=self.k,
                              values=self.values[rows].clone(), image_index=self.image_index[rows].clone(),
                              positions=self.positions[rows].clone(), n_images=self.n_images,
                              per_image=self.per_image, map_size=self.map_size, total=self.total)

    # --- persistence -----------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"layer": self.layer, "channels": list(self.channels), "k": self.k, "values": self.values,
                "image_index": self.image_index, "positions": self.positions, "n_images": self.n_images,
                "per_image": self.per_image, "map_size": list(self.map_size) if self.map_size else None,
                "format": "convlens.TopActivations/1"}

    def save(self, path) -> Path:
        """Write the state atomically (torch format, tensors and plain values only)."""
        buf = io.BytesIO()
        torch.save(self.state_dict(), buf)
        return write_atomic(path, buf.getvalue())

    @classmethod
    def load(cls, path) -> "TopActivations":
        try:
            d = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as e:
            raise ConvlensError(f"cannot read top-k state {path}: {type(e).__name__}: {str(e)[:80]}; delete it "
                                "to start over") from e
        if not isinstance(d, dict) or d.get("format") != "convlens.TopActivations/1":
            raise ConvlensError(f"{path} is not a convlens top-k state file; delete it or pass another path")
        return cls(layer=d["layer"], channels=list(d["channels"]), k=int(d["k"]), values=d["values"],
                   image_index=d["image_index"], positions=d["positions"], n_images=int(d["n_images"]),
                   per_image=bool(d["per_image"]), map_size=tuple(d["map_size"]) if d["map_size"] else None)

    # --- internals ---------------------------------------------------------------------------
    def _keys(self) -> torch.Tensor:
        """Stream-order keys (image * H*W + y*W + x) of the slots; empty slots sort last."""
        if self.map_size is None:
            return torch.full_like(self.image_index, _BIG)
        H, W = self.map_size
        k = self.image_index * (H * W) + self.positions[..., 0] * W + self.positions[..., 1]
        return torch.where(self.image_index >= 0, k, torch.full_like(k, _BIG))


def _order(vals: torch.Tensor, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort each row by (value desc, key asc): two stable sorts."""
    o = keys.argsort(dim=1, stable=True)
    vals, keys = vals.gather(1, o), keys.gather(1, o)
    o = vals.argsort(dim=1, descending=True, stable=True)
    return vals.gather(1, o), keys.gather(1, o)


def select_topk(vals: torch.Tensor, keys: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the k entries with the largest values, ties going to the smaller key; sorted.

    ``torch.topk`` does the work; rows where more entries tie with the k-th value than there are
    slots left fall back to an exact stable sort (so the choice among ties is never arbitrary).
    """
    if vals.shape[1] > k:
        tv, ti = vals.topk(k, dim=1)
        ties = (vals >= tv[:, -1:]).sum(1) > k
        if bool(ties.any()):
            rows = ties.nonzero().flatten()
            sv, sk = _order(vals[rows], keys[rows])
            tv, tk = vals.gather(1, ti), keys.gather(1, ti)
            tv[rows], tk[rows] = sv[:, :k], sk[:, :k]
            return _order(tv, tk)
        vals, keys = tv, keys.gather(1, ti)
    return _order(vals, keys)


def batch_candidates(a: torch.Tensor, layer: str, idx: torch.Tensor, all_ch: bool, start, k: int,
                     per_image: bool) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """One batch's top-k candidates: (values (C, <=k), stream-order keys (C, <=k), (H, W)).

    ``a``: the layer's (B, C_all, H, W) activations of images ``start`` .. ``start + B - 1`` of
    the stream (or, ``start`` a (B,) tensor, of those stream positions); ``idx``: the tracked channels. Keys are ``image * H*W + y*W + x``, so the top-k of
    the union of any partition of the stream equals the top-k of the whole stream: the merge is
    exact whatever the order batches arrive in (the Ray engine merges batches from many workers).
    """
    a = a.float().cpu()
    if a.ndim != 4:
        raise ConvlensError(f"layer '{layer}' gave shape {tuple(a.shape)}, not (N, C, H, W)")
    B, _, H, W = a.shape
    if not all_ch:
        a = a.index_select(1, idx)
    C = a.shape[1]
    img = torch.as_tensor(start, dtype=torch.long).view(-1) if isinstance(start, torch.Tensor) \
        else torch.arange(start, start + B)
    if per_image:
        v, pos = a.flatten(2).max(dim=2)                     # (B, C): first max in row-major order
        vals = v.t().contiguous()                            # (C, B)
        keys = (img.view(1, B) * (H * W) + pos.t())
    else:
        vals = a.transpose(0, 1).reshape(C, B * H * W)       # (C, B*H*W) in stream order
        keys = (img.view(B, 1) * (H * W) + torch.arange(H * W).view(1, -1)).view(1, -1).expand(C, -1)
    sel_v, sel_k = select_topk(vals, keys.expand(C, -1), k)
    return sel_v, sel_k, (H, W)


def merge_candidates(state: "TopActivations", sel_v: torch.Tensor, sel_k: torch.Tensor, hw: tuple[int, int],
                     n_images: int) -> None:
    """Merge one batch's candidates (from ``batch_candidates``, map size ``hw``) into ``state`` in one
    step; ``n_images``: the images covered afterwards."""
    if state.map_size is None:
        state.map_size = tuple(hw)
    elif tuple(state.map_size) != tuple(hw):
        raise ConvlensError(f"layer '{state.layer}' map is {hw[0]}x{hw[1]} for this batch but {state.map_size} "
                            "before; images of different sizes: use size='model' or resize them")
    H, W = state.map_size
    mv, mk = select_topk(torch.cat([state.values, sel_v], 1), torch.cat([state._keys(), sel_k], 1), state.k)
    valid = mk != _BIG
    img = torch.where(valid, mk // (H * W), torch.full_like(mk, -1))
    rem = mk % (H * W)
    posn = torch.stack([rem // W, rem % W], -1)
    posn = torch.where(valid[..., None], posn, torch.full_like(posn, -1))
    # one C-level call: an interrupt cannot leave the state half-updated
    state.__dict__.update(values=mv, image_index=img, positions=posn, n_images=int(n_images))



def open_state(state, layer: str, chans: list[int], k: int, per_image: bool,
               total: int | None) -> tuple["TopActivations", Path | None]:
    """(the running state, its file or None) for a pass: a new state, a ``TopActivations`` to
    continue, or a file path (loaded when it exists); checked against the pass and the stream length."""
    path = None
    if isinstance(state, (str, os.PathLike)):
        path = Path(state)
        state = TopActivations.load(path) if path.exists() else None
    if state is None:
        state = TopActivations.empty(layer, chans, k, per_image)
    elif not isinstance(state, TopActivations):
        raise ConvlensError(f"state must be a TopActivations or a file path, got {type(state).__name__}")
    elif (state.layer, list(state.channels), state.k, state.per_image) != (layer, chans, k, per_image):
        raise ConvlensError(f"the saved state is for layer {state.layer}, {len(state.channels)} channels, "
                            f"k={state.k}, per_image={state.per_image}; it does not match this call "
                            f"(delete the state file to start over)")
    state.total = total
    if total is not None and state.n_images > total:
        raise ConvlensError(f"the state has seen {state.n_images} images but the stream has only {total}; "
                            "it belongs to another dataset")
    return state, path


def resolve_channels(model: Model, layer: str, channels) -> list[int]:
    info = model.layer_info(layer)
    if len(info.shape) != 3:
        raise ConvlensError(f"layer '{layer}' has output shape {info.shape}, not (C, H, W); pick a conv-stage layer")
    C = info.shape[0]
    if channels is None:
        return list(range(C))
    if isinstance(channels, (int,)) or (isinstance(channels, torch.Tensor) and channels.ndim == 0):
        channels = [int(channels)]
    if isinstance(channels, str):
        channels = [c for c in channels.split(",") if c.strip()]
    out = []
    for c in channels:
        try:
            c = int(c)
        except (TypeError, ValueError):
            raise ConvlensError(f"channel '{c}' is not an integer; give indices like 0,5,17") from None
        if not 0 <= c < C:
            raise ConvlensError(f"channel {c} out of range: layer '{layer}' has channels 0..{C - 1}")
        out.append(c)
    if not out:
        raise ConvlensError("no channels given; pass indices like 0,5,17 or None for all")
    return out


def as_stream(images) -> Iterable:
    """A spec string or path (a folder -> its image files, a file, ``samples:N``, a sample name...:
    ``images.resolve_images``) -> the images to stream; tensors, sequences and iterables pass through."""
    if isinstance(images, (str, os.PathLike)):
        return resolve_images(images).items()
    if isinstance(images, torch.Tensor) and images.ndim == 3:
        return images[None]
    return images


def _skip(images, n: int):
    if n == 0:
        return images
    if isinstance(images, torch.Tensor):
        return images[n:]
    if hasattr(images, "__getitem__") and hasattr(images, "__len__"):
        return (images[i] for i in range(n, len(images)))
    return itertools.islice(images, n, None)


def top_activations(model: Model, images, layer: str, channels=None, k: int = 9, *, batch_size: int = 32,
                    per_image: bool = False, progress: Callable[[int, int | None], None] | None = None,
                    state=None, size="model", threads: int | None = None, channels_last: bool | None = None,
                    on_batch: Callable | None = None, backend: str | None = None) -> TopActivations:
    """The k strongest activations of each channel of ``layer`` over a stream of images, in one pass.

    Args:
        model: a ``convlens.Model``.
        images: (N, 3, H, W) tensor in [0, 1], a folder path, a list of paths / tensors, or any
            iterable (e.g. a generator, ``sample_dataset()``); read once, in order.
        layer: dotted layer name with a (C, H, W) output.
        channels: channel indices (list, int, "0,5,17") or None for all channels.
        k: entries kept per channel.
        batch_size: images per forward pass.
        per_image: keep at most one position per image per channel (top-k whole images).
        progress: ``progress(done, total)`` after each batch (total None for unsized iterables).
        state: a ``TopActivations`` to continue (updated in place), or a file path (loaded when it
            exists, saved after every batch). The first ``state.n_images`` images are skipped.
        size: "model" resizes + centre-crops to the model's input size; None keeps the images' size.
        threads: passed to ``batched_forward``.
        channels_last: passed to ``batched_forward``.
        on_batch: optional ``on_batch(batch, state)`` after each merged batch (used to keep crops).
        backend: "auto" (default), "torch" or "onnxruntime": see ``batched_forward`` and docs/forward.md.
    Returns:
        ``TopActivations`` (values descending; ties in stream order).
    Example:
        >>> top = top_activations(load_model(), sample_dataset(64), "features.6", [0, 5], k=4)
        >>> top.values.shape, top.positions.shape
        (torch.Size([2, 4]), torch.Size([2, 4, 2]))
    """
    if not isinstance(model, Model):
        raise ConvlensError("top_activations needs a convlens.Model; wrap your module with convlens.Model.wrap(module)")
    if k < 1:
        raise ConvlensError(f"k must be at least 1, got {k}")
    chans = resolve_channels(model, layer, channels)
    images = as_stream(images)
    total = _length(images)
    state, path = open_state(state, layer, chans, k, per_image, total)
    stream = _skip(images, state.n_images)
    idx = torch.tensor(chans, dtype=torch.long)
    all_ch = chans == list(range(model.layer_info(layer).shape[0]))
    base = state.n_images
    try:
        if progress:
            progress(state.n_images, total)
        for batch in batched_forward(model, stream, layer, batch_size=batch_size, size=size,
                                     threads=threads, channels_last=channels_last, backend=backend):
            start = base + batch.start
            sel_v, sel_k, hw = batch_candidates(batch.activations[layer], layer, idx, all_ch, start, k, per_image)
            merge_candidates(state, sel_v, sel_k, hw, start + len(batch))
            if path is not None:
                state.save(path)
            if on_batch is not None:
                on_batch(batch, state)
            if progress:
                progress(state.n_images, total)
    except KeyboardInterrupt as e:
        e.partial = state
        raise
    return state
