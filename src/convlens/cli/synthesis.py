"""CLI commands for synthesis by gradient ascent: classviz, neuronviz, facets, dream, invert, accentuate.

Every command's options come from its recipe's config dataclass (``config_command``); Ctrl-C stops
the optimization and still writes the best image found so far.
"""
from __future__ import annotations

import typer

from .common import MODEL_OPT, OUT_OPT, WEIGHTS_OPT, at_least, config_command, echo, fixed, get_image, get_model, out_path


def _save(images, labels, path, tile=None):
    from ..images import save_png
    from ..render import grid
    p = out_path(path)
    if images.shape[0] == 1:
        save_png(images, p)
    else:
        save_png(grid(list(images), labels, ncol=min(len(labels), 5), tile=tile or images.shape[-1]), p)
    echo(f"wrote {p}")


def _save_transparency(v, path) -> None:
    """maco: also write ``<out>_transparency.png``, the images with their transparency map as opacity."""
    if getattr(v, "transparency", None) is None:
        return
    p = out_path(path)
    _save(v.transparent(), v.labels, str(p.with_name(p.stem + "_transparency.png")))


EXEMPLARS_OPT = typer.Option(None, "--exemplars", help="Also write <out>_exemplars.png: the top-k natural exemplars of "
                             "each unit from these images (samples:300, imagenet20, a folder) beside the synthetic "
                             "image, and print the plausibility score and (classes) how efficientnet_lite2 and _lite0 read it.")


def _check_exemplars(spec, out) -> None:
    """Refuse a bad --exemplars source or output before any work."""
    if spec:
        from ..images.resolve import resolve_images
        resolve_images(spec)
        p = out_path(out)
        out_path(str(p.with_name(p.stem + "_exemplars.png")))


def _save_exemplars(m, v, spec, out, transfer=()) -> None:
    """--exemplars: the evidence figure beside the synthetic images, and one line per image."""
    if not spec:
        return
    from ..images import save_png
    e = v.evidence(m, spec, k=6, transfer=transfer)
    p = out_path(out)
    path = p.with_name(p.stem + "_exemplars.png")
    save_png(e.figure(synthetic=v.transparent() if v.transparency is not None else None), path)
    echo(f"wrote {path}")
    for line in e.text():
        echo("  " + line)


def _interrupted(result) -> None:
    if getattr(result, "stopped", "") == "interrupted":
        echo("interrupted: wrote the best image so far")


def _check_channels(model, layer: str, channels: list[int]) -> None:
    """Each channel index exists in ``layer``'s output (one line naming the valid range)."""
    from ..errors import ConvlensError
    shape = model.layer_info(layer).shape
    for c in channels:
        if not 0 <= c < shape[0]:
            raise ConvlensError(f"channel {c} out of range 0..{shape[0] - 1} for {layer} {shape}")


def _layer_list(model, text: str) -> list[str]:
    from ..errors import ConvlensError
    layers = [s.strip() for s in text.split(",") if s.strip()]
    if not layers:
        raise ConvlensError("--layer needs at least one layer name (see `convlens layers`)")
    for name in layers:
        model.module(name)
    return layers


GENERATOR_OPT = typer.Option(None, "--generator", help="Optimize a generator's code instead of pixels (Nguyen et al. "
                             "2016): 'faces' = the trained DCGAN face generator (64 px, upsampled to the model's size).")


def _generator(name, model, cfg):
    """(cfg, generator module) for --generator NAME (None: pixels, unchanged)."""
    from dataclasses import replace

    from ..errors import ConvlensError
    if not name:
        return cfg, None
    if name != "faces":
        raise ConvlensError(f"unknown --generator '{name}'; the offline one is 'faces' (DCGAN faces)")
    from ..recipes.generator import load_face_generator
    return replace(cfg, param="generator"), load_face_generator(model.input_size[0], model.device)


