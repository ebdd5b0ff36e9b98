"""CLI commands for attribution: which pixels matter for a class (or an inner neuron).

    convlens saliency chelsea -o sal.png
    convlens occlusion chelsea --window 32 --stride 16 --baseline grey -o occ.png
    convlens guided chelsea --layer features.14 --channel 7 -o gb.png
    convlens gradcam coffee --target espresso -o cam.png
    convlens grabcut chelsea -o cut.png
    convlens sanity guided chelsea -o sanity.png
"""
from __future__ import annotations

import typer

from ..fields import config_fields
from .common import MODEL_OPT, OUT_OPT, WEIGHTS_OPT, config_command, echo, fixed, get_image, get_model, out_path

TARGET_OPT = typer.Option(None, "--target", "-t", help="Class index or name ('Egyptian cat'); default: the predicted class.")
LAYER_OPT = typer.Option(None, "--layer", "-l", help="Explain a neuron of this layer instead of a class (see `convlens layers`).")
CHANNEL_OPT = typer.Option(None, "--channel", "-c", help="Channel of --layer (default: the most active one).")
UNIT_OPT = typer.Option("max", "--unit", help="Position in the channel: 'max' (strongest), 'sum' (whole channel) or 'Y,X'.")
MODE_OPT = typer.Option(None, "--mode", help="Render mode: abs, positive, negative, signed, minmax, rgb (default: the method's).")
IMAGE = fixed("image", typer.Argument(..., help="Image file or sample name (e.g. chelsea)."))
MODEL_FIXED = [fixed("model", MODEL_OPT), fixed("weights", WEIGHTS_OPT)]
FULL_OPT = typer.Option(False, "--full/--crop", help="Keep the whole image (shorter side resized to the model's size) "
                        "instead of the model's centre crop.")


def _image(arg: str, model, full: bool):
    from ..images import fit, resize_shorter
    img = get_image(arg)
    return resize_shorter(img, min(model.input_size)) if full else fit(img, model.input_size)


def _unit(unit: str):
    if unit in (None, "sum"):
        return None
    if unit == "max":
        return "max"
    try:
        y, x = (int(v) for v in unit.split(","))
        return (y, x)
    except ValueError:
        from ..errors import ConvlensError
        raise ConvlensError(f"--unit must be 'max', 'sum' or 'Y,X', got '{unit}'") from None


def _save(result, out: str, mode):
    from ..images import save_png
    p = save_png(result.overlay(0, mode), out_path(out))
    extra = ""
    if "delta" in result.info:
        extra = (f"  completeness: sum(IG) {result.info['sum_attributions'][0]:.4g} vs score difference "
                 f"{result.info['score_diff'][0]:.4g} (delta {result.info['delta'][0]:.2g})")
    known = result.map[~result.map.isnan()]  # an interrupted occlusion leaves NaN where nothing was computed
    lo, hi = (float(known.min()), float(known.max())) if known.numel() else (float("nan"), float("nan"))
    echo(f"{result.method}: {result.labels[0]}; raw range [{lo:.3g}, {hi:.3g}]{extra}\nwrote {p}")


def _save_partial(partial, out: str, mode) -> None:
    """Ctrl-C during occlusion: write the windows finished so far (atomically, titled "partial k/n"),
    say so in one line on stderr, exit 130. Pixels no finished window covers show the bare image."""
    import sys
    done, total = (partial.info["finished"], partial.info["total"]) if partial is not None else (0, None)
    if not done:
        print("convlens: interrupted before any occlusion window finished; no file written", file=sys.stderr)
    else:
        from ..images import save_png
        label = f"partial {done}/{total} windows: {partial.labels[0]}"
        p = save_png(partial.overlay(0, mode, label=label), out_path(out))
        print(f"convlens: interrupted; partial: {done} of {total} windows, written to {p}", file=sys.stderr)
    raise SystemExit(130)  # the line above says what was kept


# attribution techniques whose command is written below (not the catalog's standard shape)
_OWN_COMMANDS = {"occlusion", "grabcut", "sanity_check"}


