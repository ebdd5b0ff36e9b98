"""CLI command for concept discovery (CRAFT): ``convlens concepts``. Options come from ``ConceptsConfig``.

    convlens concepts gcompris --label monument --class palace --only-predicted --layer features.18 --n 6 --out palace/

Writes into the folder: ``concepts.png`` (each concept's top crops under the importance bars),
``concept_<k>.png`` (concept k's heat map on the first images) and ``concepts.json`` (the numbers).
"""
from __future__ import annotations

import typer

from .common import MODEL_OPT, WEIGHTS_OPT, at_least, config_command, echo, fixed, get_model

HELP = ("Concept discovery (CRAFT, Fel et al. 2023): NMF of a layer's activations over random crops of IMAGES; "
        "each concept's top crops, its importance for the class (Sobol total indices and gradient x input on the "
        "concept coefficients) and its heat maps.\n\nExample: convlens concepts gcompris --label monument "
        "--class palace --only-predicted --layer features.18 --n 6 --out palace/")


def _folder(path: str):
    """The output folder, checked before any work: not a file, creatable."""
    from pathlib import Path

    from ..errors import ConvlensError
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ConvlensError(f"--out {path} is a file; give a folder (it is created if missing)")
    parent = next((q for q in p.parents if q.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ConvlensError(f"cannot create {path}: {parent} is a file, not a folder")
    return p


def _items(images: str, label: str | None, limit: int):
    """The image paths / tensors IMAGES names (``resolve_images``), those under a sub-folder ``label``
    if given, at most ``limit``."""
    from ..errors import ConvlensError
    from ..images.resolve import resolve_images
    s = resolve_images(images, n=limit)
    if label:
        if s.kind not in ("folder", "files"):
            raise ConvlensError(f"--label needs a folder of sub-folders (e.g. gcompris), not '{images}'")
        files = s.files()
        items = [f for f in files if f.parent.name.lower() == label.lower()]
        if not items:
            names = sorted({f.parent.name for f in files})
            raise ConvlensError(f"no images under a sub-folder '{label}'; sub-folders: {', '.join(names[:12])}")
    else:
        items = list(s.items())
    return items[:limit]


def _predicted(m, items, class_):
    """The images (fitted tensors) the model assigns to ``class_`` (needed: the class)."""
    import torch

    from ..errors import ConvlensError
    from ..images import load_image
    if class_ is None:
        raise ConvlensError("--only-predicted needs --class")
    cls = m.class_index(class_)
    keep = []
    for it in items:
        x = load_image(it, m.input_size)
        with torch.no_grad():
            if int(m(x).argmax(1)) == cls:
                keep.append(x)
    if len(keep) < 1:
        raise ConvlensError(f"none of the {len(items)} images is predicted '{class_}'; drop --only-predicted")
    return keep


def register(app: typer.Typer) -> None:
    from ..inspect.concepts import ConceptsConfig

    def run(cfg, images: str, layer: str, class_: str | None, label: str | None, predicted: bool, limit: int,
            heatmaps: int, batch_size: int, model: str, weights: str, folder: str):
        import json

        from ..files import atomic_write
        from ..images import save_png
        from ..inspect import concepts
        from ..progress import cli_bar
        from ..render import side_by_side
        out = _folder(folder)
        at_least(limit, 1, "--limit"), at_least(batch_size, 1, "--batch-size"), at_least(heatmaps, 0, "--heatmaps")
        items = _items(images, label, 100000 if predicted else limit)
        m = get_model(model, weights)
        m.module(layer)  # an unknown layer fails before the images load
        if predicted:
            items = _predicted(m, items, class_)[:limit]
        with cli_bar(f"concepts {layer}", total=None) as bar:
            c = concepts(m, items, layer, class_, cfg, batch_size=batch_size, progress=bar)
        out.mkdir(parents=True, exist_ok=True)
        written = [save_png(c.plot(), out / "concepts.png")]
        shown = c.images[:heatmaps]
        for k in range(c.n if heatmaps else 0):
            fig = side_by_side([c.heatmap(x, k) for x in shown], height=160,
                               title=f"concept {k + 1} on the first {len(shown)} images")
            written.append(save_png(fig, out / f"concept_{k + 1}.png"))
        summary = {**c.summary(), "images": len(c.images), "model": m.name}
        written.append(atomic_write(out / "concepts.json", json.dumps(summary, indent=1)))
        echo(f"'{c.class_name}' at {layer}: {c.n} concepts from {len(c.U)} crops of {len(c.images)} images, "
             f"NMF error {c.error:.3f}{' (activations split into +/-)' if c.split else ''}")
        echo(f"{'concept':>8} {'Sobol':>7} {'grad x input':>13}")
        for k in range(c.n):
            echo(f"{k + 1:8d} {float(c.sobol[k]):7.3f} {float(c.gxi[k]):13.4g}")
        echo(f"wrote {len(written)} files to {out}")

    fixed_params = [
        fixed("images", typer.Argument(..., help="Images: a folder, a file, a sample name, 'samples:N', or a labelled "
                                                 "set (gcompris, imagenet20).")),
        fixed("layer", typer.Option(..., "--layer", "-l", help="Layer with a (C, H, W) output (post-ReLU suits NMF).")),
        fixed("class_", typer.Option(None, "--class", "-c", help="Class to explain (index or name); default: the "
                                                                 "class predicted most often on the images.")),
        fixed("label", typer.Option(None, "--label", help="Only the images in this sub-folder (e.g. monument in "
                                                          "gcompris).")),
        fixed("predicted", typer.Option(False, "--only-predicted", help="Keep only the images the model assigns to "
                                                                        "--class (as the explorer's panel does)."), bool),
        fixed("limit", typer.Option(64, "--limit", help="Use at most this many images."), int),
        fixed("heatmaps", typer.Option(4, "--heatmaps", help="Draw each concept's heat map on this many images."), int),
        fixed("batch_size", typer.Option(32, "--batch-size", help="Crops per forward pass."), int),
        fixed("model", MODEL_OPT), fixed("weights", WEIGHTS_OPT),
        fixed("folder", typer.Option(..., "--out", "-o", help="Output folder (created if missing).")),
    ]
    config_command(app, "concepts", ConceptsConfig, fixed_params, run, HELP)
