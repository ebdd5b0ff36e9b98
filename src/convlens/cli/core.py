"""Foundation commands: models, layers, predict, demo."""
from __future__ import annotations

from pathlib import Path
from typing import List

import typer

from .common import MODEL_OPT, WEIGHTS_OPT, at_least, check_output, echo, get_image, get_model


OFFLINE_NOTES = {  # the offline models that are not torchvision names (models/registry.py: OFFLINE_MODELS)
    "vgg16-imagenet": "Keras ImageNet VGG-16 conv layers, offline; no classifier: style and texture",
    "vgg16-hed": "VGG-16 conv features of the HED edge detector, offline; no classifier: style/texture",
    "efficientnet_lite2": "EfficientNet-Lite2 ImageNet classifier with its 1000-class head, offline, 260 px",
    "efficientnet_lite0": "EfficientNet-Lite0 ImageNet classifier with its 1000-class head, offline, 224 px",
}


def register(app: typer.Typer) -> None:
    @app.command("models")
    def models_cmd(all_: bool = typer.Option(False, "--all", help="List every torchvision classifier, not just the lecture's.")):
        """List model names. Example: convlens models --all"""
        from ..models import LECTURE_MODELS, available_models
        from ..models.registry import DEFAULT_MODEL, DEFAULT_WEIGHTS
        names = available_models() if all_ else LECTURE_MODELS
        for n in names:
            tag = f"  (default, weights {DEFAULT_WEIGHTS[n]}, offline)" if n == DEFAULT_MODEL else ""
            echo(n + tag)
        if not all_:
            from ..models.registry import OFFLINE_MODELS
            for name, what in OFFLINE_NOTES.items():
                if name in OFFLINE_MODELS:
                    echo(f"{name}  ({what})")

    @app.command("layers")
    def layers_cmd(model: str = typer.Argument("mobilenet_v2", help="Model name."),
                   weights: str = typer.Option("none", "--weights", "-w", help="Weights (shapes do not depend on them)."),
                   kind: str = typer.Option(None, "--kind", help="Only layers whose type contains this, e.g. conv."),
                   rf: bool = typer.Option(False, "--rf", help="Also print each conv layer's receptive field.")):
        """Every layer's dotted name, type, output shape and parameter count.

        Example: convlens layers resnet18 --kind conv
        """
        from rich.console import Console
        from rich.table import Table
        from ..models.registry import OFFLINE_MODELS
        # shapes do not depend on weights: random ones by default, except the offline nets (one set each)
        m = get_model(model, "default" if model in OFFLINE_MODELS and weights == "none" else weights)
        t = Table(title=f"{model} layers at {m.input_size[0]}x{m.input_size[1]}")
        for col in ("name", "type", "output shape", "params") + (("receptive field",) if rf else ()):
            t.add_column(col)
        infos = m.layers(kind)
        if not infos:
            from ..errors import ConvlensError
            types = sorted({li.type for li in m.layers()})
            raise ConvlensError(f"no layer of {model} has a type containing '{kind}'; types: {', '.join(types)}")
        fields = {}
        if rf:  # analytic where the module graph allows it (all at once), else the gradient method
            from ..probe import receptive_fields
            from ..progress import cli_bar
            conv = [li.name for li in infos if li.is_conv]
            with cli_bar("receptive fields", len(conv)) as bar:
                fields = receptive_fields(m, conv, progress=bar)
        for li in infos:
            row = [li.name, li.type, "x".join(map(str, li.shape)), f"{li.params:,}"]
            if rf:
                row.append(_rf_text(fields[li.name]) if li.name in fields else "")
            t.add_row(*row)
        Console(width=140).print(t)

    @app.command("predict")
    def predict_cmd(images: List[str] = typer.Argument(..., help="Image files or sample names (see --samples)."),
                    model: str = MODEL_OPT, weights: str = WEIGHTS_OPT,
                    topk: int = typer.Option(5, "--topk", "-k", help="How many classes per image.")):
        """Top-k classes of each image. Example: convlens predict chelsea coffee --topk 3"""
        from ..drivers.predict import predict
        at_least(topk, 1, "--topk")
        m = get_model(model, weights)
        for arg in images:
            preds = predict(m, get_image(arg), topk)[0]
            echo(f"{arg}:")
            for p in preds:
                echo(f"  {p.prob:7.4f}  {p.label} ({p.index})")

    @app.command("samples")
    def samples_cmd():
        """List the bundled sample images (usable wherever an IMAGE is expected). Example: convlens samples"""
        from ..images.samples import SAMPLES
        for name, (_, desc) in SAMPLES.items():
            echo(f"{name:14s} {desc}")

    @app.command("demo")
    def demo_cmd(out: str = typer.Option("out/demo", "--out", "-o", help="Report folder."),
                 quick: bool = typer.Option(False, "--quick", help="Fewer images and steps (for tests)."),
                 only: str = typer.Option(None, "--only", help="Comma-separated section names to build.")):
        """Build the HTML demo report of every technique on the offline model.

        Example: convlens demo --out out/demo
        """
        from ..demo import run_demo
        from ..errors import ConvlensError
        if Path(out).exists() and not Path(out).is_dir():
            raise ConvlensError(f"--out {out} is a file; give a folder for the report")
        if not Path(out).is_dir():  # a new folder: no file where a parent folder must be (a rerun reuses it)
            check_output(out)
        if only:  # before the report folder is made
            from ..demo.run import all_sections
            names = [n for n, _ in all_sections()]
            unknown = sorted(set(only.split(",")) - set(names))
            if unknown:
                raise ConvlensError(f"unknown demo section(s) {', '.join(unknown)}; choose from {', '.join(names)}")
        path, failures = run_demo(out, quick=quick, only=only.split(",") if only else None, log=echo)
        echo(f"report: {path}")
        if failures:
            raise typer.Exit(code=1)


def _rf_text(rf) -> str:
    return f"{rf.size[0]}x{rf.size[1]} /{rf.stride[0]} @{rf.offset[0]}"
