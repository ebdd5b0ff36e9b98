"""CLI commands for fooling the network: linear-demo, fgsm, pgd, fool, unrecognizable,
evolve-unrecognizable, mix-weights, hog-match, robustness. Options come from each recipe's config dataclass (``config_command``); sizes
accept fractions like 2/255.

    convlens linear-demo
    convlens fgsm chelsea --eps 2/255 [--target goldfish] -o fgsm.png
    convlens pgd chelsea --eps 2/255 --steps 10 -o pgd.png
    convlens fool chelsea --target goldfish -o fool.png
    convlens unrecognizable --target robin -o robin.png
    convlens evolve-unrecognizable --target starfish --size 96 -o evolved.png
    convlens mix-weights -o mix.png
    convlens hog-match chelsea coffee -o hog.png
    convlens robustness samples --eps 0,1/255,2/255,4/255 -o curve.png
"""
from __future__ import annotations

import typer

from .common import MODEL_OPT, WEIGHTS_OPT, at_least, config_command, echo, fixed, get_image, get_model, out_path

IMAGE_ARG = typer.Argument(..., help="Image file or sample name (e.g. chelsea).")
TARGET_OPT = typer.Option(None, "--target", "-t", help="Class index or name to reach (targeted); default: untargeted.")
OUT_OPT = typer.Option(None, "--out", "-o", help="Output PNG path (optional).")


def _eps(text, flag: str = "--eps"):
    """``text`` (a number, a fraction like 2/255, or a comma-separated list of them) checked in one
    line before any work: a zero denominator names the fix instead of a ZeroDivisionError."""
    from ..adversarial.base import parse_eps
    from ..errors import ConvlensError
    if text is None or not isinstance(text, str):
        return text
    for item in (s for s in text.split(",") if s.strip()):
        if item.strip().lower() in ("inf", "none"):
            continue
        try:
            parse_eps(item, name=flag, unit=False)
        except ZeroDivisionError:
            raise ConvlensError(f"{flag} '{item.strip()}' divides by zero; give a number or a fraction like 2/255") from None
    return text


def _save(image, out):
    if out:
        from ..images import save_png
        echo(f"wrote {save_png(image, out_path(out))}")


def _class_list(text: str) -> list[str]:
    """"robin, goldfish" -> ["robin", "goldfish"]."""
    from ..errors import ConvlensError
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise ConvlensError("--target needs a class name or index, e.g. --target robin")
    return names


def _check_out(out):
    """The optional -o checked before any work."""
    if out:
        out_path(out)


def _image(arg, model):
    from ..images import fit
    return fit(get_image(arg), model.input_size)


