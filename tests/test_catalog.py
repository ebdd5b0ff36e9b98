"""The catalog is the one list of techniques, and the three front doors agree with it (issue 21 items 1-2).

For every technique with a config dataclass: the Python function's defaults, the CLI's flags and the web
lab's form show the config's defaults, and a value outside a field's range is refused by all three with
the same message. Every CLI command is a catalog technique or a named utility; every spelling maps to one id.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect

import pytest
import typer

from convlens import catalog
from convlens.adversarial import parse_eps
from convlens.errors import ConvlensError
from convlens.fields import config_fields, parse_config, resolve_config

# CLI commands that run no lecture technique (listing, set-up, stores, the server, the report)
UTILITIES = {"models", "layers", "predict", "samples", "demo", "verify", "index", "duplicates", "export-projector",
             "serve"}


@pytest.fixture(scope="module")
def cli_commands():
    """The real Typer commands (every CLI module's register(app)), as click commands by name."""
    from convlens.cli.spec import CLI_MODULES
    app = typer.Typer()
    for name in CLI_MODULES:
        importlib.import_module(f"convlens.cli.{name}").register(app)
    return typer.main.get_command(app).commands


def _cli_value(default):
    return ",".join(map(str, default)) if isinstance(default, (tuple, list)) else default


def configured():
    return [t for t in catalog.techniques().values() if t.config is not None]


def test_one_spelling_per_technique():
    seen = {}
    for t in catalog.techniques().values():
        assert t.family in catalog.FAMILIES and t.title and t.paper, t.id
        for name in t.names:
            assert seen.setdefault(name, t.id) == t.id, f"{name} names both {seen[name]} and {t.id}"
            assert catalog.get(name) is t
    assert catalog.get("gradcam").id == catalog.get("grad-cam").id == "grad_cam"
    assert catalog.get("dream").id == "deepdream" and catalog.get("invert").id == "inversion"
    with pytest.raises(ConvlensError, match="closest: grad_cam|closest: gradcam"):
        catalog.get("gradcan")


def test_every_cli_command_is_a_technique_or_a_utility(cli_commands):
    verbs = {v for t in catalog.techniques().values() for v in t.cli}
    assert verbs <= set(cli_commands), verbs - set(cli_commands)
    assert set(cli_commands) - verbs == UTILITIES


def test_sanity_check_accepts_exactly_the_catalog_spellings():
    from convlens.attribution.sanity import methods
    assert set(methods()) == set(catalog.sanity_method_names())
    for name in catalog.sanity_method_names():
        assert methods()[name] is catalog.get(name).function


@pytest.mark.parametrize("tech", configured(), ids=lambda t: t.id)
def test_api_defaults_are_the_config_defaults(tech):
    """A function taking ``config=None`` gets the config's defaults; one with plain keywords declares the
    same defaults as its config (no second copy that could drift)."""
    params = inspect.signature(tech.function).parameters
    fields = {f.name: f for f in config_fields(tech.config)}
    if "config" in params:
        assert params["config"].default is None
        # a keyword that is also a config field may only mean "the config's value" (None)
        shadowed = [n for n in fields if n in params and params[n].default is not None]
        assert not shadowed, f"{tech.id}: {shadowed} are both config fields and parameters with a default"
        return
    shared = [n for n in fields if n in params and params[n].default is not inspect.Parameter.empty]
    assert shared, f"{tech.id}: no parameter shared with its config"
    for n in shared:
        want = fields[n].default
        if isinstance(want, str) and isinstance(params[n].default, float):   # eps "2/255" in the config
            want = parse_eps(want)
        assert params[n].default == want, (tech.id, n)


@pytest.mark.parametrize("tech", [t for t in configured() if t.cli], ids=lambda t: t.id)
def test_cli_flags_show_the_config_defaults(tech, cli_commands):
    command = cli_commands[tech.cli[0]]
    if isinstance(command, typer.core.TyperGroup):   # fast-style train|apply: the config is train's
        return
    by_flag = {o: p for p in command.params for o in getattr(p, "opts", [])}
    for f in config_fields(tech.config):
        p = by_flag.get(f.cli_flag)
        assert p is not None, f"{tech.id}: no CLI flag {f.cli_flag}"
        assert p.default == _cli_value(f.default), (tech.id, f.name, p.default, f.default)


@pytest.mark.parametrize("tech", [t for t in configured() if t.lab], ids=lambda t: t.id)
def test_web_form_shows_the_config_defaults(tech):
    pytest.importorskip("fastapi")
    from convlens.web.techniques import techniques
    lab = techniques()[tech.id]
    form = {f["name"]: f for f in lab.schema()["fields"]}
    for f in config_fields(tech.config):
        if f.name in lab.hidden:
            continue
        assert f.name in form, (tech.id, f.name)
        assert form[f.name]["default"] == f.as_json()["default"], (tech.id, f.name)
        assert form[f.name]["range"] == f.as_json()["range"]
    fixed, cfg = lab.parse({})
    assert cfg == tech.config(**{k: v for k, v in dataclasses.asdict(tech.config()).items() if k not in lab.hidden})


@pytest.mark.parametrize("tech", [t for t in configured() if t.lab], ids=lambda t: t.id)
def test_the_three_doors_refuse_the_same_out_of_range_values(tech):
    """Each field with a range: the value just below it is refused by the API (resolve_config), the CLI
    (parse_config, as config_command calls it) and the web lab (Technique.parse), naming the field."""
    pytest.importorskip("fastapi")
    from convlens.web.techniques import techniques
    lab = techniques()[tech.id]
    checked = 0
    for f in config_fields(tech.config):
        if not f.range or f.range[0] is None or f.name in lab.hidden:
            continue
        bad = f.range[0] - 1 if f.kind == "int" else f.range[0] - 0.5
        with pytest.raises(ConvlensError, match=f"{f.name}|{f.cli_flag}"):
            resolve_config(tech.config, None, {f.name: bad})
        with pytest.raises(ConvlensError, match=f.cli_flag):
            parse_config(tech.config, {f.name: bad})
        with pytest.raises(ConvlensError, match=f.cli_flag):
            lab.parse({f.name: bad})
        checked += 1
    if tech.id in ("smoothgrad", "integrated_gradients", "occlusion", "grabcut", "sanity_check", "texture"):
        assert checked >= 1


def test_unknown_override_names_the_fields():
    from convlens.attribution import SmoothGradConfig
    with pytest.raises(ConvlensError, match="unknown parameter 'sample' for SmoothGradConfig; its fields: noise, "
                                            "samples, seed"):
        resolve_config(SmoothGradConfig, None, {"sample": 3})
    assert resolve_config(SmoothGradConfig, SmoothGradConfig(noise=0.2), {"samples": 3}) == \
        SmoothGradConfig(noise=0.2, samples=3)


def test_config_and_keywords_are_the_same_call(offline_model):
    """``fn(model, x, samples=4)`` equals ``fn(model, x, Config(samples=4))``, and both differ from the default."""
    import torch

    import convlens
    from convlens.attribution import SmoothGradConfig
    x = convlens.fit(convlens.sample_image("chelsea"), offline_model.input_size)
    a = convlens.smoothgrad(offline_model, x, samples=4, seed=3)
    b = convlens.smoothgrad(offline_model, x, None, SmoothGradConfig(samples=4, seed=3))
    c = convlens.smoothgrad(offline_model, x, samples=4, seed=4)
    assert torch.equal(a.map, b.map) and not torch.equal(a.map, c.map)
    assert a.info == {"noise": 0.15, "samples": 4, "seed": 3}


def test_lab_registry_is_the_catalog():
    pytest.importorskip("fastapi")
    from convlens.web.techniques import techniques
    assert list(techniques()) == [t.id for t in catalog.lab_techniques()]
    for t in catalog.lab_techniques():
        s = techniques()[t.id].schema()
        assert (s["family"], s["needs_image"], s["iterative"]) == (t.family, t.needs_image, t.iterative)


def test_layer_browser_and_projector_defaults_are_the_configs():
    """The views outside the lab read the same configs: the layer browser's visualize request (VizConfig)
    and the projector's map parameters (ProjectConfig, the CLI's `convlens project`)."""
    pytest.importorskip("fastapi")
    from convlens.embed.project import ProjectConfig
    from convlens.recipes import VizConfig
    from convlens.web.app import create_app
    from convlens.web.projector_state import ProjectParams
    api = create_app().openapi()["paths"]
    params = {p["name"]: p for p in api["/api/layers/{layer}/channels/{channel}/visualize"]["post"]["parameters"]}
    assert params["steps"]["schema"]["default"] == VizConfig().steps
    assert params["preset"]["schema"]["default"] == VizConfig().preset
    web, cli = ProjectParams(), ProjectConfig()
    for name in ("method", "seed", "perplexity", "n_iter", "n_neighbors"):
        assert getattr(web, name) == getattr(cli, name), name


def test_a_new_attribution_method_needs_no_front_door_code(monkeypatch, tmp_path, offline_model):
    """The four files of CONTRIBUTING ("Adding a technique"): a method with a config and a catalog entry gets
    its CLI command (flags from the config) and its lab form and runner with no code in cli/ or web/."""
    from dataclasses import dataclass, field

    import numpy as np
    from PIL import Image
    from typer.testing import CliRunner

    import convlens
    from convlens.attribution.base import Attribution

    @dataclass
    class GradientTimesInputConfig:
        scale: float = field(default=1.0, metadata={"help": "multiplier of the map", "range": (0, None)})

    def gradient_times_input(model, images, target=None, config=None, *, progress=None, **overrides):
        c = resolve_config(GradientTimesInputConfig, config, overrides)
        s = convlens.saliency(model, images, target)
        a = s.attributions * s.images * c.scale
        return Attribution("gradient_times_input", a.sum(1).abs(), a, s.target, s.labels, s.images, {},
                           default_mode="abs")

    entry = catalog.Technique("gradient_times_input", "attribution", "Gradient x input", "Shrikumar et al. 2016",
                              gradient_times_input, GradientTimesInputConfig, cli=("gxi",), lab=True,
                              summarize=catalog.attribution_summary, blurb="the gradient times the pixel values")
    monkeypatch.setattr(catalog, "_ENTRIES", [*catalog._ENTRIES, entry])
    from convlens.cli import common
    monkeypatch.setattr(common, "CONFIG_CLASSES", set(common.CONFIG_CLASSES))   # the saved CLI spec's list

    app = typer.Typer()
    importlib.import_module("convlens.cli.attribution").register(app)
    flags = {o for p in typer.main.get_command(app).commands["gxi"].params for o in getattr(p, "opts", [])}
    assert {"--scale", "--target", "--mode", "-o"} <= flags
    out = tmp_path / "gxi.png"
    res = CliRunner().invoke(app, ["gxi", "chelsea", "--scale", "2", "-o", str(out)])
    assert res.exit_code == 0, res.output
    x = convlens.fit(convlens.sample_image("chelsea"), offline_model.input_size)
    want = np.asarray(gradient_times_input(offline_model, x, None, scale=2.0).overlay(0, None).convert("RGB"))
    got = np.asarray(Image.open(out).convert("RGB"))
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 2   # decoded pixels, rounding tolerance

    pytest.importorskip("fastapi")
    from convlens.web import techniques as web
    monkeypatch.setattr(web, "_TECHNIQUES", None)
    lab = web.techniques()["gradient_times_input"]
    assert [f["name"] for f in lab.schema()["fields"]] == ["target", "mode", "scale"]
    assert lab.parse({"scale": "3"})[1] == GradientTimesInputConfig(scale=3.0)
    with pytest.raises(ConvlensError, match="--scale must be at least 0"):
        lab.parse({"scale": -1})
