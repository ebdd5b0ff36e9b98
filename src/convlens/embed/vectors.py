"""The embedding store's format and its protocol: ``StoreReader`` (what every algorithm reads),
``MetadataReader`` (what the pictures read) and ``StoreWriterProtocol`` (what extraction writes
through), as ``typing.Protocol`` classes; ``VectorStore`` implements them on a folder (float32 vector
shards, a Parquet metadata table and a JSON manifest), ``ArrayStore`` the read protocol on an
in-memory array. The bottom of ``embed/``: search, index, projection, maps and extraction take any
object with this interface; ``store.EmbeddingStore`` (the facade users open) adds the search methods
on top. A new backend is one class implementing the protocol (docs/embeddings.md, "Store protocol").

Layout of a store folder (readable with numpy and pyarrow alone, see docs/embeddings.md)::

    manifest.json            model, weights, layer, preprocessing, dim, count, metric, seed, version,
                             the source(s), and the list of committed shards (the only source of
                             truth) with each shard file's length and SHA-256
    vectors-00000.npy        (n_i, dim) float32 (or float16) raw vectors, memory-mappable
    norms-00000.npy          (n_i,) float32 L2 norms of those rows (cosine needs no second copy)
    meta-00000.parquet       item, path, hash (SHA-1 of the file), width, height, label, thumbnail,
                             size and mtime_ns (the file's identity when it was embedded)
    report.json              skipped (unreadable) items and duplicate groups, refreshed at each commit

Guarantees (docs/embeddings.md, "What the store guarantees"):

* A shard is committed atomically: its file names are first recorded as ``pending`` in the manifest,
  each file is written to a temporary name, fsync'ed and renamed, and only then the shard is added
  to the manifest (itself replaced atomically). A process killed at any moment leaves the store as
  of its last commit.
* convlens creates, replaces or deletes only files its manifest lists (``owned_files``): a folder
  holding anything else is never written into unless it is empty; ``overwrite`` deletes only those.
* Every open checks each shard file's length against the manifest (a truncated shard is one line
  naming it and the fix); ``verify()`` (``convlens verify``, and every resume) checks the SHA-256.
Vectors are never normalized in place and never copied normalized: cosine divides by the stored
norms inside each block product.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Protocol, runtime_checkable

import numpy as np

from ..errors import ConvlensError
from ..files import atomic_write
from ..images.io import fit, load_image

VERSION = 2  # 2: per-file identity (size, mtime_ns) in the metadata, shard checksums
# fields of the manifest that must match for a run to resume (or append to) an existing store
IDENTITY = ("model", "weights", "layer", "pooling", "preprocessing", "dim", "dtype", "version")


def fsync_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably (``convlens.files.atomic_write``: temp file,
    fsync, rename, fsync the folder)."""
    atomic_write(path, data)


def npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


META_COLUMNS = ("item", "path", "hash", "width", "height", "label", "thumbnail", "size", "mtime_ns")
# a file's identity: resume matches store rows to files by (path, size, mtime_ns); -1 = not a file


def meta_schema():
    """The pyarrow schema of a store's metadata table (``META_COLUMNS``)."""
    import pyarrow as pa
    return pa.schema([("item", pa.int64()), ("path", pa.string()), ("hash", pa.string()), ("width", pa.int32()),
                      ("height", pa.int32()), ("label", pa.string()), ("thumbnail", pa.binary()),
                      ("size", pa.int64()), ("mtime_ns", pa.int64())])


def digest(data: bytes) -> dict:
    """{bytes, sha256} of a file's content, as the manifest records it."""
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def file_digest(path: Path, chunk: int = 1 << 22) -> str:
    """The SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                return h.hexdigest()
            h.update(b)


_meta_schema, _digest, _file_digest = meta_schema, digest, file_digest  # the old private names

STORE_FILE_PREFIXES = ("vectors-", "norms-", "meta-", "projection-", "knn-", "index-")


def check_out_folder(p: Path) -> None:
    """Refuse to write a new store into ``p`` when it holds anything (a store is resumed or
    overwritten through its manifest instead): convlens never replaces or deletes a user's file."""
    if p.exists() and not p.is_dir():
        raise ConvlensError(f"{p} is a file, not a folder; give --out a new or empty folder")
    if p.is_dir():
        others = sorted(x.name for x in p.iterdir())
        if others:
            raise ConvlensError(f"{p} is not empty and not an embedding store ({len(others)} entries, e.g. "
                                f"{others[0]!r}); convlens writes a new store only into a new or empty folder: "
                                "pick another --out")


