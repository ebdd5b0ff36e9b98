"""The store writer of an extraction: which items a run must embed (``plan_items``: resume by file
identity), the re-extraction of damaged shards (``repair_shards``) and ``StoreWriter`` (groups in,
shards of exactly ``shard_size`` committed as soon as they are full).

Works on any store with the ``VectorStore`` write interface (``manifest``, ``write_manifest``,
``commit_shard``, ``replace_shard_vectors``, ``read_columns``, ``shards``); the facade is not needed.
"""
from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np

from ..errors import ConvlensError
from .decode import decode_file
from .feed import image_item
from .sources import describe_source
from .vectors import META_COLUMNS, VectorStore


def plan_items(store: VectorStore, kind: str, names: Sequence[str], identities, source: dict,
               append: bool = False, images=None, size=None, total: int | None = None) -> list[int] | None:
    """The listing positions this run must embed, in listing order.

    Files: by identity, not position: a file whose (path, size, mtime_ns) is in the store (a row,
    or a skipped unreadable file) is done; every other file is embedded, so files added anywhere in
    the listing (even sorting first) are embedded exactly once. A file embedded before that has
    changed since is refused (a store never keeps old content for a path silently). A store made
    from another folder is refused unless ``append``. Images (tensors, iterables): by position
    (``items_done``), after checking that the images already embedded are the same ones."""
    m = store.manifest
    started = len(store) > 0 or bool(m.get("skipped"))
    known = m.get("sources") or []
    if started and source not in known and not append:
        raise ConvlensError(f"store {store.path} holds the embeddings of {describe_source(known[0]) if known else 'another source'}, "
                            f"not of {describe_source(source)}; pass --append (append=True) to add these images to it, "
                            "another --out, or --overwrite to start it again")
    if kind != "files" and append and started:
        raise ConvlensError("append=True adds files (a folder or paths) to a store; write these images to a folder first")
    if source not in known:
        m["sources"] = known + [source]
        store.write_manifest()
    if kind != "files":
        start = int(m["items_done"])
        if start and images is not None and iter(images) is not images:  # (a one-shot iterator cannot be re-read)
            _check_same_images(store, images, start, size)
        return None if total is None else list(range(start, total))
    done: dict[str, tuple[int, int]] = {}
    if len(store):
        t = store.read_columns(["path", "size", "mtime_ns"])  # not the thumbnails
        for pth, sz, mt in zip(t.column("path").to_pylist(), t.column("size").to_pylist(),
                               t.column("mtime_ns").to_pylist()):
            done[pth] = (sz, mt)
    want = dict(zip(names, identities))
    changed = [pth for pth, ident in done.items() if pth in want and want[pth] != ident]
    if changed:
        raise ConvlensError(f"{len(changed)} file(s) changed since they were embedded in {store.path} (e.g. {changed[0]}); "
                            "a store does not replace rows: re-create it with --overwrite (overwrite=True)")
    keep = []
    for sk in m.get("skipped", []):  # an unreadable file is done while it is unchanged
        ident = (sk.get("size", -2), sk.get("mtime_ns", -2))
        if want.get(sk["path"]) in (None, ident):
            done.setdefault(sk["path"], ident)
            keep.append(sk)
    if len(keep) != len(m.get("skipped", [])):
        m["skipped"] = keep
        store.write_manifest()
    return [i for i, pth in enumerate(names) if pth not in done]


def _check_same_images(store: VectorStore, images, start: int, size) -> None:
    """The first ``start`` images of this run are the ones the store holds (their content hashes)."""
    t = store.read_columns(["item", "hash"])
    hashes = dict(zip(t.column("item").to_pylist(), t.column("hash").to_pylist()))
    for i, img in enumerate(itertools.islice(iter(images), start)):
        if i in hashes:
            info, _ = image_item(img, size, 8)
            if info.get("hash") != hashes[i]:
                raise ConvlensError(f"image {i} differs from the one embedded in {store.path}: these are other images; "
                                    "use another --out, or --overwrite to start the store again")


def repair_shards(store: VectorStore, damaged: list[dict], forward, size, batch_size: int, thumb: int,
                  draft: bool) -> list[int]:
    """Re-extract the vectors of damaged shards (``store.verify()``) from their files, in place.

    A shard's rows are known from its metadata (paths and content hashes): each file is decoded
    again, checked to be the same content, and embedded; the shard's vectors and norms are
    rewritten and their checksums recorded. A damaged metadata file, a missing or changed file, or
    a store of in-memory images is one line naming the fix (re-create the store)."""
    import pyarrow.parquet as pq
    fixed = []
    for k in sorted({d["shard"] for d in damaged}):
        sh = store.shards()[k]
        why = {d["file"]: d["reason"] for d in damaged if d["shard"] == k}
        if sh["meta"] in why:
            raise ConvlensError(f"shard file {sh['meta']} of store {store.path} is damaged ({why[sh['meta']]}): the "
                                "files of its rows are unknown, so it cannot be re-extracted; re-create the store "
                                "with --overwrite")
        t = pq.read_table(store.path / sh["meta"], columns=["path", "hash"])
        paths, hashes = t.column("path").to_pylist(), t.column("hash").to_pylist()
        vec = []
        for a in range(0, len(paths), batch_size):
            group = [decode_file(pth, size, thumb, draft) for pth in paths[a:a + batch_size]]
            for g, pth, h in zip(group, paths[a:a + batch_size], hashes[a:a + batch_size]):
                if not g["ok"] or g["hash"] != h:
                    raise ConvlensError(f"shard {sh['vectors']} of store {store.path} is damaged and its file {pth} is "
                                        "gone or changed, so it cannot be re-extracted; re-create the store with --overwrite")
            vec.append(forward(forward.from_uint8(np.stack([g["rgb"] for g in group]))))
        store.replace_shard_vectors(k, np.concatenate(vec))
        fixed.append(k)
    return fixed


