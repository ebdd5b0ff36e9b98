"""Find the embedding stores in a folder, and reopen a store whose manifest changed on disk.

    for path in find_stores("data/stores"):          # the folders holding a store manifest, by name
        store = EmbeddingStore.open(path)
    store = reopen(store)                            # the manifest re-read (a projection was saved)
"""
from __future__ import annotations

from pathlib import Path

from .store import EmbeddingStore

MANIFEST = "manifest.json"


def is_store(path) -> bool:
    """True when ``path`` is a folder holding a store manifest (``manifest.json``)."""
    return (Path(path) / MANIFEST).is_file()


def find_stores(root) -> list[Path]:
    """The store folders directly under ``root`` (sorted by name; none when ``root`` is not a folder).
    Symlinks are listed as they are: a server checks where they lead before opening them."""
    root = Path(root)
    if not root.is_dir():
        return []
    return [p for p in sorted(root.iterdir()) if is_store(p)]


def manifest_mtime(path) -> float:
    """When the store's manifest was last written (``os.stat`` mtime): a change means a new projection,
    index or shard."""
    return (Path(path) / MANIFEST).stat().st_mtime


def reopen(store: EmbeddingStore) -> EmbeddingStore:
    """``store`` opened again from its folder (the manifest re-read). The row metadata it has already
    read (``store.metadata()``, thumbnails included) is kept when the shards are the same, so a new
    projection or index in the manifest does not re-read every thumbnail."""
    fresh = EmbeddingStore.open(store.path)
    fresh.reuse_metadata(store)
    return fresh
