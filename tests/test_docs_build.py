"""The API reference (mkdocs.yml, docs/api/, docs/hooks.py) builds with warnings as errors, and its
technique tables show every catalog entry: its id, a working link to its function's reference, and
its config's fields with their defaults.

The strict build is what keeps the docs honest: a docstring naming a parameter the function does not
have (a rename), an unresolved cross-reference, or a catalog function missing from the reference is
a warning, and a warning fails the build. The build takes 14-28 s here (2 shared cores), so it runs by default.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from convlens.catalog import FAMILIES, techniques
from convlens.fields import config_fields

ROOT = Path(__file__).resolve().parents[1]


def _hooks():
    spec = importlib.util.spec_from_file_location("convlens_docs_hooks", ROOT / "docs" / "hooks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _mkdocs_build(config: Path, out: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(out)],
                          cwd=cwd, capture_output=True, text=True, timeout=600)


class _Page(HTMLParser):
    """Every element id of a page, and its tables as rows of cells (text, hrefs)."""

    def __init__(self):
        super().__init__()
        self.ids, self.tables, self._cell = set(), [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th") and self.tables:
            self._cell = {"text": "", "hrefs": []}
            self.tables[-1][-1].append(self._cell)
        elif tag == "br" and self._cell is not None:
            self._cell["text"] += "\n"
        elif tag == "a" and self._cell is not None and a.get("href"):
            self._cell["hrefs"].append(a["href"])

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data


def _parse(path: Path) -> _Page:
    p = _Page()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def _field_text(f) -> str:
    return f"{f.name}={f.default!r}"


# --- fast: the hook's tables, without a build -------------------------------------------------------

def test_hook_tables_list_every_technique_with_link_and_defaults():
    hooks = _hooks()
    overview = hooks.render("all")
    for fam in FAMILIES:
        assert f"## {FAMILIES[fam]}" in overview
        page, table = hooks.render(fam), hooks.technique_table(fam)
        assert table in page
        for t in techniques().values():
            row = next((r for r in table.splitlines() if r.startswith(f"| `{t.id}` |")), None)
            if t.family != fam:
                assert row is None, (fam, t.id)
                continue
            assert row is not None and row in overview, t.id
            ref = f"{t.function.__module__}.{t.function.__qualname__}"
            assert f"][{ref}]" in row and t.reference == ref          # an autorefs link: unresolved fails --strict
            assert ("yes" if t.lab else "no") in row.split("|")[5]
            for verb in t.cli:
                assert verb in row.split("|")[4]
            for f in config_fields(t.config) if t.config else []:
                assert f"`{_field_text(f)}`" in row, (t.id, f.name)
                assert f"| `{f.name}` | `{f.default!r}` | `{f.cli_flag}` |" in page, (t.id, f.name)
    with pytest.raises(ValueError, match="unknown family"):
        hooks.render("nope")


def test_hook_adds_functions_griffe_sees_as_submodules():
    """``convlens.attribution.saliency`` is a function at run time but a submodule to griffe: the
    hook adds a directive for it (and only for what the block's own members/filters keep)."""
    hooks = _hooks()
    md = hooks.on_page_markdown("::: convlens.attribution\n\ntext\n", None, None, None)
    assert "::: convlens.attribution.saliency.saliency\n" in md and "::: convlens.attribution.occlusion.occlusion\n" in md
    assert "smoothgrad" not in md                                   # an ordinary alias: the block shows it
    kept = hooks.on_page_markdown("::: convlens.recipes\n    options:\n      members:\n        - fast_style\n", None,
                                  None, None)
    assert "::: convlens.recipes.fast_style.fast_style" in kept and "deepdream.deepdream" not in kept
    dropped = hooks.on_page_markdown('::: convlens.recipes\n    options:\n      filters: ["!^_", "!^fast_style$"]\n',
                                     None, None, None)
    assert "::: convlens.recipes.deepdream.deepdream" in dropped and "fast_style.fast_style" not in dropped


def test_hook_puts_a_new_guide_in_the_nav(tmp_path):
    from types import SimpleNamespace
    for name in ("index.md", "attribution.md", "new-guide.md"):
        (tmp_path / name).write_text("# t\n")
    cfg = SimpleNamespace(docs_dir=str(tmp_path), nav=[{"Home": "index.md"}, {"Guides": [{"Attribution": "attribution.md"}]},
                                                      {"API reference": [{"Techniques": "api/index.md"}]}])
    _hooks().on_config(cfg)
    assert cfg.nav[1] == {"Guides": [{"Attribution": "attribution.md"}, "new-guide.md"]}


def test_griffe_extension_reads_sections_without_a_blank_line_above():
    spec = importlib.util.spec_from_file_location("convlens_griffe_sections", ROOT / "docs" / "griffe_sections.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    text = "Sum.\n\nArgs:\n    x: a.\nReturns:\n    the sum.\nExample:\n    >>> f(1)\n```\nnot a section\nRaises:\n```"
    assert mod.separate_sections(text) == ("Sum.\n\nArgs:\n    x: a.\n\nReturns:\n    the sum.\n\nExamples:\n    >>> f(1)\n"
                                          "```\nnot a section\nRaises:\n```")
    assert mod.separate_sections("Returns: the sum, on one line.") == "Returns: the sum, on one line."


# --- the strict build ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    r = _mkdocs_build(ROOT / "mkdocs.yml", out, ROOT)
    assert r.returncode == 0, "mkdocs build --strict failed:\n" + "\n".join(
        line for line in (r.stdout + r.stderr).splitlines() if "WARNING" in line or "Error" in line)[-4000:]
    return out


def _resolve(page: Path, href: str, site: Path) -> tuple[Path, str]:
    target, _, anchor = href.partition("#")
    html = (page.parent / target).resolve() if target else page
    if html.is_dir() or target.endswith("/"):
        html = html / "index.html"
    assert site.resolve() in html.resolve().parents, href
    return html, anchor


def test_strict_build_has_every_technique_linked_to_its_reference(site):
    pages = {"index": site / "api" / "index.html", **{f: site / "api" / f / "index.html" for f in FAMILIES}}
    parsed = {k: _parse(p) for k, p in pages.items()}
    for t in techniques().values():
        for where in ("index", t.family):
            rows = [row for table in parsed[where].tables if table[0][0]["text"].strip() == "id"  # technique tables
                    for row in table if row[0]["text"].strip() == t.id]
            assert len(rows) == 1, (where, t.id)
            row = rows[0]
            assert row[1]["text"].strip().startswith(t.title) and row[2]["text"].strip() == t.paper
            assert row[4]["text"].strip() == ("yes" if t.lab else "no")
            # the function cell links to the heading of the function's own reference entry
            (href,) = row[5]["hrefs"]
            html, anchor = _resolve(pages[where], href, site)
            assert anchor.endswith("." + t.function.__name__), (t.id, href)
            if html not in parsed:
                parsed[html] = _parse(html)
            assert anchor in parsed[html].ids, (t.id, href)
            lines = [line.strip() for line in row[6]["text"].strip().split("\n")]  # config, then name=default
            assert lines == ([t.config.__name__, *map(_field_text, config_fields(t.config))] if t.config else ["-"]), t.id


def test_strict_build_config_tables_show_each_field_default_and_flag(site):
    for fam in FAMILIES:
        page = _parse(site / "api" / fam / "index.html")
        rows = {tuple(c["text"].strip() for c in row[:3]) for table in page.tables if table[0][0]["text"].strip() == "field"
                for row in table}
        for t in techniques().values():
            if t.family == fam and t.config is not None:
                for f in config_fields(t.config):  # field | default | CLI flag | range | help
                    assert (f.name, repr(f.default), f.cli_flag) in rows, (fam, t.config.__name__, f.name)


def test_strict_build_fails_on_a_docstring_naming_a_missing_parameter(tmp_path):
    """The reference's own settings turn a renamed parameter into a failed build (not a silent page)."""
    import yaml
    cfg = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    (tmp_path / "docs").mkdir()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "tinymod.py").write_text(
        'def scale(x, factor=2):\n    """Scale x.\n\n    Args:\n        x: a number.\n'
        '        factr: the factor (renamed in the code, not here).\n    """\n    return x * factor\n')
    (tmp_path / "docs" / "index.md").write_text("# tiny\n\n::: tinymod\n")
    plugins = [p for p in cfg["plugins"] if isinstance(p, dict) and "mkdocstrings" in p]
    options = plugins[0]["mkdocstrings"]["handlers"]["python"]["options"]
    options["extensions"] = [str(ROOT / e) for e in options.get("extensions", [])]
    tiny = {"site_name": "tiny", "docs_dir": "docs", "plugins": ["autorefs", *plugins], "nav": ["index.md"]}
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(tiny))
    r = _mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site", tmp_path)
    assert r.returncode != 0 and "Parameter 'factr' does not appear in the function signature" in r.stderr + r.stdout
    # and the same module with the docstring fixed builds
    (tmp_path / "src" / "tinymod.py").write_text(
        (tmp_path / "src" / "tinymod.py").read_text().replace("factr:", "factor:"))
    r = _mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site", tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