@dataclass
class StoreReport:
    """What happened while filling a store: unreadable items (never embedded) and duplicate files."""

    skipped: list[dict] = field(default_factory=list)  # {"item", "path", "reason"}
    duplicates: list[list[int]] = field(default_factory=list)  # groups of store indices with one content hash

    def summary(self) -> str:
        d = sum(len(g) - 1 for g in self.duplicates)
        return f"{len(self.skipped)} unreadable item(s) skipped, {len(self.duplicates)} duplicate group(s) ({d} extra copies)"


@runtime_checkable
class StoreReader(Protocol):
    """The read protocol every algorithm of ``embed/`` takes (exact search, the FAISS index, the kNN
    graph, projections, maps, query embedding): a new backend (sharded, remote, in a database) is one
    class with these members; it never needs the ``EmbeddingStore`` facade.

    Required (search, index, kNN, projection):
        ``__len__()`` rows; ``dim``; ``manifest`` (a dict: ``metric``, ``projections``; a store made
        by extraction also ``model``, ``weights``, ``layer``, ``preprocessing``: what query embedding
        reads); ``path`` (a folder, or None when nothing is saved);
        ``blocks(rows)`` -> (start, (b, dim) float32 or float16 block, (b,) float32 L2 norms) over
        every row in order, bounded memory (the exact search and the index read only this);
        ``vectors(start, stop)`` -> (n, dim) float32 copy; ``take(indices)`` -> (n, dim) float32;
        ``norms()`` -> (N,) float32;
        ``save_array(name, array, info)`` / ``load_array(name, info)``: derived arrays (projections,
        kNN graphs) kept beside the vectors, or None when the backend keeps nothing.
    Optional (pictures; ``MetadataReader``): ``column(name)``, ``thumbnail(i)``, ``thumbnails``,
    ``has_thumbnails()``, ``image(i, size)``, ``metadata()``, ``report()``.

    ``VectorStore`` (the folder format) and ``ArrayStore`` (an in-memory array) implement it;
    ``isinstance(x, StoreReader)`` checks the members' presence (tests/test_store_protocol.py).
    """

    manifest: dict

    def __len__(self) -> int: ...

    @property
    def dim(self) -> int: ...

    def blocks(self, rows: int = 65536) -> Iterator[tuple[int, np.ndarray, np.ndarray]]: ...

    def vectors(self, start: int = 0, stop: int | None = None) -> np.ndarray: ...

    def take(self, indices) -> np.ndarray: ...

    def norms(self) -> np.ndarray: ...

    def save_array(self, name: str, array: np.ndarray, info: dict): ...

    def load_array(self, name: str, info: dict | None = None) -> np.ndarray | None: ...


@runtime_checkable
class MetadataReader(StoreReader, Protocol):
    """``StoreReader`` plus the per-row metadata the pictures read (neighbour figures, thumbnail maps,
    the t-SNE grid, the projector export): paths, labels and thumbnails."""

    def column(self, name: str) -> list: ...

    def thumbnail(self, i: int): ...

    def has_thumbnails(self) -> bool: ...


@runtime_checkable
class StoreWriterProtocol(StoreReader, Protocol):
    """What extraction writes through (``embed.writer``, ``embed.forward``, ``embed.extract``): a
    backend that can be filled by ``embed_images`` adds these to ``StoreReader``. Commits are atomic
    per shard; ``manifest["items_done"]`` is the resume point (docs/embeddings.md)."""

    def write_manifest(self) -> None: ...

    def commit_shard(self, vectors: np.ndarray, meta: dict, items_done: int, skipped: list[dict]) -> None: ...

    def replace_shard_vectors(self, k: int, vectors: np.ndarray) -> None: ...

    def shards(self) -> list[dict]: ...

    def read_columns(self, names: list[str]): ...

    def verify(self) -> list[dict]: ...


