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

from .common import MODEL_OPT, OUT_OPT, WEIGHTS_OPT, at_least, echo, get_image, get_model, out_path

TARGET_OPT = typer.Option(None, "--target", "-t", help="Class index or name ('Egyptian cat'); default: the predicted class.")
LAYER_OPT = typer.Option(None, "--layer", "-l", help="Explain a neuron of this layer instead of a class (see `convlens layers`).")
CHANNEL_OPT = typer.Option(None, "--channel", "-c", help="Channel of --layer (default: the most active one).")
UNIT_OPT = typer.Option("max", "--unit", help="Position in the channel: 'max' (strongest), 'sum' (whole channel) or 'Y,X'.")
MODE_OPT = typer.Option(None, "--mode", help="Render mode: abs, positive, negative, signed, minmax, rgb (default: the method's).")
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


def register(app: typer.Typer) -> None:
    """Add this concern's commands to `app`."""

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

    @app.command("occlusion")
    def occlusion_cmd(image: str = typer.Argument(..., help="Image file or sample name (e.g. chelsea)."),
                      model: str = MODEL_OPT, weights: str = WEIGHTS_OPT, target: str = TARGET_OPT,
                      window: int = typer.Option(16, "--window", help="Occluding square's side, pixels."),
                      stride: int = typer.Option(8, "--stride", help="Step between window positions, pixels."),
                      baseline: str = typer.Option("zero", "--baseline", help="zero, grey, blur, mean, or a number in [0, 1]."),
                      score: str = typer.Option("prob", "--score", help="prob (softmax, Zeiler & Fergus) or logit."),
                      batch_size: int = typer.Option(None, "--batch-size", help="Perturbations per forward (default: automatic)."),
                      incremental: bool = typer.Option(None, "--incremental/--whole", help="Recompute only the feature-map regions each window changes, or run whole passes (same map; default: the faster, see docs/attribution.md)."),
                      mode: str = MODE_OPT, full: bool = FULL_OPT, out: str = OUT_OPT):
        """Occlusion map: drop of the target's probability as a window hides each region (Zeiler & Fergus 2014).

        Example: convlens occlusion chelsea --window 32 --stride 16 --baseline grey -o occ.png
        """
        from ..attribution import occlusion
        from ..attribution.occlusion import window_positions
        from ..errors import ConvlensError
        from ..progress import cli_bar
        out_path(out)
        at_least(window, 1, "--window"), at_least(stride, 1, "--stride"), at_least(batch_size, 1, "--batch-size")
        try:
            base = float(baseline)
        except ValueError:
            base = baseline
        if isinstance(base, float) and not 0 <= base <= 1:
            raise ConvlensError(f"--baseline must be zero, grey, blur, mean or a number in [0, 1], got {baseline}")
        if score not in ("prob", "logit"):
            raise ConvlensError(f"--score must be prob or logit, got '{score}'")
        m = get_model(model, weights)
        img = _image(image, m, full)
        if window > min(img.shape[-2:]):
            raise ConvlensError(f"--window {window} is larger than the image ({img.shape[-2]}x{img.shape[-1]}); "
                                "give at most the image's shorter side")
        n = len(window_positions(img.shape[-2], window, stride)) * len(window_positions(img.shape[-1], window, stride))
        try:
            with cli_bar("occlusion", n) as bar:
                r = occlusion(m, img, target, window=window, stride=stride, baseline=base, score=score,
                              batch_size=batch_size, incremental="auto" if incremental is None else incremental,
                              progress=bar)
        except KeyboardInterrupt as e:
            _save_partial(getattr(e, "partial", None), out, mode)
        _save(r, out, mode)

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

    @app.command("smoothgrad")
    def smoothgrad_cmd(image: str = typer.Argument(..., help="Image file or sample name (e.g. chelsea)."),
                       model: str = MODEL_OPT, weights: str = WEIGHTS_OPT, target: str = TARGET_OPT,
                       noise: float = typer.Option(0.15, "--noise", help="Noise sigma as a fraction of the value range."),
                       samples: int = typer.Option(25, "--samples", help="Noisy copies averaged."),
                       seed: int = typer.Option(0, "--seed", help="Noise seed."),
                       mode: str = MODE_OPT, full: bool = FULL_OPT, out: str = OUT_OPT):
        """SmoothGrad: saliency averaged over noisy copies (Smilkov 2017).

        Example: convlens smoothgrad chelsea --samples 25 --noise 0.15 -o sg.png
        """
        from ..attribution import smoothgrad
        from ..errors import ConvlensError
        from ..progress import cli_bar
        out_path(out)
        at_least(samples, 1, "--samples")
        if not noise >= 0:  # also NaN
            raise ConvlensError(f"--noise must be a fraction of the value range, 0 or more (e.g. 0.15), got {noise}")
        m = get_model(model, weights)
        with cli_bar("smoothgrad", samples) as bar:
            r = smoothgrad(m, _image(image, m, full), target, noise=noise, samples=samples, seed=seed, progress=bar)
        _save(r, out, mode)

    @app.command("ig")
    def ig_cmd(image: str = typer.Argument(..., help="Image file or sample name (e.g. chelsea)."),
               model: str = MODEL_OPT, weights: str = WEIGHTS_OPT, target: str = TARGET_OPT,
               steps: int = typer.Option(50, "--steps", help="Quadrature points along the path."),
               baseline: float = typer.Option(0.0, "--baseline", help="Baseline pixel value in [0, 1] (0 = black)."),
               method: str = typer.Option("gausslegendre", "--method", help="gausslegendre or riemann_trapezoid/left/right/middle."),
               mode: str = MODE_OPT, full: bool = FULL_OPT, out: str = OUT_OPT):
        """Integrated gradients, with the completeness check (Sundararajan 2017).

        Example: convlens ig chelsea --steps 50 -o ig.png
        """
        from ..attribution import integrated_gradients
        from ..errors import ConvlensError
        from ..progress import cli_bar
        out_path(out)
        at_least(steps, 1, "--steps")
        if not 0 <= baseline <= 1:
            raise ConvlensError(f"--baseline must be a pixel value in [0, 1] (0 = black), got {baseline}")
        m = get_model(model, weights)
        with cli_bar("integrated gradients", steps) as bar:
            r = integrated_gradients(m, _image(image, m, full), target, baseline=baseline, steps=steps,
                                     method=method, progress=bar)
        _save(r, out, mode)

    @app.command("grabcut")
    def grabcut_cmd(image: str = typer.Argument(..., help="Image file or sample name (e.g. chelsea)."),
                    model: str = MODEL_OPT, weights: str = WEIGHTS_OPT, target: str = TARGET_OPT,
                    method: str = typer.Option("smoothgrad", "--method", help="Seed map: smoothgrad (coherent) or saliency (the lecture's)."),
                    foreground: float = typer.Option(0.95, "--fg", help="Quantile above which pixels are foreground seeds."),
                    probable: float = typer.Option(0.7, "--probable", help="Quantile above which pixels are probable foreground."),
                    background: float = typer.Option(0.3, "--bg", help="Quantile below which pixels are background seeds."),
                    full: bool = typer.Option(True, "--full/--crop", help="Whole image (default) or the model's centre crop."),
                    out: str = OUT_OPT):
        """Cut the object out with GrabCut seeded by saliency (Rother 2004; Simonyan 2014). Writes the row
        image | saliency | seeds | mask | cut-out.

        Example: convlens grabcut coffee -o cut.png
        """
        from ..attribution import grabcut, saliency, smoothgrad
        from ..errors import ConvlensError
        from ..images import save_png
        if method not in ("smoothgrad", "saliency"):
            raise ConvlensError(f"--method must be smoothgrad or saliency, got '{method}'")
        out_path(out)
        for flag, q in (("--fg", foreground), ("--probable", probable), ("--bg", background)):
            if not 0 <= q <= 1:
                raise ConvlensError(f"{flag} is a quantile in [0, 1], got {q}")
        if not background <= probable <= foreground:
            raise ConvlensError(f"the quantiles must satisfy --bg <= --probable <= --fg, got {background}, {probable}, "
                                f"{foreground}")
        m = get_model(model, weights)
        img = _image(image, m, full)
        sal = (smoothgrad(m, img, target, samples=16) if method == "smoothgrad" else saliency(m, img, target))
        g = grabcut(img, sal, foreground=foreground, probable=probable, background=background)
        p = save_png(g.render(), out_path(out))
        echo(f"grabcut from {method} ({sal.labels[0]}): foreground {100 * g.foreground_fraction:.1f}% of pixels\nwrote {p}")

    @app.command("sanity")
    def sanity_cmd(method: str = typer.Argument(..., help="saliency, smoothgrad, guided, deconvnet, gradcam, ig or occlusion."),
                   image: str = typer.Argument(..., help="Image file or sample name (e.g. chelsea)."),
                   model: str = MODEL_OPT, weights: str = WEIGHTS_OPT, target: str = TARGET_OPT,
                   groups: int = typer.Option(6, "--groups", help="Randomization steps (groups of layers)."),
                   independent: bool = typer.Option(False, "--independent", help="Randomize one group at a time, not cascading."),
                   out: str = OUT_OPT):
        """Model-parameter randomization test (Adebayo 2018): rank correlation of the map as weights are randomized.

        Example: convlens sanity guided chelsea -o sanity.png
        """
        from ..attribution import sanity_check
        from ..images import save_png
        out_path(out)
        at_least(groups, 1, "--groups")
        m = get_model(model, weights)
        r = sanity_check(method, m, _image(image, m, False), target, groups=groups, cascade=not independent)
        echo(r.summary())
        echo(f"wrote {save_png(r.render(), out_path(out))}")