def register(app: typer.Typer) -> None:
    from ..recipes import DreamConfig, FacetsConfig, InvertConfig, VizConfig
    from ..progress import cli_bar

    common = [fixed("model", MODEL_OPT), fixed("weights", WEIGHTS_OPT), fixed("out", OUT_OPT)]

    def classviz(cfg, target: str, generator: str, exemplars: str, model: str, weights: str, out: str):
        from ..recipes import visualize_class
        from ..recipes.visualize import resolve
        from ..errors import ConvlensError
        targets = [t.strip() for t in target.split(",") if t.strip()]
        if not targets:
            raise ConvlensError("--target needs a class name or index, e.g. --target flamingo (see `convlens predict`)")
        _check_exemplars(exemplars, out)
        m = get_model(model, weights)
        cfg, gen = _generator(generator, m, cfg)
        steps = cfg.steps * cfg.octaves
        with cli_bar(f"classviz {target} ({resolve(cfg).preset})", steps) as bar:
            v = visualize_class(m, targets, cfg, generator=gen, progress=bar)
        _save(v.images, v.labels, out)
        _save_transparency(v, out)
        for lab, s in zip(v.labels, v.scores.tolist()):
            echo(f"  {lab}: logit {s:.2f}")
        _save_exemplars(m, v, exemplars, out, transfer=None)   # None: natural_evidence's DEFAULT_TRANSFER
        _interrupted(v.optim)

    config_command(app, "classviz", VizConfig,
                   [fixed("target", typer.Option(..., "--target", "-t",
                                                 help="Class name or index; several comma-separated (one image each).")),
                    fixed("generator", GENERATOR_OPT), fixed("exemplars", EXEMPLARS_OPT)]
                   + common, classviz,
                   "Synthesize images that maximize a class score (Simonyan 2014 / Yosinski 2015 / Lucid-style).\n\n"
                   "Example: convlens classviz --target flamingo,pelican --preset robust --steps 200 -o classes.png\n"
                   "         convlens classviz --target flamingo --preset maco -o flamingo.png   "
                   "(also writes flamingo_transparency.png)\n"
                   "         convlens classviz --target strawberry --exemplars imagenet20 -o s.png   "
                   "(and s_exemplars.png: natural exemplars, plausibility)\n"
                   "         convlens classviz --target wig --generator faces --steps 60 -o wig_faces.png")

    def neuronviz(cfg, layer: str, channel: str, unit: str, exemplars: str, model: str, weights: str, out: str):
        from ..errors import ConvlensError
        from ..recipes import visualize_channel, visualize_neuron
        _check_exemplars(exemplars, out)
        m = get_model(model, weights)
        try:
            chans = [int(c) for c in channel.split(",") if c.strip()]
        except ValueError:
            raise ConvlensError(f"--channel takes integers like 7 or 3,7,12, got {channel!r}") from None
        if not chans:
            raise ConvlensError("--channel needs at least one channel index, e.g. --channel 7")
        _check_channels(m, layer, chans)
        with cli_bar(f"neuronviz {layer}:{channel}", cfg.steps * cfg.octaves) as bar:
            if unit:
                try:
                    y, x = (int(v) for v in unit.split(","))
                except ValueError:
                    raise ConvlensError(f"--unit takes y,x like 7,7, got {unit!r}") from None
                _, h, w = m.layer_info(layer).shape
                if not (0 <= y < h and 0 <= x < w):
                    raise ConvlensError(f"--unit {y},{x} is outside {layer}'s {h}x{w} map; give 0..{h - 1},0..{w - 1}")
                v = visualize_neuron(m, layer, chans, (y, x), cfg, progress=bar)
            else:
                v = visualize_channel(m, layer, chans, cfg, progress=bar)
        _save(v.images, v.labels, out)
        _save_transparency(v, out)
        _save_exemplars(m, v, exemplars, out)
        _interrupted(v.optim)

    config_command(app, "neuronviz", VizConfig,
                   [fixed("layer", typer.Option(..., "--layer", "-l", help="Dotted layer name (see `convlens layers`).")),
                    fixed("channel", typer.Option(..., "--channel", "-c", help="Channel index, or several comma-separated.")),
                    fixed("unit", typer.Option(None, "--unit", help="y,x of one neuron (default: the whole channel).")),
                    fixed("exemplars", EXEMPLARS_OPT)]
                   + common, neuronviz,
                   "Synthesize images that maximize a channel (or one neuron with --unit) of an inner layer.\n\n"
                   "Example: convlens neuronviz --layer features.10 --channel 3,7 --steps 128 -o channels.png\n"
                   "         convlens neuronviz --layer features.10 --channel 7 --exemplars samples:300 -o ch7.png")

    def facets(cfg, layer: str, channel: str, images: str, n: int, model: str, weights: str, out: str):
        from ..errors import ConvlensError
        from ..images.resolve import resolve_images
        from ..recipes import visualize_facets
        at_least(n, 1, "--n")
        source = resolve_images(images, n=300)   # samples[:N], a folder, files...: refused before any work
        m = get_model(model, weights)
        if layer in ("class", "logits"):
            m.class_index(channel)
        else:
            if channel != "auto":
                try:
                    _check_channels(m, layer, [int(channel)])
                except ValueError:
                    raise ConvlensError(f"--channel takes a channel index or 'auto', got {channel!r}") from None
            else:
                m.module(layer)
        data = source.tensor(m.input_size)
        with cli_bar(f"facets {layer}:{channel}", cfg.steps * cfg.octaves) as bar:
            ch = channel if layer in ("class", "logits") else (None if channel == "auto" else int(channel))
            f = visualize_facets(m, layer, ch, data,
                                 n_facets=n, config=cfg, progress=bar)
        from ..images import save_png
        save_png(f.figure, out_path(out))
        echo(f"wrote {out}  ({f.layer}:{f.channel}, cluster sizes {[len(c) for c in f.clusters]}, "
             f"start -> facet {[f'{a:.2f}->{b:.2f}' for a, b in zip(f.start_scores.tolist(), f.scores.tolist())]})")
        _interrupted(f.optim)

    config_command(app, "facets", FacetsConfig,
                   [fixed("layer", typer.Option(..., "--layer", "-l", help="Layer name, or 'class' to use a class.")),
                    fixed("channel", typer.Option(..., "--channel", "-c", help="Channel index, 'auto' (pick_channel: varied top images), or a class name/index with --layer class.")),
                    fixed("images", typer.Option("samples", "--images", help="Image folder, or samples[:N] (bundled photos).")),
                    fixed("n", typer.Option(None, "--n", help="Number of facets (alias of --n-facets)."), int)]
                   + common, facets,
                   "Multifaceted visualization (Nguyen 2016): cluster top images, one optimization per cluster.\n\n"
                   "Example: convlens facets --layer class --channel 'Egyptian cat' --n-facets 3 -o facets.png")

    def dream(cfg, image: str, layer: str, guide: str, model: str, weights: str, out: str):
        from ..images import save_png
        from ..recipes import deepdream
        m = get_model(model, weights)
        img = get_image(image)
        g = get_image(guide) if guide else None
        with cli_bar(f"dream {layer}", cfg.steps * cfg.octaves) as bar:
            d = deepdream(m, img, layer, cfg, guide=g, progress=bar)
        save_png(d.image, out_path(out))
        echo(f"wrote {out}")
        for (b, a), s in zip(d.octave_norms, d.sizes):
            echo(f"  octave {s[0]}x{s[1]}: |A|^2 {b:.4g} -> {a:.4g}")
        if d.stopped == "interrupted":
            echo("interrupted: wrote the dream so far")

    config_command(app, "dream", DreamConfig,
                   [fixed("image", typer.Argument(..., help="Image file or sample name (e.g. chelsea).")),
                    fixed("layer", typer.Option("features.10", "--layer", "-l", help="Layer to amplify.")),
                    fixed("guide", typer.Option(None, "--guide", help="Guide image (guided DeepDream)."))]
                   + common, dream,
                   "DeepDream (Mordvintsev 2015): amplify what a layer sees, over octaves.\n\n"
                   "Example: convlens dream chelsea --layer features.10 --octaves 4 -o dream.png")

    def invert(cfg, image: str, layer: str, model: str, weights: str, out: str):
        from ..images import save_png
        from ..recipes import invert_layers
        m = get_model(model, weights)
        layers = _layer_list(m, layer)
        img = get_image(image)
        with cli_bar(f"invert {layer}", cfg.steps * len(layers)) as bar:
            row = invert_layers(m, img, layers, cfg, progress=bar)
        if len(layers) == 1:
            save_png(row.inversions[0].image, out_path(out))
        else:
            save_png(row.figure, out_path(out))
        echo(f"wrote {out}")
        for r in row.inversions:
            echo(f"  {r.layer}: feature distance {r.start_distance:.3f} -> {r.distance:.4f}")
        if any(r.optim.stopped == "interrupted" for r in row.inversions):
            echo("interrupted: wrote the reconstructions so far")

    def accentuate_run(cfg, image: str, target: str, model: str, weights: str, out: str):
        from ..images import save_png
        from ..recipes import accentuate
        p = out_path(out)
        out_path(str(p.with_name(p.stem + "_image.png")))
        img = get_image(image)
        m = get_model(model, weights)
        m.class_index(target)
        if cfg.reg_layer:
            m.module(cfg.reg_layer)
        with cli_bar(f"accentuate {target}", cfg.steps) as bar:
            a = accentuate(m, img, target, cfg, progress=bar)
        save_png(a.figure(), p)
        save_png(a.image, p.with_name(p.stem + "_image.png"))
        echo(f"wrote {p} and {p.with_name(p.stem + '_image.png')}")
        echo(f"  {a.label}: p {a.prob_before:.3f} -> {a.prob_after:.3f} (logit {a.logit_before:.2f} -> "
             f"{a.logit_after:.2f}); feature distance at {a.reg_layer} {a.distance:.4f}")
        _interrupted(a.viz.optim)

    from ..recipes import AccentuateConfig
    config_command(app, "accentuate", AccentuateConfig,
                   [fixed("image", typer.Argument(..., help="Seed image file or sample name (e.g. chelsea).")),
                    fixed("target", typer.Option(..., "--target", "-t", help="Class name or index to accentuate."))]
                   + common, accentuate_run,
                   "Feature accentuation (Hamblin et al. 2024): make a photo more <class> for the model while its "
                   "mid-level features stay close to the photo's.\n\n"
                   "Example: convlens accentuate chelsea --target tiger --steps 64 -o more_tiger.png   "
                   "(figure; more_tiger_image.png: the image)")

    invert_model = typer.Option("vgg16-imagenet", "--model", "-m", help="Model name (default: the offline ImageNet "
                                "VGG-16 conv layers, Mahendran & Vedaldi's kind of network; see `convlens models`).")
    config_command(app, "invert", InvertConfig,
                   [fixed("image", typer.Argument(..., help="Image file or sample name (e.g. chelsea).")),
                    fixed("layer", typer.Option(..., "--layer", "-l", help="Layer name(s), comma-separated.")),
                    fixed("model", invert_model), fixed("weights", WEIGHTS_OPT), fixed("out", OUT_OPT)], invert,
                   "Feature inversion (Mahendran & Vedaldi 2015): reconstruct an image from a layer's features.\n\n"
                   "Example: convlens invert chelsea --layer features.1,features.6,features.11,features.18,features.25 "
                   "-o inversion.png   (VGG-16 relu1_1 .. relu5_1)")