class VectorStore:
    """A folder of embedding vectors with metadata, opened read-only by default: the folder format's
    implementation of ``StoreReader``, ``MetadataReader`` and ``StoreWriterProtocol``.

    ``EmbeddingStore.open(path)``; ``len(store)``; ``store.dim``; ``store.manifest``;
    ``store.vectors(i0, i1)`` rows as float32 (memory-mapped shards, copied only for the slice);
    ``store.blocks(rows)`` iterates (start, block, norms) with bounded memory;
    ``store.metadata()`` the Parquet table (pyarrow). ``EmbeddingStore`` (``embed/store.py``) is this
    class with the search methods (``neighbors``, ``build_index``, ``knn_graph``, ``near_duplicates``).
    """

    def __init__(self, path, manifest: dict):
        self.path = Path(path)
        self.manifest = manifest
        self._mm: dict[int, np.ndarray] = {}
        self._meta = None

    # --- opening / creating ------------------------------------------------------------------
    @classmethod
    def open(cls, path, check: bool = True) -> "VectorStore":
        """Open an existing store folder (errors name the fix when it is not one). Every shard
        file's length is checked against the manifest (``check=False``: not, for a repair)."""
        p = Path(path)
        mf = p / "manifest.json"
        if not mf.exists():
            raise ConvlensError(f"{p} is not an embedding store (no manifest.json); create one with "
                                f"`convlens embed SOURCE --out {p}` or convlens.embed_images(...)")
        try:
            manifest = json.loads(mf.read_text())
        except json.JSONDecodeError as e:
            raise ConvlensError(f"{mf} is not valid JSON ({e}): the store is damaged and convlens cannot tell which "
                                "files are its own; move the folder away (or delete it) and embed again") from None
        if not isinstance(manifest, dict) or manifest.get("format") != "convlens.EmbeddingStore":
            raise ConvlensError(f"{mf} is not a convlens embedding store manifest; pick another folder")
        store = cls(p, manifest)
        if check:
            store.check_lengths()
        return store

    @classmethod
    def create_or_resume(cls, path, identity: dict, *, resume: bool = True, overwrite: bool = False,
                         shard_size: int = 4096, extra: dict | None = None) -> "VectorStore":
        """Open ``path`` for writing: a new store, or the same run resumed (identity must match)."""
        p = Path(path)
        if (p / "manifest.json").exists() and not overwrite:
            store = cls.open(p, check=False)
            old = {k: store.manifest.get(k) for k in IDENTITY}
            new = {k: identity.get(k) for k in IDENTITY}
            if old != new:
                diff = ", ".join(f"{k}: store has {old[k]!r}, this run {new[k]!r}" for k in IDENTITY if old[k] != new[k])
                raise ConvlensError(f"store {p} was made differently ({diff}); use another --out, or overwrite=True "
                                    "(--overwrite) to start it again")
            if not resume:
                raise ConvlensError(f"store {p} exists; pass resume=True to continue it or overwrite=True to replace it")
            return store
        if (p / "manifest.json").exists():  # overwrite: delete only the files the old manifest lists
            cls.open(p, check=False).delete_files()
        else:
            check_out_folder(p)
        p.mkdir(parents=True, exist_ok=True)
        manifest = {"format": "convlens.EmbeddingStore", **identity, "count": 0, "items_done": 0,
                    "metric": "cosine", "shard_size": int(shard_size), "shards": [], "skipped": [],
                    "projections": {}, "indexes": {}, **(extra or {})}
        store = cls(p, manifest)
        store.write_manifest()
        return store

    @classmethod
    def from_vectors(cls, path, vectors, *, paths=None, labels=None, thumbnails=None, shard_size: int = 65536,
                     overwrite: bool = False, info: dict | None = None) -> "VectorStore":
        """A store from vectors you already have ((N, dim) array), with optional paths, labels and
        thumbnails (PIL images or PNG/JPEG bytes); ``info`` fills the manifest (model, layer...)."""
        v = np.asarray(vectors, np.float32)
        if v.ndim != 2:
            raise ConvlensError(f"vectors must be (N, dim), got shape {v.shape}")
        ident = {"model": None, "weights": None, "layer": None, "pooling": None, "dtype": "float32", "version": VERSION,
                 "preprocessing": None, **(info or {}), "dim": int(v.shape[1])}
        store = cls.create_or_resume(path, ident, overwrite=overwrite, resume=False, shard_size=shard_size)
        n = len(v)

        def thumb(t):
            if t is None or isinstance(t, bytes):
                return t
            buf = io.BytesIO()
            t.convert("RGB").save(buf, format="PNG")
            return buf.getvalue()
        for a in range(0, n, shard_size):
            b = min(n, a + shard_size)
            meta = {"item": list(range(a, b)), "path": [str(p) for p in paths[a:b]] if paths is not None else [""] * (b - a),
                    "hash": [str(a + i) for i in range(b - a)], "width": [0] * (b - a), "height": [0] * (b - a),
                    "label": [None if l is None else str(l) for l in labels[a:b]] if labels is not None else [None] * (b - a),
                    "thumbnail": [thumb(t) for t in thumbnails[a:b]] if thumbnails is not None else [None] * (b - a)}
            store.commit_shard(v[a:b], meta, b, [])
        return store

    def write_manifest(self) -> None:
        """Replace manifest.json atomically and durably with ``self.manifest``."""
        fsync_write(self.path / "manifest.json", json.dumps(self.manifest, indent=1, ensure_ascii=False).encode())

    # --- writing ----------------------------------------------------------------------------
    def commit_shard(self, vectors: np.ndarray, meta: dict, items_done: int, skipped: list[dict]) -> None:
        """Append one shard atomically: vectors (n, dim), metadata columns (n rows each), and the
        items consumed so far (so a resumed run starts after them). Checks rows == vectors first.
        Metadata columns ``size`` / ``mtime_ns`` (the file's identity) default to -1 (not a file)."""
        n = len(vectors)
        rows = {len(v) for v in meta.values()}
        if rows != {n}:
            raise ConvlensError(f"internal: {n} vectors but metadata columns of lengths {sorted(rows)}; shard not committed")
        if n and (vectors.ndim != 2 or vectors.shape[1] != self.dim):
            raise ConvlensError(f"vectors of shape {vectors.shape} do not match the store's dimension {self.dim}")
        if n and not np.isfinite(vectors).all():
            raise ConvlensError("non-finite values in the embedding vectors (NaN/inf); check the model and layer")
        k = len(self.manifest["shards"])
        names = {"vectors": f"vectors-{k:05d}.npy", "norms": f"norms-{k:05d}.npy", "meta": f"meta-{k:05d}.parquet"}
        files = {}
        if n:
            self.manifest["pending"] = list(names.values())  # write-ahead: these names are ours
            self.write_manifest()
            files = self._write_shard_files(names, vectors, meta)
        self.manifest.pop("pending", None)
        self.manifest["shards"].append({**(names if n else {}), "count": n, "start": self.manifest["count"],
                                        **({"files": files} if n else {})})
        self.manifest["count"] += n
        self.manifest["items_done"] = int(items_done)
        self.manifest["skipped"] = list(self.manifest.get("skipped", [])) + list(skipped)
        self.write_manifest()
        self._meta = None
        self._write_report()

    def _write_shard_files(self, names: dict, vectors: np.ndarray, meta: dict | None) -> dict:
        """Write a shard's vectors, norms (and metadata unless None); {file: {bytes, sha256}}."""
        import pyarrow as pa
        import pyarrow.parquet as pq
        dt = np.float16 if self.manifest["dtype"] == "float16" else np.float32
        v = np.asarray(vectors, dtype=np.float32).astype(dt)
        norms = np.linalg.norm(v.astype(np.float64), axis=1).astype(np.float32)
        blobs = {names["vectors"]: npy_bytes(v), names["norms"]: npy_bytes(norms)}
        if meta is not None:
            n = len(v)
            cols = {c: meta[c] if c in meta else [-1] * n for c in META_COLUMNS}
            buf = io.BytesIO()
            pq.write_table(pa.table(cols, schema=meta_schema()), buf)
            blobs[names["meta"]] = buf.getvalue()
        out = {}
        for name, data in blobs.items():
            fsync_write(self.path / name, data)
            out[name] = digest(data)
        return out

    def replace_shard_vectors(self, k: int, vectors: np.ndarray) -> None:
        """Rewrite shard ``k``'s vectors and norms (a repair: same rows, recomputed) and record them."""
        s = self.shards()[k]
        if np.asarray(vectors).shape != (s["count"], self.dim) or not np.isfinite(vectors).all():
            raise ConvlensError(f"internal: a repair of shard {k} must give {s['count']} finite rows of {self.dim}")
        s.setdefault("files", {}).update(self._write_shard_files(s, vectors, None))
        self._mm.pop(k, None)
        self.write_manifest()

    # --- integrity ---------------------------------------------------------------------------
    def owned_files(self) -> list[str]:
        """Every file name the manifest lists: the only files convlens writes, replaces or deletes here."""
        m = self.manifest
        names = ["manifest.json", "report.json", *m.get("pending", [])]
        for s in m["shards"]:
            names += [s[key] for key in ("vectors", "norms", "meta") if key in s]
        names += [r["file"] for r in m.get("projections", {}).values() if "file" in r]
        for r in m.get("indexes", {}).values():
            names += list(r.get("files", []))
        return list(dict.fromkeys(names))

    def delete_files(self) -> int:
        """Delete the files the manifest lists (and their temporary ``.NAME*.part`` siblings left
        by a killed write); nothing else in the folder. Returns how many were deleted."""
        owned = self.owned_files()
        n = 0
        for name in owned[1:] + owned[:1]:  # the manifest last: a failure leaves it to try again
            f = self.path / name
            if f.is_file():
                f.unlink()
                n += 1
        for f in self.path.glob(".*.part"):
            if any(f.name.startswith("." + name) for name in owned):
                f.unlink()
        self._mm.clear()
        return n

    def check_lengths(self) -> None:
        """Each committed shard file exists with the length the manifest recorded (cheap: a stat)."""
        for k, s in enumerate(self.shards()):
            for name, rec in s.get("files", {}).items():
                f = self.path / name
                size = f.stat().st_size if f.is_file() else None
                if size != rec["bytes"]:
                    what = "missing" if size is None else f"truncated or extended ({size} of {rec['bytes']} bytes)"
                    raise ConvlensError(self._damage_message(name, what))

    def _damage_message(self, name: str, what: str) -> str:
        return (f"shard file {name} of store {self.path} is {what}; run `convlens embed SOURCE --out {self.path}` "
                f"again to re-extract only that shard (`convlens verify {self.path}` checks every shard)")

    def verify(self) -> list[dict]:
        """Check every shard file's length and SHA-256 against the manifest; [] when intact, else
        one {"shard", "file", "reason"} per damaged file (shard = index among non-empty shards)."""
        bad = []
        for k, s in enumerate(self.shards()):
            for name in (s["vectors"], s["norms"], s["meta"]):
                rec = s.get("files", {}).get(name)
                f = self.path / name
                if not f.is_file():
                    bad.append({"shard": k, "file": name, "reason": "missing"})
                elif rec is None:
                    continue  # a version-1 store: no checksum recorded
                elif f.stat().st_size != rec["bytes"]:
                    bad.append({"shard": k, "file": name, "reason": f"{f.stat().st_size} of {rec['bytes']} bytes"})
                elif file_digest(f) != rec["sha256"]:
                    bad.append({"shard": k, "file": name, "reason": "checksum mismatch"})
        return bad

    def _write_report(self) -> None:
        rep = self.report()
        fsync_write(self.path / "report.json", json.dumps({"skipped": rep.skipped, "duplicates": rep.duplicates},
                                                           indent=1, ensure_ascii=False).encode())

    # --- reading ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.manifest["count"])

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    def __repr__(self) -> str:
        m = self.manifest
        return f"{type(self).__name__}({str(self.path)!r}, {len(self)} x {self.dim}, model={m.get('model')}, layer={m.get('layer')})"

    def shards(self) -> list[dict]:
        """The manifest's non-empty shard records ({vectors, norms, meta, count, start, files})."""
        return [s for s in self.manifest["shards"] if s["count"]]

    _write_manifest, _shards = write_manifest, shards  # the old private names

    def _shard(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        if k not in self._mm:
            s = self.shards()[k]
            try:
                vec = np.load(self.path / s["vectors"], mmap_mode="r")
                norms = np.load(self.path / s["norms"])
            except (ValueError, OSError, EOFError) as e:
                raise ConvlensError(self._damage_message(s["vectors"], f"unreadable ({str(e)[:80]})")) from None
            if vec.shape != (s["count"], self.dim) or norms.shape != (s["count"],):
                raise ConvlensError(self._damage_message(s["vectors"], f"of shape {vec.shape}, the manifest says "
                                                                      f"({s['count']}, {self.dim})"))
            self._mm[k] = (vec, norms)
        return self._mm[k]

    def blocks(self, rows: int = 65536) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(start, vectors (b, dim) read-only view or float32 copy, norms (b,)) over the whole store."""
        for k, s in enumerate(self.shards()):
            vec, norms = self._shard(k)
            for i in range(0, s["count"], rows):
                yield s["start"] + i, vec[i:i + rows], norms[i:i + rows]

    def vectors(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows [start, stop) as a new float32 array (raw, not normalized)."""
        stop = len(self) if stop is None else min(stop, len(self))
        out = np.empty((max(0, stop - start), self.dim), np.float32)
        for s0, vec, _ in self.blocks():
            a, b = max(start, s0), min(stop, s0 + len(vec))
            if a < b:
                out[a - start:b - start] = vec[a - s0:b - s0]
        return out

    def take(self, indices) -> np.ndarray:
        """Rows at ``indices`` (any order) as float32 (n, dim)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise ConvlensError(f"index out of range 0..{len(self) - 1}")
        out = np.empty((len(idx), self.dim), np.float32)
        starts = np.array([s["start"] for s in self.shards()])
        shard_of = np.searchsorted(starts, idx, side="right") - 1
        for k in np.unique(shard_of):
            sel = np.nonzero(shard_of == k)[0]
            vec, _ = self._shard(int(k))
            out[sel] = vec[idx[sel] - starts[k]]
        return out

    def norms(self) -> np.ndarray:
        return np.concatenate([self._shard(k)[1] for k in range(len(self.shards()))]) if len(self) else np.zeros(0, np.float32)

    def metadata(self):
        """The metadata table (pyarrow.Table): item, path, hash, width, height, label, thumbnail."""
        if self._meta is None:
            import pyarrow as pa
            import pyarrow.parquet as pq
            tables = [pq.read_table(self.path / s["meta"]) for s in self.shards()]
            self._meta = pa.concat_tables(tables) if tables else meta_schema().empty_table()
        return self._meta

    def reuse_metadata(self, other: "VectorStore") -> bool:
        """Take ``other``'s already-read metadata table when both list the same shards (a store
        reopened because only its manifest changed, e.g. a projection was saved); True if taken."""
        if other._meta is None or other.manifest.get("shards") != self.manifest.get("shards"):
            return False
        self._meta = other._meta
        return True

    def read_columns(self, names: list[str]):
        """Some metadata columns of every row (pyarrow.Table), read without the others (thumbnails)."""
        import pyarrow as pa
        import pyarrow.parquet as pq
        if self._meta is not None:
            return self._meta.select(names)
        tables = [pq.read_table(self.path / s["meta"], columns=names) for s in self.shards()]
        return pa.concat_tables(tables) if tables else meta_schema().empty_table().select(names)

    def column(self, name: str) -> list:
        return self.metadata().column(name).to_pylist()

    def labels(self) -> list[str | None]:
        return self.column("label")

    def thumbnail(self, i: int):
        """The stored thumbnail of row ``i`` as a PIL image (what the model saw, centre crop)."""
        from PIL import Image
        if not 0 <= int(i) < len(self):
            raise ConvlensError(f"index {i} out of range: the store has {len(self)} vectors (0..{len(self) - 1})")
        b = self.metadata().column("thumbnail")[int(i)].as_py()
        if b is None:
            raise ConvlensError(f"row {i} of {self.path} has no thumbnail (a store made from vectors)")
        return Image.open(io.BytesIO(b)).convert("RGB")

    def has_thumbnails(self) -> bool:
        return len(self) > 0 and self.metadata().column("thumbnail").null_count == 0

    def thumbnails(self, indices=None) -> list:
        idx = range(len(self)) if indices is None else indices
        return [self.thumbnail(int(i)) for i in idx]

    def image(self, i: int, size=None):
        """Row ``i``'s image: reloaded from its path when it still exists, else the thumbnail."""
        if not 0 <= int(i) < len(self):
            raise ConvlensError(f"index {i} out of range: the store has {len(self)} vectors (0..{len(self) - 1})")
        p = self.column("path")[int(i)]
        if p and os.path.isfile(p):
            img = load_image(p)
        else:
            img = load_image(self.thumbnail(i))
        return fit(img, size) if size else img

    def report(self) -> StoreReport:
        """Skipped items and duplicate groups (same content hash) so far."""
        groups: dict[str, list[int]] = {}
        if len(self):
            for i, h in enumerate(self.column("hash")):
                groups.setdefault(h, []).append(i)
        return StoreReport(list(self.manifest.get("skipped", [])), [g for g in groups.values() if len(g) > 1])

    # --- results saved with the store --------------------------------------------------------
    def save_array(self, name: str, array: np.ndarray, info: dict) -> Path:
        """Save a derived array (a projection, a kNN graph) beside the store and record it in the manifest."""
        path = self.path / f"{name}.npy"
        self.manifest.setdefault("projections", {})[name] = {**info, "file": path.name, "count": len(self)}
        self.write_manifest()  # listed before it is written: convlens only writes the manifest's files
        fsync_write(path, npy_bytes(array))
        return path

    def load_array(self, name: str, info: dict | None = None) -> np.ndarray | None:
        """A saved array if it exists for the current count and (when given) the same parameters."""
        rec = self.manifest.get("projections", {}).get(name)
        if rec is None or rec.get("count") != len(self) or not (self.path / rec["file"]).exists():
            return None
        if info is not None and any(rec.get(k) != v for k, v in info.items()):
            return None
        return np.load(self.path / rec["file"])


