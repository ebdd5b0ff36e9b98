"""``convlens evaluate``: which map to believe, as a table (issue 22).

    convlens evaluate chelsea --methods saliency,grad_cam,ig --metrics deletion,insertion -o curves.png
    convlens evaluate photos/ --limit 8 --set deletion.steps=100 --table card.csv -o curves.png
"""
from __future__ import annotations

import typing

import typer

from .common import MODEL_OPT, WEIGHTS_OPT, check_output, echo, get_model, out_path

SPLIT_HELP = "comma-separated"


def _names(text: str, flag: str) -> list[str]:
    from ..errors import ConvlensError
    names = [n.strip() for n in str(text).split(",") if n.strip()]
    if not names:
        raise ConvlensError(f"{flag} is empty; give comma-separated names, e.g. {flag} saliency,grad_cam")
    return names


def _settings(items: list[str], steps: int | None, metrics: list[str]) -> dict:
    """``--set metric.field=value`` (and ``--steps`` for every chosen metric with a ``steps`` field) as
    ``{metric: {field: text}}``; the evaluator parses and range-checks each value."""
    import dataclasses
    from ..errors import ConvlensError
    from ..faithfulness import get_metric
    from ..fields import parse_config
    out: dict = {}
    if steps is not None:
        for k in metrics:
            m = get_metric(k)
            if m.config is not None and "steps" in {f.name for f in dataclasses.fields(m.config)}:
                out.setdefault(m.id, {})["steps"] = str(steps)
    for item in items or []:
        key, eq, value = item.partition("=")
        metric, dot, name = key.partition(".")
        if not (eq and dot and metric and name):
            raise ConvlensError(f"--set '{item}' must look like metric.field=value, e.g. --set deletion.steps=100")
        out.setdefault(get_metric(metric).id, {})[name.strip().replace("-", "_")] = value.strip()
    parsed = {}
    for k, values in out.items():
        cfg = get_metric(k).config
        if cfg is None:
            raise ConvlensError(f"metric '{k}' takes no parameters; drop its --set")
        hints = typing.get_type_hints(cfg)
        for name in values:
            if name not in hints:
                raise ConvlensError(f"metric '{k}' has no parameter '{name}'; its parameters: {', '.join(hints)}")
        parsed[k] = parse_config(cfg, {n: _typed(hints[n], v, f"{k}.{n}") for n, v in values.items()})
    return parsed


def _typed(hint, text: str, name: str):
    """A ``--set`` value as its field's type (int, float, bool, None or text for choices)."""
    from ..errors import ConvlensError
    kinds = [a for a in (typing.get_args(hint) or (hint,)) if a is not type(None)]
    if text.lower() == "none" and type(None) in typing.get_args(hint):
        return None
    for kind in (bool, int, float):
        if kind in kinds:
            try:
                return {"true": True, "false": False}[text.lower()] if kind is bool else kind(text)
            except (KeyError, ValueError):
                raise ConvlensError(f"--set {name}={text}: expected {kind.__name__}") from None
    return text


