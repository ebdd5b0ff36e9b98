"""Query embedding: a query for a store (store rows, image paths, image tensors, or vectors)
resolved to vectors of the store's space. Images are embedded exactly as the store's were (the same
model, reloaded by name and weights when not given; the same layer, decoding, resize and pooling).
Below search (``search.py``) and the maps; takes any store with the ``VectorStore`` read interface.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from .. import models
from ..drivers.forward import batched_forward
from ..errors import ConvlensError
from ..images.io import fit
from .decode import decode_file, pool
from .vectors import VectorStore


def query_vectors(store: VectorStore, query, model=None) -> tuple[np.ndarray, list[int]]:
    """Resolve a query to vectors (m, dim) and store rows (-1 for outside queries).

    ``query``: an int / list of ints (store rows), a path or list of paths, an image tensor
    (N, 3, H, W), or vectors (dim,) / (m, dim) as numpy or torch.
    """
    if isinstance(query, (int, np.integer)) or (isinstance(query, (list, tuple)) and query
                                                 and all(isinstance(q, (int, np.integer)) for q in query)):
        rows = [int(query)] if isinstance(query, (int, np.integer)) else [int(q) for q in query]
        bad = [r for r in rows if not 0 <= r < len(store)]
        if bad:
            raise ConvlensError(f"index {bad[0]} out of range: the store has {len(store)} vectors (0..{len(store) - 1})")
        return store.take(rows), rows
    if isinstance(query, (str, os.PathLike)) or (isinstance(query, (list, tuple)) and query
                                                  and all(isinstance(q, (str, os.PathLike)) for q in query)):
        paths = [query] if isinstance(query, (str, os.PathLike)) else list(query)
        size = query_size(store)
        imgs = []
        for p in paths:
            d = decode_file(str(p), size)  # exactly as the store's files were decoded
            if not d["ok"]:
                raise ConvlensError(f"{p}: not a readable image ({d['reason']})")
            imgs.append(torch.from_numpy(d["rgb"].transpose(2, 0, 1).astype(np.float32) / 255)[None])
        return embed_query_images(store, imgs, model), [-1] * len(imgs)
    if isinstance(query, torch.Tensor) and query.ndim == 4:
        return embed_query_images(store, list(query[:, None].unbind(0)), model), [-1] * query.shape[0]
    v = query.detach().cpu().numpy() if isinstance(query, torch.Tensor) else np.asarray(query)
    v = v.astype(np.float32).reshape(-1, store.dim) if v.size % store.dim == 0 and v.ndim <= 2 else None
    if v is None:
        raise ConvlensError(f"cannot use {type(query).__name__} as a query: pass a store index, an image path, "
                            f"an image tensor (N, 3, H, W) or vectors of dimension {store.dim}")
    return v, [-1] * len(v)


def query_size(store) -> tuple[int, int]:
    """The input size the store's images were embedded at (an image query is embedded the same way)."""
    pre = (getattr(store, "manifest", None) or {}).get("preprocessing") or {}
    if "size" not in pre or not store.manifest.get("layer"):
        raise ConvlensError("this store was made from vectors (no model, layer or input size recorded): query it with "
                            "store rows or vectors, not images")
    return tuple(pre["size"])


def store_model(store: VectorStore, model=None):
    """The model a store was made with (reloaded by name and weights when not given)."""
    if model is not None:
        return model
    load_model = models.load_model  # looked up per call: a patched convlens.models.load_model applies
    w = store.manifest.get("weights")
    cache = store.__dict__.setdefault("_model", {})
    if "m" not in cache:
        try:
            if w in (None, "None") or str(w).startswith("random"):  # "random(seed=0)": seeded random weights
                seed = int("".join(ch for ch in str(w) if ch.isdigit()) or 0)
                cache["m"] = load_model(store.manifest["model"], weights=None, seed=seed)
            else:
                cache["m"] = load_model(store.manifest["model"], weights=w)
        except Exception as e:  # noqa: BLE001
            raise ConvlensError(f"cannot reload the store's model {store.manifest['model']} ({e}); pass model=") from None
    return cache["m"]


def embed_query_images(store: VectorStore, images, model=None) -> np.ndarray:
    """Embed outside images exactly as the store's images were (same model, layer, resize, pooling)."""
    size = query_size(store)
    m = store_model(store, model)
    layer = store.manifest["layer"]
    x = torch.cat([fit(t if t.ndim == 4 else t[None], size) for t in images])
    vecs = [pool(b.activations[layer]).numpy() for b in batched_forward(m, x, layer, size=None)]
    return np.concatenate(vecs).astype(np.float32)