def as_torch(block: np.ndarray):
    """A read-only numpy block as a float32 torch tensor without copying when possible."""
    import torch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # non-writable memmap: we only read it
        t = torch.from_numpy(block) if block.dtype == np.float32 else torch.from_numpy(np.asarray(block, np.float32))
    return t


class ArrayStore:
    """An in-memory (N, dim) array with the read protocol ``StoreReader`` (blocks, take, vectors,
    norms), so search and projection accept plain arrays too. Nothing is cached to disk."""

    def __init__(self, vectors):
        a = vectors.detach().cpu().numpy() if hasattr(vectors, "detach") else np.asarray(vectors)
        if a.ndim != 2:
            raise ConvlensError(f"vectors must be (N, dim), got shape {a.shape}")
        self._a = np.ascontiguousarray(a, dtype=np.float32)
        if not np.isfinite(self._a).all():
            bad = int(np.nonzero(~np.isfinite(self._a).all(1))[0][0])
            raise ConvlensError(f"vector {bad} holds NaN or inf values; pass finite vectors")
        self._n = np.linalg.norm(self._a.astype(np.float64), axis=1).astype(np.float32)
        self.manifest = {"metric": "cosine", "projections": {}}
        self.path = None

    def __len__(self) -> int:
        return len(self._a)

    @property
    def dim(self) -> int:
        return self._a.shape[1]

    def blocks(self, rows: int = 65536):
        for i in range(0, len(self._a), rows):
            yield i, self._a[i:i + rows], self._n[i:i + rows]

    def vectors(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        return self._a[start:stop].copy()

    def take(self, indices) -> np.ndarray:
        return self._a[np.asarray(indices, dtype=np.int64)]

    def norms(self) -> np.ndarray:
        return self._n

    def save_array(self, name, array, info):
        return None

    def load_array(self, name, info=None):
        return None


def as_store(x, store_class=None):
    """Any ``StoreReader`` (a ``VectorStore``, an ``ArrayStore``, another backend) as is; a path opens a
    store (of ``store_class``, default ``VectorStore``); an array wraps in ``ArrayStore``."""
    if isinstance(x, (VectorStore, ArrayStore)) or (not hasattr(x, "__array__") and isinstance(x, StoreReader)):
        return x
    if isinstance(x, (str, os.PathLike)):
        return (store_class or VectorStore).open(x)
    return ArrayStore(x)