class StoreWriter:
    """Appends groups of processed items to a store in stream order and commits a shard of exactly
    ``shard_size`` vectors as soon as that many are pending (the last shard holds the rest).

    ``todo``: the listing positions of the items the writer will receive, in order (default: from
    the store's ``items_done`` on); ``identities``: (size, mtime_ns) per listing position (files),
    recorded with each row so that a resumed run matches rows by file identity; ``total``: the
    listing's length (progress). A shard may end inside a group: what is not committed is simply
    not done, and a resumed run embeds it (per-image vectors do not depend on the batch: measured
    bit-equal for batch sizes 1, 5, 8 and 32, docs/embeddings.md)."""

    def __init__(self, store: VectorStore, names: Sequence[str], labels: Sequence | None,
                 todo: Sequence[int] | None = None, identities=None, total: int | None = None):
        self.store, self.names, self.labels, self.identities = store, names, labels, identities
        self.todo = todo
        self.pos = 0  # items received so far
        first = int(store.manifest["items_done"])
        self.done = first if todo is None else (total if total is not None else len(names)) - len(todo)
        self._first = first
        self.shard_size = int(store.manifest["shard_size"])
        self.rows: list[tuple[int, dict]] = []  # (stream position, metadata) of pending vectors
        self.vec: list[np.ndarray] = []
        self.skipped: list[tuple[int, dict]] = []

    def _item(self, pos: int) -> int:
        return self._first + pos if self.todo is None else int(self.todo[pos])

    def _name(self, item: int) -> str:
        return self.names[item] if item < len(self.names) else f"<item {item}>"

    def add_group(self, group: list[dict], vectors: np.ndarray | None) -> None:
        """``group``: one dict per item (ok, hash, width, height, thumbnail, or ok False + reason);
        ``vectors``: (number of ok items, dim), in the group's order."""
        j_ok = 0
        for j, g in enumerate(group):
            pos = self.pos + j
            item = self._item(pos)
            size, mtime = self.identities[item] if self.identities is not None else (-1, -1)
            if not g["ok"]:
                self.skipped.append((pos, {"item": item, "path": self._name(item), "reason": g["reason"],
                                           "size": size, "mtime_ns": mtime}))
                continue
            lab = None if self.labels is None else self.labels[item]
            self.rows.append((pos, {"item": item, "path": self._name(item), "hash": g["hash"], "width": g["width"],
                                    "height": g["height"], "label": None if lab is None else str(lab),
                                    "thumbnail": g["thumbnail"], "size": size, "mtime_ns": mtime}))
            j_ok += 1
        if j_ok:
            self.vec.append(np.asarray(vectors, np.float32))
        self.pos += len(group)
        self.done += len(group)
        while len(self.rows) >= self.shard_size:
            self._commit(self.shard_size)

    def _commit(self, n: int) -> None:
        """Commit the first ``n`` pending rows, with the skips before the next pending row."""
        vec = np.concatenate(self.vec) if self.vec else np.zeros((0, self.store.dim), np.float32)
        cut = self.rows[n][0] if n < len(self.rows) else self.pos  # stream positions < cut are done
        rows, self.rows = self.rows[:n], self.rows[n:]
        self.vec = [vec[n:]] if n < len(vec) else []
        skips = [d for pos, d in self.skipped if pos < cut]
        self.skipped = [(pos, d) for pos, d in self.skipped if pos >= cut]
        meta = {c: [r[c] for _, r in rows] for c in META_COLUMNS}
        items_done = self._item(cut - 1) + 1 if cut > 0 else int(self.store.manifest["items_done"])
        self.store.commit_shard(vec[:n], meta, max(items_done, int(self.store.manifest["items_done"])), skips)

    def flush(self) -> None:
        """Commit what is pending (a shard, possibly empty: it records ``items_done`` and skips)."""
        if not (self.rows or self.skipped) and (self.pos == 0 or self._item(self.pos - 1) + 1
                                                 <= int(self.store.manifest["items_done"])):
            return
        self._commit(len(self.rows))

    def close(self) -> VectorStore:
        self.flush()
        self.store.manifest["total"] = self.done
        self.store.write_manifest()
        return self.store
