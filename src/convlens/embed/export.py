"""Export a store to the TensorBoard Embedding Projector, and 2-D coordinates to CSV / Parquet.

Projector folder (open with ``tensorboard --logdir DIR``, Projector tab, or load the files in
projector.tensorflow.org):

    tensors.tsv              one vector per line, tab-separated (the raw vectors)
    metadata.tsv             one line per vector; a single column has NO header line, several
                             columns have one header line (the projector's rule); tabs and newlines
                             inside values are replaced by spaces
    sprite.png               the thumbnails tiled row-major in a square, at most 8192 x 8192 px
    projector_config.pbtxt   the embeddings { tensor_path, metadata_path, sprite { ... } } record

The projector loads at most 100,000 points: above that a stratified sample (by label, else uniform)
of ``max_points`` rows is exported, and ``export_projector`` says so.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import ConvlensError
from ..images.io import save_png, write_atomic

PROJECTOR_MAX = 100_000
SPRITE_MAX = 8192


def _clean(v) -> str:
    return "" if v is None else str(v).replace("\t", " ").replace("\r", " ").replace("\n", " ")


def stratified_sample(labels, n: int, seed: int = 0) -> np.ndarray:
    """Sorted row indices: ``n`` rows drawn from each label group in proportion to its size."""
    rng = np.random.default_rng(seed)
    N = len(labels)
    if n >= N:
        return np.arange(N)
    groups: dict = {}
    for i, l in enumerate(labels):
        groups.setdefault(l, []).append(i)
    take = []
    for g in groups.values():
        m = max(1, round(n * len(g) / N))
        take.extend(rng.choice(g, size=min(m, len(g)), replace=False).tolist())
    take = np.array(sorted(take))
    if len(take) > n:
        take = np.sort(rng.choice(take, size=n, replace=False))
    return take


PROJECTOR_FILES = ("tensors.tsv", "metadata.tsv", "sprite.png", "projector_config.pbtxt")


def check_export_folder(out: Path) -> None:
    """A new or empty folder, or an earlier convlens export (its files only, replaced): never a
    folder with other files, whose tensors.tsv or metadata.tsv might be the user's."""
    if out.exists() and not out.is_dir():
        raise ConvlensError(f"{out} is a file; give the projector export a new or empty folder")
    entries = sorted(x.name for x in out.iterdir()) if out.is_dir() else []
    if not entries:
        return
    cfg = out / "projector_config.pbtxt"
    ours = cfg.is_file() and 'tensor_name: "convlens"' in cfg.read_text(errors="replace")
    others = [e for e in entries if e not in PROJECTOR_FILES]
    if not ours or others:
        raise ConvlensError(f"{out} is not empty ({len(entries)} entries, e.g. {(others or entries)[0]!r}) and not a "
                            "convlens projector export; pick a new or empty folder")


def export_projector(store, folder, *, columns=("label", "path"), max_points: int = PROJECTOR_MAX,
                     sprite: bool = True, seed: int = 0) -> dict:
    """Write a TensorBoard projector folder for ``store``; returns {"rows", "sampled", "files", "tile"}.

    Args:
        columns: metadata columns (from the store's table; empty columns are dropped).
        max_points: the projector's cap (100k); more rows are stratified-sampled by label.
        sprite: write sprite.png from the thumbnails (tile = min(thumb, 8192 // ceil(sqrt(n)))).
    """
    out = Path(folder)
    n_all = len(store)
    if n_all == 0:
        raise ConvlensError("the store is empty; nothing to export")
    if isinstance(max_points, bool) or not isinstance(max_points, (int, np.integer)) or max_points < 1:
        raise ConvlensError(f"max_points (--max-points) must be an integer >= 1, got {max_points!r}")
    if sprite and not store.has_thumbnails():
        raise ConvlensError("the store has no thumbnails for sprite.png (it was made from vectors); pass --no-sprite "
                            "(sprite=False)")
    check_export_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    labels = store.column("label")
    rows = stratified_sample(labels, max_points, seed) if n_all > max_points else np.arange(n_all)
    lines = []
    for a in range(0, len(rows), 4096):
        v = store.take(rows[a:a + 4096])
        lines.extend("\t".join(f"{x:.7g}" for x in r) for r in v)
    write_atomic(out / "tensors.tsv", "\n".join(lines) + "\n")
    cols = [c for c in columns if any(x not in (None, "") for x in store.column(c))]
    meta_lines = []
    if cols:
        data = {c: store.column(c) for c in cols}
        if len(cols) > 1:
            meta_lines.append("\t".join(cols))
        meta_lines += ["\t".join(_clean(data[c][int(i)]) for c in cols) for i in rows]
        write_atomic(out / "metadata.tsv", "\n".join(meta_lines) + "\n")
    cfg = ['embeddings {', '  tensor_name: "convlens"', '  tensor_path: "tensors.tsv"']
    if cols:
        cfg.append('  metadata_path: "metadata.tsv"')
    tile = None
    if sprite:
        from PIL import Image
        per_side = math.ceil(math.sqrt(len(rows)))
        thumb = store.thumbnail(0).size[0]
        tile = max(1, min(thumb, SPRITE_MAX // per_side))
        canvas = Image.new("RGB", (per_side * tile, per_side * tile), (255, 255, 255))
        for j, i in enumerate(rows):
            r, c = divmod(j, per_side)
            canvas.paste(store.thumbnail(int(i)).resize((tile, tile), Image.BILINEAR), (c * tile, r * tile))
        save_png(canvas, out / "sprite.png")
        cfg += ['  sprite {', '    image_path: "sprite.png"', f'    single_image_dim: {tile}',
                f'    single_image_dim: {tile}', '  }']
    cfg.append('}')
    write_atomic(out / "projector_config.pbtxt", "\n".join(cfg) + "\n")
    files = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    return {"rows": len(rows), "sampled": n_all > max_points, "total": n_all, "files": files, "tile": tile,
            "metadata_columns": cols}


def coords_table(projection, store=None, path=None):
    """The 2-D coordinates as a pyarrow table (index, x, y[, path, label]); written to ``path`` as
    CSV (``.csv``) or Parquet (``.parquet``) when given."""
    import pyarrow as pa
    c = np.asarray(projection.coords)
    cols = {"index": np.arange(len(c)), "x": c[:, 0].astype(np.float64), "y": c[:, 1].astype(np.float64)}
    if store is not None and hasattr(store, "column"):
        cols["path"] = store.column("path")
        cols["label"] = store.column("label")
    table = pa.table(cols)
    if path is not None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.suffix == ".csv":
            import pyarrow.csv as pcsv
            pcsv.write_csv(table, str(p))
        elif p.suffix == ".parquet":
            import pyarrow.parquet as pq
            pq.write_table(table, str(p))
        else:
            raise ConvlensError(f"{p}: write coordinates as .csv or .parquet")
    return table
