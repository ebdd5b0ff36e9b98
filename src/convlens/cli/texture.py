"""CLI commands for texture and style: texture, style, fast-style train|apply.

    convlens texture brick --method efros-leung --size 128 -o brick.png
    convlens style chelsea starry_night -o cat_starry.png [--model vgg16-imagenet|vgg16-hed|mobilenet_v2|vgg19]
    convlens fast-style train --style ihc --out ihc.safetensors
    convlens fast-style apply starry chelsea -o cat_fast.png      (or --blend 19:0.7,3:0.3 chelsea)
    convlens fast-style arbitrary starry_night chelsea -o cat_arb.png
    convlens fast-style styles
"""
from __future__ import annotations

from dataclasses import replace
from typing import List

import typer

from .common import OUT_OPT, at_least, check_output, config_command, echo, fixed, out_path

def _layers(v):
    if isinstance(v, str):
        return tuple(s.strip() for s in v.split(",") if s.strip())
    return v


def _style_model(name: str | None):
    from ..models import load_model
    from ..recipes.style import default_style_model
    return load_model(name or default_style_model())


def register(app: typer.Typer) -> None:
    from ..progress import cli_bar
    from ..recipes.fast_style import FastStyleConfig
    from ..recipes.style import StyleConfig

    from ..recipes.texture_synthesis import TextureSynthesisConfig

    def texture_run(cfg, sample: str, model: str, out: str):
        from ..images import save_png
        from ..recipes.texture_synthesis import texture_synthesis
        p = out_path(out)
        with cli_bar(f"texture {cfg.method}", None) as bar:
            t = texture_synthesis(sample, cfg, model=model, progress=bar)
        save_png(t.image, p)
        echo(f"wrote {p}  ({cfg.method}, {getattr(t.result, 'seconds', 0):.1f} s)")
        if t.result.stopped == "interrupted":
            echo("interrupted: wrote the partial texture")

    config_command(app, "texture", TextureSynthesisConfig, [
        fixed("sample", typer.Argument(..., help="Texture sample: file or sample name (brick, gravel, ihc...).")),
        fixed("model", typer.Option(None, "--model", "-m", help="Network for --method gram (default: vgg19 if its "
                                                                 "weights are cached, else vgg16-imagenet).")),
        fixed("out", OUT_OPT)], texture_run,
        "Synthesize a texture from a sample: Efros-Leung, Wei-Levoy, image quilting or Gram matching (Gatys).\n\n"
        "Example: convlens texture brick --crop 256 --sample-size 80 --method efros-leung --size 128 -o brick_el.png")

    def style(cfg, content: str, style: str, styles_weights: str, model: str, out: str):
        from ..images import save_png
        from ..recipes.style import style_transfer
        cfg = replace(cfg, content_layers=_layers(cfg.content_layers), style_layers=_layers(cfg.style_layers))
        from ..errors import ConvlensError
        p = out_path(out)
        styles = [s.strip() for s in style.split(",") if s.strip()]
        if not styles:
            raise ConvlensError("give at least one style image, e.g. ihc")
        try:
            weights = [float(w) for w in styles_weights.split(",")] if styles_weights else None
        except ValueError:
            raise ConvlensError(f"--styles-weights takes numbers like 0.7,0.3, got {styles_weights!r}") from None
        if weights is not None and (len(weights) != len(styles) or any(not w >= 0 for w in weights)):
            raise ConvlensError(f"--styles-weights needs one weight of 0 or more per style ({len(styles)}), "
                                f"got {styles_weights!r}")
        m = _style_model(model)
        with cli_bar(f"style ({m.name})", cfg.steps * cfg.octaves) as bar:
            r = style_transfer(m, content, styles, cfg, styles_weights=weights, progress=bar)
        save_png(r.image, p)
        echo(f"wrote {p}  ({r.seconds:.1f} s; style loss {r.losses_start['style']:.3f} -> {r.losses['style']:.3f}, "
             f"content loss {r.losses.get('content', 0):.3f})")
        if r.stopped == "interrupted":
            echo("interrupted: wrote the best image so far")

    config_command(app, "style", StyleConfig,
                   [fixed("content", typer.Argument(..., help="Content image: file or sample name (chelsea...).")),
                    fixed("style", typer.Argument(..., help="Style image(s): file or sample name (ihc, gravel, "
                                                            "hubble...); several comma-separated.")),
                    fixed("styles_weights", typer.Option(None, "--styles-weights", help="Weights of several styles, e.g. 0.7,0.3.")),
                    fixed("model", typer.Option(None, "--model", "-m",
                                                help="vgg16-imagenet (offline ImageNet VGG-16), vgg16-hed (HED's "
                                                     "VGG-16), mobilenet_v2 (softmax smoothing), "
                                                     "vgg19 (Gatys's network, needs a download once). Default: vgg19 "
                                                     "if its weights are in the torch cache, else vgg16-imagenet.")),
                    fixed("out", OUT_OPT)], style,
                   "Neural style transfer (Gatys, Ecker & Bethge 2016) on the optimization engine.\n\n"
                   "Example: convlens style chelsea ihc --size 256 --steps 60 -o cat_ihc.png")

    fast = typer.Typer(help="Fast style transfer: trained networks (26 styles, Dumoulin et al. 2017; any style "
                            "image, Ghiasi et al. 2017) or your own (Johnson et al. 2016), one forward pass per "
                            "image.\n\nExample: convlens fast-style apply starry chelsea -o cat_fast.png",
                       no_args_is_help=True)
    app.add_typer(fast, name="fast-style")

    def train(cfg, style: str, images: str, out: str):
        from ..recipes.fast_style import train_fast_style
        p = out_path(out.replace(".safetensors", ".png")).with_suffix(".safetensors") if out else None
        with cli_bar(f"fast-style train {style}", cfg.steps) as bar:
            r = train_fast_style(style, images, cfg, out=p, progress=bar)
        echo(f"wrote {p}  ({r.seconds:.0f} s, {r.meta['steps_run']} steps, perceptual loss "
             f"{float(r.losses[:10].mean()):.3f} -> {float(r.losses[-10:].mean()):.3f})")
        if r.stopped == "interrupted":
            echo("interrupted: saved the network trained so far")

    config_command(fast, "train", FastStyleConfig,
                   [fixed("style", typer.Option(..., "--style", help="Style image: file or sample name (ihc...).")),
                    fixed("images", typer.Option("samples", "--images", help="Folder of content photos, or 'samples'.")),
                    fixed("out", typer.Option(..., "--out", "-o", help="Output .safetensors path."))], train,
                   "Train a fast-style network with the perceptual losses on content crops (with flips).\n\n"
                   "Example: convlens fast-style train --style ihc --steps 1200 --out ihc.safetensors",
                   out_suffix=".safetensors")

    @fast.command("apply")
    def apply(args: List[str] = typer.Argument(..., help="STYLE IMAGE, or IMAGE alone with --blend. STYLE: a style "
                                               "of the trained 26-style network (index or name: 19, starry; see "
                                               "`convlens fast-style styles`), a shipped convlens style (ihc) or a "
                                               ".safetensors file from `fast-style train`. IMAGE: file or sample name."),
              blend: str = typer.Option(None, "--blend", help="Blend of the 26 styles, e.g. 19:0.7,3:0.3 "
                                                              "(weights normalized to sum 1)."),
              size: int = typer.Option(0, "--size", help="Resize the longer side first (0: keep)."),
              out: str = OUT_OPT):
        """Stylize an image in one forward pass of a trained fast-style network (any size).

        Example: convlens fast-style apply starry chelsea -o cat_starry.png
                 convlens fast-style apply --blend 19:0.7,3:0.3 chelsea -o cat_blend.png
        """
        import time

        from ..errors import ConvlensError
        from ..images import save_png
        from ..recipes.fast_style import fast_style, load_fast_style
        from ..recipes.style import resize_long
        from ..texture.samples import texture_image
        if len(args) != (1 if blend else 2):
            raise ConvlensError("give STYLE IMAGE, or --blend SPEC IMAGE (e.g. convlens fast-style apply --blend "
                                "19:0.7,3:0.3 chelsea -o out.png)")
        at_least(size, 0, "--size")
        p = out_path(out)
        net = load_fast_style(blend or args[0])
        img = texture_image(args[-1])
        if size:
            img = resize_long(img, size)
        t = time.perf_counter()
        y = fast_style(net, img)
        save_png(y, p)
        style = getattr(net, "meta", {}).get("style", args[0])
        echo(f"wrote {p}  (style {style}, {tuple(y.shape[-2:])}, {1000 * (time.perf_counter() - t):.0f} ms)")

    @fast.command("arbitrary")
    def arbitrary(style: str = typer.Argument(..., help="Style image: any file or sample name (starry_night...)."),
                  image: str = typer.Argument(..., help="Content image: file or sample name."),
                  strength: float = typer.Option(1.0, "--strength", help="0..1: the style code interpolated from "
                                                                         "the content's own (0) to the style's (1)."),
                  size: int = typer.Option(0, "--size", help="Resize the content's longer side first (0: keep)."),
                  out: str = OUT_OPT):
        """Arbitrary style transfer from any style image (Ghiasi et al. 2017; trained int8 networks in onnxruntime).

        Example: convlens fast-style arbitrary starry_night chelsea -o cat_starry.png
        """
        import time

        from ..images import save_png
        from ..recipes.fast_style import arbitrary_style
        from ..recipes.style import resize_long
        from ..texture.samples import texture_image
        at_least(size, 0, "--size")
        if not 0 <= strength <= 1:
            from ..errors import ConvlensError
            raise ConvlensError(f"--strength must be in 0..1 (0: the content's own style, 1: the style image's), got {strength}")
        p = out_path(out)
        img = texture_image(image)
        if size:
            img = resize_long(img, size)
        t = time.perf_counter()
        y = arbitrary_style(img, style, strength)
        save_png(y, p)
        echo(f"wrote {p}  ({tuple(y.shape[-2:])}, {1000 * (time.perf_counter() - t):.0f} ms)")

    @fast.command("styles")
    def styles():
        """List the 26 styles of the trained network (index, name, what it looks like).

        Example: convlens fast-style styles
        """
        from ..models.style_nets import DEFAULT_STYLE, STYLE_NAMES
        from ..recipes.fast_style import shipped_styles
        for i, (name, what) in STYLE_NAMES.items():
            echo(f"{i:>2}  {name:<14} {what}{'  (default)' if i == DEFAULT_STYLE else ''}")
        echo(f"shipped convlens-trained styles: {', '.join(shipped_styles()) or 'none'}; "
             "any style image: convlens fast-style arbitrary STYLE_IMAGE IMAGE")

    @fast.command("export")
    def export(model: str = typer.Argument(..., help="A .safetensors fast-style model, or a shipped style name."),
               out: str = typer.Option(..., "--out", "-o", help="Output .onnx path.")):
        """Export a fast-style network to ONNX (dynamic batch and size; runs in onnxruntime).

        Example: convlens fast-style export ihc -o ihc.onnx
        """
        from ..errors import ConvlensError
        from ..recipes.fast_style import export_onnx, load_fast_style
        if not out.endswith(".onnx"):
            raise ConvlensError(f"output {out} must end in .onnx")
        check_output(out)
        echo(f"wrote {export_onnx(load_fast_style(model), out)}")
