"""CLI commands for the inspect concern: filters, activations, patches."""
from __future__ import annotations

import typer

from .common import MODEL_OPT, WEIGHTS_OPT, at_least, check_output, echo, get_image, get_model, out_path
from .embed import ADDRESS_OPT, ENGINE_OPT, THREADS_OPT, check_engine


def _images_arg(source: str, n: int, seed: int):
    """'samples[:N]', a folder, a file, a sample name... (``images.resolve_images``) -> the images to stream."""
    from ..images.resolve import resolve_images
    return resolve_images(source, n=n, seed=seed).items()


def register(app: typer.Typer) -> None:
    @app.command("filters")
    def filters_cmd(model: str = MODEL_OPT, weights: str = WEIGHTS_OPT,
                    layer: str = typer.Option(None, "--layer", "-l",
                                              help="Conv layer (or block: its first conv). Default: the first conv."),
                    out: str = typer.Option(..., "--out", "-o", help="Output PNG path."),
                    scale: str = typer.Option("per_filter", "--scale",
                                              help="per_filter (each filter to its own max |w|) or shared (one for the layer)."),
                    max_out: int = typer.Option(64, "--max-out", help="Draw at most this many output channels."),
                    max_in: int = typer.Option(32, "--max-in", help="Draw at most this many input channels (later layers).")):
        """Draw a conv layer's raw weights as a grid of tiles (RGB for first layers, grey kernels later).

        Example: convlens filters --model alexnet --weights none --layer features.0 -o filters.png
        """
        from ..inspect import filters
        out_path(out)
        at_least(max_out, 1, "--max-out"), at_least(max_in, 1, "--max-in")
        m = get_model(model, weights)
        g = filters(m, layer, scale=scale, max_out=max_out, max_in=max_in)
        path = g.save(out_path(out))
        echo(f"{g.layer}: {tuple(g.weight.shape)} ({g.kind}), {g.rows}x{g.cols} tiles -> {path}")
        echo(g.note)

    @app.command("activations")
    def activations_cmd(image: str = typer.Argument(..., help="Image file or sample name (e.g. chelsea)."),
                        layer: str = typer.Option(..., "--layer", "-l", help="Layer with a (C, H, W) output."),
                        out: str = typer.Option(..., "--out", "-o", help="Output PNG path."),
                        model: str = MODEL_OPT, weights: str = WEIGHTS_OPT,
                        order: str = typer.Option("channel", "--order", help="channel or mean (strongest first)."),
                        scale: str = typer.Option("layer", "--scale", help="layer (one scale) or channel (each map)."),
                        highlight: int = typer.Option(8, "--highlight", help="Frame this many strongest channels."),
                        max_channels: int = typer.Option(256, "--max-channels", help="Draw at most this many maps."),
                        top: int = typer.Option(10, "--top", help="Print the summary of this many strongest channels.")):
        """The feature maps of one image at a layer, as a grid, with a per-channel summary.

        Example: convlens activations chelsea --layer features.3 --order mean -o acts.png
        """
        from ..inspect import activations
        out_path(out)
        at_least(max_channels, 1, "--max-channels"), at_least(top, 0, "--top"), at_least(highlight, 0, "--highlight")
        m = get_model(model, weights)
        a = activations(m, get_image(image), layer, order=order, scale=scale, highlight=highlight,
                        max_channels=max_channels)
        path = a.save(out_path(out))
        echo(f"{layer}: {tuple(a.maps.shape)} -> {path}")
        echo(f"{'channel':>8} {'mean':>9} {'max':>9} {'active':>7}")
        for c, mean, mx, act in a.summary(top):
            echo(f"{c:8d} {mean:9.4f} {mx:9.4f} {act:7.1%}")

    @app.command("patches")
    def patches_cmd(images: str = typer.Argument(..., help="A folder of images, an image, or 'samples' / "
                                                           "'samples:N' (the bundled sample set)."),
                    layer: str = typer.Option(..., "--layer", "-l", help="Layer with a (C, H, W) output."),
                    out: str = typer.Option(..., "--out", "-o", help="Output PNG path."),
                    channels: str = typer.Option("0,1,2,3", "--channels", "-c", help="Comma-separated channel indices."),
                    k: int = typer.Option(9, "--k", "-k", help="Patches per channel."),
                    model: str = MODEL_OPT, weights: str = WEIGHTS_OPT,
                    whole: bool = typer.Option(False, "--whole", help="Top-k whole images (one per image) with the "
                                                                      "receptive field outlined."),
                    n: int = typer.Option(300, "--n", help="Images in the sample set (with 'samples')."),
                    seed: int = typer.Option(0, "--seed", help="Seed of the sample set's crops."),
                    batch_size: int = typer.Option(32, "--batch-size", help="Images per forward pass."),
                    state: str = typer.Option(None, "--state", help="Checkpoint file: resumes the pass if it exists, "
                                                                   "saved after every batch."),
                    engine: str = ENGINE_OPT, address: str = ADDRESS_OPT, threads: int = THREADS_OPT,
                    workers: int = typer.Option(None, "--workers", help="--engine ray: actors (default: CPUs / threads).")):
        """Maximally activating patches: per channel, the k strongest units and their receptive fields.

        Example: convlens patches samples --layer features.6 --channels 0,5,17 --k 9 -o patches.png
        """
        from ..inspect import max_activating_patches
        from ..progress import cli_bar
        out_path(out)
        at_least(k, 1, "--k"), at_least(batch_size, 1, "--batch-size"), at_least(n, 1, "--n")
        at_least(workers, 1, "--workers"), at_least(threads, 1, "--threads")
        if state:
            check_output(state)
        m = get_model(model, weights)
        ray = check_engine(engine) == "ray"
        data = images if ray else _images_arg(images, n, seed)
        try:
            with cli_bar(f"patches {layer}", total=None if ray else len(data)) as bar:
                if ray:
                    from ..scale import max_activating_patches_ray
                    p = max_activating_patches_ray(m, data, layer, channels, k, per_image=whole, batch_size=batch_size,
                                                   progress=bar, state=state, address=address, workers=workers,
                                                   threads=threads)
                else:
                    p = max_activating_patches(m, data, layer, channels, k, per_image=whole, batch_size=batch_size,
                                               progress=bar, state=state, threads=threads)
        except KeyboardInterrupt as e:  # write the patches of the images seen so far
            from ..inspect.patches import Patches
            part = getattr(e, "partial", None)
            if isinstance(part, Patches):
                echo(f"interrupted after {part.top.n_images} of {part.top.total} images -> "
                     f"{part.save(out_path(out), whole=whole)}")
            raise
        path = p.save(out_path(out), whole=whole)
        echo(f"{layer}: top-{k} over {p.top.n_images} images, receptive field {p.rf.size[0]} px -> {path}")
        for c in p.channels:
            best = p.top.row(c)[:3]
            echo(f"  ch {c}: " + ", ".join(f"{v:.3f} ({p.names[i]} @{y},{x})" for i, (y, x), v in best))