def _catalog_command(app: typer.Typer, t) -> None:
    """``convlens VERB IMAGE [--target ...] [config flags] -o OUT``: the map of ``t.function`` over the image."""
    def run(cfg, image: str, model: str, weights: str, target: str, mode: str, full: bool, out: str):
        from ..progress import cli_bar
        m = get_model(model, weights)
        total = next((getattr(cfg, n) for n in ("samples", "steps") if hasattr(cfg, n)), None)
        with cli_bar(t.id, total) as bar:
            r = t.function(m, _image(image, m, full), target, cfg, progress=bar)
        _save(r, out, mode)
    example = " ".join(f"--{f.name.replace('_', '-')} {f.default}" for f in config_fields(t.config)[:2])
    config_command(app, t.cli[0], t.config, [IMAGE, *MODEL_FIXED, fixed("target", TARGET_OPT), fixed("mode", MODE_OPT),
                   fixed("full", FULL_OPT, bool), fixed("out", OUT_OPT)], run,
                   f"{t.title}: {t.blurb} ({t.paper}).\n\nExample: convlens {t.cli[0]} chelsea {example} -o {t.cli[0]}.png")


def register(app: typer.Typer) -> None:
    """Add this concern's commands to `app`."""
    from ..attribution import GrabCutConfig, OcclusionConfig, SanityConfig

    @app.command("saliency")
    def saliency_cmd(image: str = typer.Argument(..., help="Image file or sample name (e.g. chelsea)."),
                     model: str = MODEL_OPT, weights: str = WEIGHTS_OPT, target: str = TARGET_OPT,
                     layer: str = LAYER_OPT, channel: int = CHANNEL_OPT, unit: str = UNIT_OPT, mode: str = MODE_OPT,
                     full: bool = FULL_OPT, out: str = OUT_OPT):
        """Gradient saliency map, max over RGB of |dS/dpixel| (Simonyan 2014).

        Example: convlens saliency chelsea --target "Egyptian cat" -o sal.png
        """
        from ..attribution import saliency
        out_path(out)
        m = get_model(model, weights)
        kw = dict(layer=layer, channel=channel, unit=_unit(unit) if layer else None)
        _save(saliency(m, _image(image, m, full), target, **kw), out, mode)

    def _modified(name, fn_name, doc):
        def cmd(image: str = typer.Argument(..., help="Image file or sample name (e.g. chelsea)."),
                model: str = MODEL_OPT, weights: str = WEIGHTS_OPT, target: str = TARGET_OPT,
                layer: str = LAYER_OPT, channel: int = CHANNEL_OPT, unit: str = UNIT_OPT, mode: str = MODE_OPT,
                full: bool = FULL_OPT, out: str = OUT_OPT):
            from .. import attribution
            out_path(out)
            m = get_model(model, weights)
            kw = dict(layer=layer, channel=channel, unit=_unit(unit) if layer else None)
            _save(getattr(attribution, fn_name)(m, _image(image, m, full), target, **kw), out, mode)
        cmd.__doc__ = doc
        cmd.__name__ = f"{name}_cmd"
        app.command(name)(cmd)

    _modified("guided", "guided_backprop", "Guided backprop for a class or an inner neuron (Springenberg 2015).\n\n"
              "Example: convlens guided chelsea --layer features.14 --channel 7 -o gb.png")
    _modified("deconvnet", "deconvnet", "Deconvnet visualization for a class or an inner neuron (Zeiler & Fergus 2014).\n\n"
              "Example: convlens deconvnet chelsea --layer features.10 --channel 3 -o dc.png")

    def occlusion_run(cfg, image: str, model: str, weights: str, target: str, incremental: bool, mode: str,
                      full: bool, out: str):
        from ..attribution import occlusion
        from ..attribution.occlusion import make_baseline, window_positions
        from ..errors import ConvlensError
        from ..progress import cli_bar
        m = get_model(model, weights)
        img = _image(image, m, full)
        make_baseline(img[:, :, :1, :1], cfg.baseline, (1, 1))  # a bad --baseline fails before any work
        if cfg.window > min(img.shape[-2:]):
            raise ConvlensError(f"--window {cfg.window} is larger than the image ({img.shape[-2]}x{img.shape[-1]}); "
                                "give at most the image's shorter side")
        n = len(window_positions(img.shape[-2], cfg.window, cfg.stride)) * \
            len(window_positions(img.shape[-1], cfg.window, cfg.stride))
        try:
            with cli_bar("occlusion", n) as bar:
                r = occlusion(m, img, target, cfg, incremental="auto" if incremental is None else incremental,
                              progress=bar)
        except KeyboardInterrupt as e:
            _save_partial(getattr(e, "partial", None), out, mode)
        _save(r, out, mode)

    config_command(app, "occlusion", OcclusionConfig, [
        IMAGE, *MODEL_FIXED, fixed("target", TARGET_OPT),
        fixed("incremental", typer.Option(None, "--incremental/--whole", help="Recompute only the feature-map regions "
              "each window changes, or run whole passes (same map; default: the faster, see docs/attribution.md)."),
              bool),
        fixed("mode", MODE_OPT), fixed("full", FULL_OPT, bool), fixed("out", OUT_OPT)], occlusion_run,
        "Occlusion map: drop of the target's probability as a window hides each region (Zeiler & Fergus 2014).\n\n"
        "Example: convlens occlusion chelsea --window 32 --stride 16 --baseline grey -o occ.png")

    @app.command("gradcam")
    def gradcam_cmd(image: str = typer.Argument(..., help="Image file or sample name (e.g. chelsea)."),
                    model: str = MODEL_OPT, weights: str = WEIGHTS_OPT, target: str = TARGET_OPT,
                    layer: str = typer.Option(None, "--layer", "-l", help="Layer (default: the last block with a spatial map)."),
                    mode: str = MODE_OPT, full: bool = FULL_OPT, out: str = OUT_OPT):
        """Grad-CAM class activation map (Selvaraju 2017).

        Example: convlens gradcam coffee --target espresso -o cam.png
        """
        from ..attribution import grad_cam
        out_path(out)
        m = get_model(model, weights)
        _save(grad_cam(m, _image(image, m, full), target, layer=layer), out, mode)

    # Attribution methods with a config and the standard shape fn(model, images, target, config, progress=)
    # get their command from the catalog: the id's CLI verb, the config's flags, the entry's title and paper.
    from .. import catalog
    for t in catalog.techniques().values():
        if t.family == "attribution" and t.config is not None and t.id not in _OWN_COMMANDS:
            _catalog_command(app, t)

    def grabcut_run(cfg, image: str, model: str, weights: str, target: str, full: bool, out: str):
        from ..attribution import grabcut_from_saliency
        from ..images import save_png
        m = get_model(model, weights)
        g, sal = grabcut_from_saliency(m, _image(image, m, full), target, cfg)
        p = save_png(g.render(), out_path(out))
        echo(f"grabcut from {cfg.method} ({sal.labels[0]}): foreground {100 * g.foreground_fraction:.1f}% of pixels\n"
             f"wrote {p}")

    config_command(app, "grabcut", GrabCutConfig, [
        IMAGE, *MODEL_FIXED, fixed("target", TARGET_OPT),
        fixed("full", typer.Option(True, "--full/--crop", help="Whole image (default) or the model's centre crop."), bool),
        fixed("out", OUT_OPT)], grabcut_run,
        "Cut the object out with GrabCut seeded by saliency (Rother 2004; Simonyan 2014). Writes the row\n"
        "image | saliency | seeds | mask | cut-out.\n\nExample: convlens grabcut coffee -o cut.png")

    def sanity_run(cfg, method: str, image: str, model: str, weights: str, target: str, out: str):
        from ..attribution import sanity_check
        from ..images import save_png
        m = get_model(model, weights)
        r = sanity_check(method, m, _image(image, m, False), target, cfg)
        echo(r.summary())
        echo(f"wrote {save_png(r.render(), out_path(out))}")

    config_command(app, "sanity", SanityConfig, [
        fixed("method", typer.Argument(..., help=f"One of: {', '.join(catalog.sanity_method_names())}.")),
        IMAGE, *MODEL_FIXED, fixed("target", TARGET_OPT), fixed("out", OUT_OPT)], sanity_run,
        "Model-parameter randomization test (Adebayo 2018): rank correlation of the map as weights are randomized."
        "\n\nExample: convlens sanity guided chelsea -o sanity.png")