def register(app: typer.Typer) -> None:
    from ..adversarial import EvolveConfig, FGSMConfig, FoolConfig, PGDConfig, RobustnessConfig, UnrecognizableConfig
    from ..adversarial.hog import HogMatchConfig
    from ..progress import cli_bar

    common = [fixed("model", MODEL_OPT), fixed("weights", WEIGHTS_OPT), fixed("out", OUT_OPT)]

    @app.command("linear-demo")
    def linear_demo(eps: float = typer.Option(0.5, "--eps", help="Nudge per input."),
                    x: str = typer.Option(None, "--x", help="Inputs, comma-separated (default: the lecture's)."),
                    w: str = typer.Option(None, "--w", help="Weights, comma-separated (default: the lecture's)."),
                    b: float = typer.Option(0.0, "--b", help="Bias."),
                    out: str = OUT_OPT):
        """The lecture's logistic-regression walkthrough (Goodfellow 2015), then the eps needed to flip a
        confident linear decision as the dimension grows (table; -o writes the log-log plot).

        Example: convlens linear-demo -o dims.png
        """
        from ..adversarial import dimension_study, linear_walkthrough
        from ..errors import ConvlensError
        _check_out(out)

        def nums(s):
            try:
                return None if s is None else [float(v) for v in s.split(",") if v.strip()]
            except ValueError:
                raise ConvlensError(f"--x / --w take comma-separated numbers, got {s!r}") from None
        echo(linear_walkthrough(nums(x), nums(w), b=b, eps=eps).text())
        d = dimension_study()
        echo("\nWhy dimension matters: eps (per input, along sign(w)) to flip P = 0.047 to >= 0.5:")
        echo(d.text())
        _save(d.plot() if out else None, out)

    def attack(name, config_cls, required: bool, help_: str):
        """``convlens NAME IMAGE [--target T]``: the attack with its config's fields as keyword arguments."""
        def run_attack(cfg, image: str, target: str, model: str, weights: str, out: str):
            import dataclasses

            from .. import adversarial
            _check_out(out)
            kw = dataclasses.asdict(cfg)
            for f in ("eps", "step"):
                _eps(kw.get(f), f"--{f}")
            m = get_model(model, weights)
            with cli_bar(f"{name} {target or ''}", kw.get("steps") or kw.get("max_steps")) as bar:
                extra = {} if name == "fgsm" else {"progress": bar}
                if name == "fool":
                    r = adversarial.fool(m, _image(image, m), target, cfg, **extra)
                else:
                    r = getattr(adversarial, name)(m, _image(image, m), target=target, config=cfg, **extra)
            echo(r.summary())
            if r.info.get("interrupted"):
                echo("interrupted: the images reached so far are kept")
            if name == "fool" and not bool(r.fooled.all()):
                echo(f"confidence {cfg.confidence} not reached in {cfg.max_steps} steps; raise --max-steps or --eps")
            _save(r.render() if out else None, out)

        tgt = typer.Option(..., "--target", "-t", help="Class index or name to reach.") if required else TARGET_OPT
        config_command(app, name, config_cls, [fixed("image", IMAGE_ARG), fixed("target", tgt)] + common, run_attack,
                       help_)

    attack("fgsm", FGSMConfig, False, "Fast gradient sign method (Goodfellow 2015): one step of eps along "
           "sign(dLoss/dx).\n\nExample: convlens fgsm chelsea --eps 2/255 --target goldfish -o fgsm.png")
    attack("pgd", PGDConfig, False, "Projected gradient descent (Madry 2018), L-inf or L2, with per-image early "
           "stop.\n\nExample: convlens pgd chelsea --eps 2/255 --steps 10 -o pgd.png")
    attack("fool", FoolConfig, True, "Fooling image (Szegedy 2014): step an image until the network says TARGET "
           "with the chosen confidence. Writes image | fooled | difference | 10x difference.\n\n"
           "Example: convlens fool chelsea --target goldfish -o fool.png")

    def unrec_run(cfg, target: str, model: str, weights: str, out: str):
        from ..adversarial import unrecognizable
        _check_out(out)
        targets = _class_list(target)
        m = get_model(model, weights)
        with cli_bar("unrecognizable", cfg.steps) as bar:
            u = unrecognizable(m, targets, cfg, progress=bar)
        for lab in u.labels:
            echo(f"  {lab}")
        echo(f"{u.steps} steps")
        _save(u.render() if out else None, out)

    targets = [fixed("target", typer.Option(..., "--target", "-t", help="Class name(s), comma-separated."))]
    config_command(app, "unrecognizable", UnrecognizableConfig,
                   targets + common,
                   unrec_run,
                   "Unrecognizable images classified with >= 99.6% confidence (Nguyen 2015), by gradient ascent.\n\n"
                   "Example: convlens unrecognizable --target robin,goldfish --start noise -o fooled.png")

    def evolve_run(cfg, target: str, model: str, weights: str, out: str):
        from ..adversarial import evolve_unrecognizable
        _check_out(out)
        m = get_model(model, weights)
        targets = _class_list(target)
        with cli_bar("evolve", cfg.generations * len(targets)) as bar:
            e = evolve_unrecognizable(m, targets, cfg, progress=bar)
        if e.interrupted:
            echo(f"interrupted: the best image so far of {len(e.labels)} of {len(targets)} target(s) is kept")
        for lab, g, n, c0 in zip(e.labels, e.generations, e.evaluations, e.start_confidence.tolist()):
            echo(f"  {lab} (from {c0:.2%}; {g} generation{'' if g == 1 else 's'}, {n} images scored)")
        _save(e.render() if out else None, out)

    config_command(app, "evolve-unrecognizable", EvolveConfig,
                   targets + common,
                   evolve_run,
                   "Unrecognizable images by evolution (Nguyen 2015): a CPPN's weights (or coarse pixels) evolved "
                   "on the model's probability alone, no gradients.\n\n"
                   "Example: convlens evolve-unrecognizable --target starfish --size 96 --generations 30 -o evolved.png")

    @app.command("mix-weights")
    def mix_weights(image: str = typer.Option("chelsea", "--image", help="Photo for the deep-net panel."),
                    target: str = typer.Option("goldfish", "--target", "-t", help="Class mixed into the photo."),
                    eps: str = typer.Option("1/255,2/255,4/255", "--eps", help="Sizes of the mix (L-inf), comma-separated."),
                    repeats: int = typer.Option(1, "--repeats", help="Mix in this many portions, re-linearizing each time."),
                    model: str = MODEL_OPT, weights: str = WEIGHTS_OPT, out: str = OUT_OPT):
        """Mixing in a bit of another class's weights: (a) a linear softmax classifier on 8x8 digits, trained
        here in about a second, its templates and digits + a multiple of another template; (b) a photo +
        eps x the normalized gradient of the target's logit (its local template).

        Example: convlens mix-weights --target goldfish --repeats 8 -o mix.png
        """
        from ..adversarial import linear_mixing_panel, mix_gradient, train_linear_digits
        from ..adversarial.base import parse_eps_list
        from ..render import stack_rows
        _check_out(out)
        _eps(eps)
        at_least(repeats, 1, "--repeats")
        m = get_model(model, weights)
        photo = _image(image, m)
        clf = train_linear_digits()
        echo(f"linear softmax on 8x8 digits: held-out accuracy {clf.test_accuracy:.1%}")
        panel, mixes = linear_mixing_panel(clf)
        for mx in mixes:
            echo("  " + mx.line())
        d = mix_gradient(m, photo, target, parse_eps_list(eps), repeats=repeats)
        for lab in d.labels():
            echo(f"  {image} {lab}")
        _save(stack_rows([clf.templates(), panel, d.render()]) if out else None, out)

    def hog_run(cfg, image_a: str, image_b: str, out: str):
        from ..adversarial.hog import hog_match
        from ..images import fit
        _check_out(out)
        a, b = fit(get_image(image_a), cfg.size), fit(get_image(image_b), cfg.size)
        with cli_bar("hog-match", cfg.steps) as bar:
            r = hog_match(a, b, cfg, progress=bar)
        echo(f"relative HOG distance to B: {r.start_distance:.2%} (A) -> {r.distance:.3%} after {r.steps} steps; "
             f"pixel change from A: RMS {255 * r.pixel_rms:.1f}/255, PSNR {r.psnr:.1f} dB"
             + ("" if r.reached else f" (target {cfg.target:.2%} not reached: more --steps or a lower --pixel-weight)"))
        _save(r.render() if out else None, out)

    config_command(app, "hog-match", HogMatchConfig,
                   [fixed("image_a", typer.Argument(..., help="Image A (changed).")),
                    fixed("image_b", typer.Argument(..., help="Image B (whose HOG A takes).")),
                    fixed("out", OUT_OPT)], hog_run,
                   "Identical HOG, different images (Tatu 2011): change A until its HOG equals B's.\n\n"
                   "Example: convlens hog-match chelsea coffee -o hog.png")

    def robust_run(cfg, images: str, eps: str, n: int, size: int, model: str, weights: str, out: str):
        from ..adversarial import robustness
        from ..images.resolve import resolve_images
        _check_out(out)
        _eps(eps)
        at_least(n, 1, "--n"), at_least(size, 1, "--size")
        source = resolve_images(images, n=n, size=size or 224)   # samples, a folder, files: checked before any work
        m = get_model(model, weights)
        data = source.tensor(size or m.input_size, limit=n)
        with cli_bar(f"robustness ({cfg.attack})", None) as bar:
            r = robustness(m, data, eps, cfg.attack, steps=cfg.steps, batch_size=cfg.batch_size, seed=cfg.seed,
                           progress=bar)
        echo(r.text())
        _save(r.plot() if out else None, out)

    config_command(app, "robustness", RobustnessConfig,
                   [fixed("images", typer.Argument(..., help="Image folder, or 'samples' (bundled photos and crops).")),
                    fixed("eps", typer.Option("0,1/255,2/255,4/255", "--eps", help="Sizes, comma-separated (fractions ok).")),
                    fixed("n", typer.Option(32, "--n", help="Number of images."), int),
                    fixed("size", typer.Option(None, "--size", help="Image size (default: the model's)."), int)]
                   + common, robust_run,
                   "Accuracy (agreement with the clean prediction) and fooling rate against eps.\n\n"
                   "Example: convlens robustness samples --eps 0,1/255,2/255,4/255 --attack pgd -o curve.png")