def _print_card(card) -> None:
    from rich.console import Console
    from rich.table import Table

    from ..faithfulness import METRICS
    rows = card.summary()
    table = Table(title=f"Which map to believe: {len(card.labels)} image(s) ({', '.join(dict.fromkeys(card.labels))})"[:200])
    table.add_column("method")
    for k in card.metrics:
        table.add_column(f"{k}\n({'↑' if card.better(k) == 'higher' else '↓'} better)", justify="right")
    for r in rows:
        cells = []
        for k in card.metrics:
            v, rank = r[k], r.get(f"{k}_rank")
            text = "n/a" if v != v else f"{v:.3f}"
            cells.append(f"[bold green]{text}[/]" if rank == 1 else text)
        table.add_row(r["method"], *cells)
    Console().print(table)
    params = {row["metric"]: row["params"] for row in card.rows}
    for k in card.metrics:
        if params.get(k):
            echo(f"  {k}: {METRICS[k].paper}; {params[k]}")


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate_cmd(images: str = typer.Argument(..., help="Images: a file, a folder, a sample name, "
                                                   "'samples:N', 'gcompris' or 'imagenet20'."),
                     methods: str = typer.Option("saliency,grad_cam,integrated_gradients", "--methods",
                                                 help="Attribution methods, comma-separated (random and edge are always added)."),
                     metrics: str = typer.Option("deletion,insertion,sparseness,complexity", "--metrics",
                                                 help="Metrics, comma-separated (docs/attribution.md lists them)."),
                     limit: int = typer.Option(4, "--limit", help="At most this many images of IMAGES."),
                     steps: int = typer.Option(None, "--steps", help="Steps of every curve metric (default: each metric's)."),
                     set_: list[str] = typer.Option(None, "--set", help="A metric's parameter: metric.field=value (repeatable)."),
                     target: str = typer.Option(None, "--target", "-t", help="Class index or name; default: each image's predicted class."),
                     mask: str = typer.Option(None, "--mask", help="The object, for pointing_game / relevance_mass / "
                                              "relevance_rank: 'grabcut', a box 'y0,x0,y1,x1' (pixels of the model's crop) "
                                              "or a mask image (white = object)."),
                     model: str = MODEL_OPT, weights: str = WEIGHTS_OPT,
                     table_out: str = typer.Option(None, "--table", help="Also write the tidy table (.csv or .parquet)."),
                     out: str = typer.Option(..., "--out", "-o", help="Curves of the first image (PNG).")):
        """Score attribution maps with faithfulness metrics and print the report card (Petsiuk 2018, Rong 2022...).

        Example: convlens evaluate chelsea --methods saliency,grad_cam,ig --metrics deletion,insertion -o curves.png
        """
        from ..errors import ConvlensError
        from ..faithfulness import evaluate, get_metric
        from ..images import resolve_images
        from ..progress import cli_stage_bar
        png = out_path(out)
        if table_out is not None:
            check_output(table_out)
            if not str(table_out).lower().endswith((".csv", ".parquet")):
                raise ConvlensError(f"--table {table_out} must end in .csv or .parquet")
        if limit < 1:
            raise ConvlensError(f"--limit must be at least 1, got {limit}")
        method_names, metric_names = _names(methods, "--methods"), _names(metrics, "--metrics")
        for k in metric_names:
            get_metric(k)
        configs = _settings(set_, steps, metric_names)
        m = get_model(model, weights)
        x = resolve_images(images).tensor(m.input_size, limit)
        mask = _mask(mask, x)
        try:
            with cli_stage_bar() as bar:
                card = evaluate(m, x, method_names, metric_names, target=target, mask=mask, configs=configs,
                                progress=bar)
        except KeyboardInterrupt as e:
            import sys
            if getattr(e, "partial", None) is None:
                print("convlens: interrupted before any metric finished; nothing written", file=sys.stderr)
                raise SystemExit(130) from None
            card = e.partial
            print(f"convlens: interrupted; the card below has the metrics finished: {', '.join(card.metrics)}",
                  file=sys.stderr)
        _print_card(card)
        from ..images import save_png
        try:
            fig = card.plot()
        except ConvlensError:
            fig = None  # no curve metric: the table says it all
        if fig is not None:
            echo(f"wrote {save_png(fig, png)}")
        if table_out is not None:
            _write_table(card, table_out)
            echo(f"wrote {table_out}")


def _mask(text, x):
    """``--mask``: None, 'grabcut', 'y0,x0,y1,x1', or an image file fitted like the images (white = object)."""
    from pathlib import Path

    from ..errors import ConvlensError
    if text is None or text.lower() == "grabcut":
        return text
    parts = text.split(",")
    if len(parts) == 4:
        try:
            return tuple(int(p) for p in parts)
        except ValueError:
            raise ConvlensError(f"--mask {text}: a box is four integers y0,x0,y1,x1") from None
    if not Path(text).is_file():
        raise ConvlensError(f"--mask {text}: not 'grabcut', a box y0,x0,y1,x1 or an image file")
    from ..images import fit, load_image
    return fit(load_image(text), tuple(x.shape[-2:]))[0].mean(0) > 0.5


def _write_table(card, path: str) -> None:
    import io

    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    from ..files import atomic_write
    buf = io.BytesIO()
    if str(path).lower().endswith(".parquet"):
        pq.write_table(card.table, buf)
    else:
        pcsv.write_csv(card.table, buf)
    atomic_write(path, buf.getvalue())
