"""mkdocs hook: the technique tables of the API reference, generated from ``convlens.catalog``.

A page holding ``<!-- convlens:techniques FAMILY -->`` (a key of ``catalog.FAMILIES``, or ``all``)
gets, in its place, a table of that family's techniques: id, title, paper, CLI command(s), whether
the web lab offers it, the function (an autorefs link to its reference, so a renamed or undocumented
function fails ``mkdocs build --strict``) and its config's fields with their defaults (walked by
``convlens.fields.config_fields``, the walk the CLI's flags and the lab's forms come from). A family
page also gets one table per config: field, default, CLI flag, range, help. Nothing is written to
disk: the tables are made at build time, so they cannot drift from the catalog.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

_SRC = str(Path(__file__).resolve().parents[1] / "src")
if _SRC not in sys.path:  # build against this checkout's code (the venv may hold another editable copy)
    sys.path.insert(0, _SRC)

MARKER = re.compile(r"<!--\s*convlens:techniques\s+(\w+)\s*-->")


def reference(obj) -> str:
    """The dotted path mkdocstrings knows ``obj`` by (its canonical ``module.qualname``)."""
    return f"{obj.__module__}.{obj.__qualname__}"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _code(text) -> str:
    text = _cell(text)
    tick = "``" if "`" in text else "`"
    return f"{tick}{text}{tick}"


def default_text(value) -> str:
    """A field's default as the tables show it: its Python repr (``50``, ``'grey'``, ``(1, 2)``, ``None``)."""
    return repr(value)


def _link(obj, label: str | None = None) -> str:
    return f"[{_code(label or obj.__qualname__)}][{reference(obj)}]"


def _fields(config) -> str:
    from convlens.fields import config_fields
    if config is None:
        return "-"
    items = [_code(f"{f.name}={default_text(f.default)}") for f in config_fields(config)]
    return "<br>".join([_link(config), *items])


def _cli(t) -> str:
    if not t.cli:
        return "-"
    first, *others = t.cli
    return _code(f"convlens {first}") + (" (also " + ", ".join(_code(o) for o in others) + ")" if others else "")


def technique_table(family: str | None = None) -> str:
    """A Markdown table of the catalog's techniques (of one family, or all of them)."""
    from convlens.catalog import FAMILIES, techniques
    rows = ["| id | technique | paper | CLI | web lab | function | config: fields = defaults |",
            "|---|---|---|---|---|---|---|"]
    for t in techniques().values():
        if family not in (None, t.family):
            continue
        title = _cell(t.title) if family else f"{_cell(t.title)} ({FAMILIES[t.family].lower()})"
        rows.append(f"| {_code(t.id)} | {title} | {_cell(t.paper)} | {_cli(t)} | {'yes' if t.lab else 'no'} "
                    f"| {_link(t.function)} | {_fields(t.config)} |")
    return "\n".join(rows)


def config_tables(family: str) -> str:
    """Per config of a family's techniques: its fields, defaults, CLI flags, ranges and help."""
    from convlens.catalog import techniques
    from convlens.fields import config_fields
    out, seen = [], set()
    for t in techniques().values():
        if t.family != family or t.config is None or t.config in seen:
            continue
        seen.add(t.config)
        users = ", ".join(_code(u.id) for u in techniques().values() if u.config is t.config)
        out += [f"### {t.config.__name__}", "", f"{_link(t.config)}, the config of {users}.", "",
                "| field | default | CLI flag | range | help |", "|---|---|---|---|---|"]
        for f in config_fields(t.config):
            rng = "-" if f.range is None else f"[{f.range[0]}, {f.range[1]}]"
            choices = f" (one of: {', '.join(map(str, f.choices))})" if f.choices else ""
            out.append(f"| {_code(f.name)} | {_code(default_text(f.default))} | {_code(f.cli_flag)} | {_cell(rng)} "
                       f"| {_cell(f.help)}{_cell(choices)} |")
        out.append("")
    return "\n".join(out)


def render(family: str) -> str:
    """What replaces ``<!-- convlens:techniques FAMILY -->``: the table, plus the configs on a family page."""
    from convlens.catalog import FAMILIES
    if family == "all":
        return "\n\n".join(f"## {FAMILIES[k]}\n\n{technique_table(k)}\n\nReference: [{FAMILIES[k]}]({k}.md)"
                           for k in FAMILIES)
    if family not in FAMILIES:
        raise ValueError(f"unknown family '{family}' in a convlens:techniques marker; one of: {', '.join(FAMILIES)}")
    configs = config_tables(family)
    return technique_table(family) + ("\n\n## Configs\n\n" + configs if configs else "")


# --- functions hidden by their own submodule -------------------------------------------------------
# ``convlens.attribution.saliency`` is the function at run time (the package imports it over its
# submodule ``saliency.py``), but griffe's static view keeps the submodule, so ``::: convlens.attribution``
# would leave out saliency, occlusion, fgsm, pgd... Each such name gets its own directive after the block.

DIRECTIVE = re.compile(r"^::: (convlens[\w.]*)[ \t]*\n((?:[ \t]+\S.*\n)*)", re.M)


def shadowed(package: str) -> list[str]:
    """References of the public names of ``package`` (its ``__all__``) that share a submodule's name."""
    import importlib
    import inspect
    try:
        mod = importlib.import_module(package)
    except ModuleNotFoundError:  # a directive for a class or function, not a module
        return []
    if not hasattr(mod, "__path__"):
        return []
    folder = Path(mod.__path__[0])
    out = []
    for name in getattr(mod, "__all__", []):
        obj = getattr(mod, name, None)
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and (
                (folder / f"{name}.py").exists() or (folder / name / "__init__.py").exists()):
            out.append(reference(obj))
    return out


def _kept(name: str, options: dict) -> bool:
    if "members" in options:
        return name in (options["members"] or [])
    for f in options.get("filters", []):
        hit = re.search(f.lstrip("!"), name) is not None
        if hit == f.startswith("!"):
            return False
    return True


def _add_shadowed(match: re.Match) -> str:
    import yaml
    block = match.group(0)
    options = (yaml.safe_load(match.group(2)) or {}).get("options", {}) if match.group(2).strip() else {}
    level = options.get("heading_level")
    extra = "    options:\n      show_root_heading: true\n" + ("" if level is None else f"      heading_level: {level}\n")
    refs = [r for r in shadowed(match.group(1)) if _kept(r.rsplit(".", 1)[1], options)]
    return block + "".join(f"\n::: {r}\n{extra}" for r in refs)


# --- every guide in the nav ------------------------------------------------------------------------

def _listed(nav) -> set[str]:
    if isinstance(nav, str):
        return {nav}
    if isinstance(nav, dict):
        return set().union(*(_listed(v) for v in nav.values()))
    return set().union(*(_listed(v) for v in nav)) if isinstance(nav, list) else set()


def on_config(config):
    """A guide added to docs/ (``docs/*.md``) joins the nav's Guides, titled by its first heading, so a
    new page never fails the strict build for being left out of mkdocs.yml."""
    nav = config.nav or []
    guides = next((item["Guides"] for item in nav if isinstance(item, dict) and "Guides" in item), None)
    if guides is not None:
        listed = _listed(nav)
        guides += [p.name for p in sorted(Path(config.docs_dir).glob("*.md"))
                   if p.name not in listed and p.name != "index.md"]
    return config


def on_page_markdown(markdown: str, page, config, files) -> str:
    markdown = DIRECTIVE.sub(_add_shadowed, markdown)
    return MARKER.sub(lambda m: render(m.group(1)), markdown)
