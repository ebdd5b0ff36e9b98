"""Maximally activating patches (Springenberg et al. 2015; Zeiler & Fergus 2014): for each chosen
channel of a layer, the k strongest units over a dataset and the input patch under each of them.

The patch is the unit's exact receptive field (``convlens.receptive_field``): input rows
``offset + y*stride`` .. ``+ size - 1`` of the image *as the network saw it* (after resize / crop).
Where the field leaves the image the crop is padded with ``fill`` (grey), never shifted, so the
unit's centre is always the patch's centre.

The dataset is read once (``top_activations``); the crops are cut afterwards from the images
themselves when the input allows random access (a tensor, a list, a folder, ``sample_dataset``),
or, for one-shot iterables, from copies of the images currently in some channel's top-k, kept
during the pass (at most ``len(channels) * k`` images in memory).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from PIL import Image, ImageDraw

from ..errors import ConvlensError
from ..images import fit, load_image
from ..images.io import save_png
from ..models.model import Model
from ..probe import receptive_field
from .draw import HIGHLIGHT, compose, to_pil
from .topk import TopActivations, as_stream, top_activations


@dataclass
class Patches:
    """Result of ``max_activating_patches``.

    Attributes:
        top: the ``TopActivations`` (values, image_index, positions per channel).
        rf: the layer's ``ReceptiveField``; fill: the padding value used outside the image.
        crops: (len(channels), k, 3, rf_h, rf_w) input patches (``fill`` in empty slots).
        boxes: (len(channels), k, 4) long (top, left, bottom, right) of each patch in its image
            (may exceed the image: that part is padding).
        images: image_index -> the (3, H, W) image as the network saw it (only those in a top-k).
        names: image_index -> a readable name (file name, sample description or "#i").
    """

    top: TopActivations
    rf: object
    fill: float
    crops: torch.Tensor
    boxes: torch.Tensor
    images: dict = field(repr=False)
    names: dict = field(repr=False)
    model_name: str = "model"

    @property
    def channels(self) -> list[int]:
        return self.top.channels

    def render(self, whole: bool = False, tile: int | None = None, title: str | None = None) -> Image.Image:
        """One row per channel: the k patches (or, ``whole=True``, the whole images with the
        receptive field outlined), each labelled with its activation value and image."""
        top = self.top
        k = top.k
        tiles, labels = [], []
        rh, rw = self.rf.size
        if tile is None:
            tile = 128 if whole else int(min(128, max(72, 2 * max(rh, rw))))
        for r in range(len(top.channels)):
            for j in range(k):
                i = int(top.image_index[r, j])
                if i < 0:
                    tiles.append(None)
                    labels.append("")
                    continue
                if whole:
                    tiles.append(self._whole(r, j, tile))
                else:
                    tiles.append(to_pil(self.crops[r, j], (tile, tile), Image.BILINEAR))
                labels.append(f"{float(top.values[r, j]):.2f} {self.names.get(i, f'#{i}')}")
        n = top.n_images
        what = "whole images (receptive field outlined)" if whole else "patches"
        title = title or (f"{self.model_name} {top.layer}: top-{k} {what} per channel over {n} images")
        if whole:
            notes = [f"Red box: the unit's receptive field ({rh}x{rw} px, clipped to the image); dot: its centre. "
                     f"Label: activation, image."]
        else:
            notes = [f"Receptive field {rh}x{rw} px, stride {self.rf.stride[0]}; grey = padding outside the image "
                     f"(patches are never shifted). Label: activation, image."]
        fig, _ = compose(tiles, len(top.channels), k, tile=(tile, tile), labels=labels,
                         row_labels=[f"ch {c}" for c in top.channels], title=title, notes=notes,
                         resample=Image.BILINEAR, label_size=10)
        return fig

    def _whole(self, r: int, j: int, tile: int) -> Image.Image:
        i = int(self.top.image_index[r, j])
        img = self.images[i]
        H, W = img.shape[-2:]
        pil = to_pil(img, (tile, round(tile * W / H)) if H >= W else (round(tile * H / W), tile), Image.BILINEAR)
        sy, sx = pil.height / H, pil.width / W
        t, l, b, rr = [int(v) for v in self.boxes[r, j]]
        d = ImageDraw.Draw(pil)
        d.rectangle([max(0, l) * sx, max(0, t) * sy, min(W, rr) * sx - 1, min(H, b) * sy - 1], outline=HIGHLIGHT, width=2)
        cy, cx = (t + b) / 2 * sy, (l + rr) / 2 * sx
        d.ellipse([cx - 2, cy - 2, cx + 2, cy + 2], fill=HIGHLIGHT)
        if pil.size != (tile, tile):
            sq = Image.new("RGB", (tile, tile), (255, 255, 255))
            sq.paste(pil, ((tile - pil.width) // 2, (tile - pil.height) // 2))
            pil = sq
        return pil

    def save(self, path, whole: bool = False):
        return save_png(self.render(whole=whole), path)


def _item_name(item, i: int) -> str:
    if isinstance(item, (str, Path)):
        return Path(item).name
    return f"#{i}"


def max_activating_patches(model: Model, images, layer: str, channels=None, k: int = 9, *,
                           per_image: bool = False, batch_size: int = 32,
                           progress: Callable[[int, int | None], None] | None = None, state=None,
                           fill: float = 0.5, size="model", threads: int | None = None,
                           backend: str | None = None) -> Patches:
    """The k strongest units of each channel over ``images`` and the input patches under them.

    Args:
        model: a ``convlens.Model``.
        images: a folder, a tensor (N, 3, H, W) in [0, 1], a list of paths / tensors, ``sample_dataset()``,
            or any iterable (read once, in one streaming pass).
        layer: dotted layer name with a (C, H, W) output.
        channels: indices (list / int / "0,5,17"); None = all (memory: C * k crops).
        k: patches per channel.
        per_image: at most one patch per image per channel (the "top-k whole images").
        batch_size: as in ``top_activations``.
        progress: as in ``top_activations``.
        state: as in ``top_activations`` (``state`` makes the pass resumable).
            On Ctrl-C the ``KeyboardInterrupt`` carries ``.partial``: the ``Patches`` of the images seen so far.
        fill: value of the padding where a receptive field leaves the image.
        size: "model" resizes + centre-crops to the model's input size; None keeps the images' size.
        threads: the pass's thread budget.
        backend: "auto", "torch" or "onnxruntime" (see ``batched_forward`` and docs/forward.md).
    Returns:
        ``Patches``; ``.render()`` draws one row per channel, ``.render(whole=True)`` the whole images.
    Example:
        >>> p = max_activating_patches(load_model(), sample_dataset(64), "features.6", [3, 7], k=6)
        >>> p.crops.shape
        torch.Size([2, 6, 3, 59, 59])
    """

    if not isinstance(model, Model):
        raise ConvlensError("max_activating_patches needs a convlens.Model; wrap your module with convlens.Model.wrap(module)")
    rf = receptive_field(model, layer)
    stream = as_stream(images)
    random_access = isinstance(stream, torch.Tensor) or (hasattr(stream, "__getitem__") and hasattr(stream, "__len__"))
    tgt = model.input_size if size == "model" else size
    kept: dict[int, torch.Tensor] = {}
    names: dict[int, str] = {}

    if random_access:
        on_batch = None
    else:
        items: list = []

        def record(it):
            for item in it:
                items.append(item)
                yield item
        stream = record(stream)

        def on_batch(batch, st):  # keep the images that are in some top-k now; drop the others
            need = set(st.image_index[st.image_index >= 0].tolist())
            b0 = st.n_images - len(batch)
            for j in range(len(batch)):
                if b0 + j in need:
                    kept[b0 + j] = batch.images[j].clone()
                    names[b0 + j] = _item_name(items[j], b0 + j) if len(items) == len(batch) else f"#{b0 + j}"
            for i in list(kept):
                if i not in need:
                    kept.pop(i)
                    names.pop(i, None)
            items.clear()

    def assemble(top) -> Patches:
        used = sorted(set(top.image_index[top.image_index >= 0].tolist()))
        if random_access:  # the same loading as batched_forward's, for exactly the pixels the network saw
            dataset_names = getattr(stream, "name", None)
            for i in used:
                img = stream[i:i + 1] if isinstance(stream, torch.Tensor) else load_image(stream[i])
                kept[i] = (fit(img, tgt) if tgt is not None else img)[0]
                names[i] = dataset_names(i) if callable(dataset_names) else _item_name(stream[i], i)
        elif set(used) - set(kept):
            raise ConvlensError("images of a resumed one-shot stream are not available for cropping; "
                                "pass a folder, list or tensor to resume")
        C, rh, rw = len(top.channels), rf.size[0], rf.size[1]
        crops = torch.full((C, k, 3, rh, rw), float(fill))
        boxes = torch.full((C, k, 4), -1, dtype=torch.long)
        for r in range(C):
            for j in range(k):
                i = int(top.image_index[r, j])
                if i < 0:
                    continue
                y, x = int(top.positions[r, j, 0]), int(top.positions[r, j, 1])
                crops[r, j] = rf.crop(kept[i].float().cpu(), y, x, fill=fill)
                boxes[r, j] = torch.tensor(rf.box(y, x))
        return Patches(top=top, rf=rf, fill=float(fill), crops=crops, boxes=boxes,
                       images={i: kept[i] for i in used}, names={i: names.get(i, f"#{i}") for i in used},
                       model_name=getattr(model, "name", "model"))

    try:
        top = top_activations(model, stream, layer, channels, k, batch_size=batch_size, per_image=per_image,
                              progress=progress, state=state, size=size, threads=threads, on_batch=on_batch,
                              backend=backend)
    except KeyboardInterrupt as e:  # Ctrl-C: the patches of the images seen so far ride on the exception
        st = getattr(e, "partial", None)
        if st is not None and st.n_images:
            try:
                e.partial = assemble(st)
            except ConvlensError:
                pass
        raise
    return assemble(top)
