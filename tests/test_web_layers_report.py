"""The demo report's explorer look (issue 13 item 8): contents strip, pictures first, folded long
tables, "open in explorer" links (found from each figure's command), parsed from the HTML."""
from __future__ import annotations

from html.parser import HTMLParser

import pytest
import torch

from convlens.catalog import explorer_view
from convlens.render import Report


class Page(HTMLParser):
    """Collects the report's structure: strip entries, sections with their parts in order, links."""

    def __init__(self, text: str):
        super().__init__()
        self.strip, self.sections, self.links, self.details = [], [], [], []
        self._in_strip = self._in_summary = False
        self._section = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "nav" and a.get("class") == "strip":
            self._in_strip = True
        elif self._in_strip and tag == "a":
            self.strip.append({"href": a["href"], "img": None})
        elif self._in_strip and tag == "img":
            self.strip[-1]["img"] = a["src"]
        elif tag == "section":
            self._section = {"id": a["id"], "parts": []}
            self.sections.append(self._section)
        elif self._section is not None and tag in ("figure", "table", "details", "pre"):
            self._section["parts"].append(tag)
        if tag == "a" and a.get("class") == "explorer":
            self.links.append(a["href"])
        if tag == "summary":
            self._in_summary = True

    def handle_endtag(self, tag):
        if tag == "nav":
            self._in_strip = False
        elif tag == "section":
            self._section = None
        elif tag == "summary":
            self._in_summary = False

    def handle_data(self, data):
        if self._in_summary:
            self.details.append(data)


def build(tmp_path, **kw) -> Page:
    rep = Report(tmp_path, title="t", link=explorer_view, **kw)
    layers = rep.section("Layers", "a long table first, then a picture")
    layers.command("convlens layers mobilenet_v2 --rf")
    layers.table(["name"], [[f"features.{i}"] for i in range(80)])
    layers.figure(torch.rand(1, 3, 8, 8), "stages.png", "stages", command="convlens layers mobilenet_v2 --rf",
                  explorer="/layers/features.6?image=chelsea")
    acts = rep.section("Activations")
    acts.figure(torch.rand(1, 3, 8, 8), "acts.png", "grid",
                command="convlens activations chelsea --layer features.6 --order mean -o acts.png")
    acts.table(["channel"], [[1], [2]])
    sal = rep.section("Saliency")
    sal.figure(torch.rand(1, 3, 8, 8), "sal.png", "saliency", command="convlens saliency coffee -o sal.png")
    rep.section("Text only").text("no picture here")
    return Page(rep.write().read_text())


def test_report_strip_pictures_first_folded_tables_and_links(tmp_path, monkeypatch):
    monkeypatch.delenv("CONVLENS_EXPLORER_URL", raising=False)
    page = build(tmp_path)
    assert [e["href"] for e in page.strip] == ["#layers", "#activations", "#saliency", "#text-only"]
    assert [e["img"] for e in page.strip] == ["stages.png", "acts.png", "sal.png", None]
    layers = page.sections[0]["parts"]
    assert layers[0] == "figure"                       # the picture comes before the command and the table
    assert layers.index("details") < layers.index("table")  # the 80-row table is inside <details>
    assert page.details == ["table: 80 rows"]          # only the long table is folded
    assert "details" not in page.sections[1]["parts"]
    assert page.links == ["http://127.0.0.1:8000/layers/features.6?image=chelsea",
                          "http://127.0.0.1:8000/layers/features.6?image=chelsea",
                          "http://127.0.0.1:8000/lab?image=coffee&technique=saliency"]


def test_explorer_links_base_is_configurable_and_can_be_off(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVLENS_EXPLORER_URL", "http://127.0.0.1:9000/")
    assert build(tmp_path / "a").links[0] == "http://127.0.0.1:9000/layers/features.6?image=chelsea"
    monkeypatch.setenv("CONVLENS_EXPLORER_URL", "off")
    assert build(tmp_path / "b").links == []
    monkeypatch.delenv("CONVLENS_EXPLORER_URL")
    assert build(tmp_path / "c", explorer_url="").links == []
    assert build(tmp_path / "d", explorer_url="http://h:1").links[2] == "http://h:1/lab?image=coffee&technique=saliency"


def test_report_uses_the_explorer_colours(tmp_path):
    import re

    from convlens.render.report import _STYLE_CSS
    root = re.search(r":root\s*\{[^}]*\}", _STYLE_CSS.read_text()).group(0)
    build(tmp_path)
    text = (tmp_path / "index.html").read_text()
    assert root in text and "var(--accent)" in text


@pytest.mark.parametrize("command,view", [
    ("convlens activations chelsea --layer features.2.conv.0 --order mean -o a.png", "/layers/features.2.conv.0?image=chelsea"),
    ("convlens filters --model mobilenet_v2 --layer features.0.0 --scale shared -o f.png", "/layers/features.0.0/0?image=chelsea"),
    ("convlens filters --model alexnet --weights none --layer features.0 -o f.png", None),   # another model
    ("convlens patches samples:400 --layer features.6 --channels 1,21,3 --k 9 -o p.png", "/layers/features.6/1?image=chelsea&n=400&k=9"),
    ("convlens guided chelsea --layer features.14 --channel 7 --unit max -o gb.png", "/layers/features.14/7?image=chelsea"),
    ("convlens guided coffee -o gb.png", "/lab?image=coffee&technique=guided_backprop"),
    ("convlens sanity guided chelsea -o s.png", "/lab?image=chelsea&technique=sanity_check"),
    # issue 23: the link carries the figure's parameters (the lab form's fields, the projector's store and map)
    ("convlens classviz --target 'flamingo,pelican' --preset robust -o r.png",
     "/lab?technique=classviz&target=flamingo%2Cpelican&preset=robust"),
    ("convlens embed samples:64 --out s.emb && convlens project s.emb --method tsne -o map.png",
     "/projector?store=s.emb&method=tsne"),
    ("convlens predict chelsea coffee --topk 5", "/lab?image=chelsea"),
    ("convlens linear-demo -o dims.png", "/lab?technique=linear_walkthrough"),   # in the lab since issue 23
    ("convlens layers mobilenet_v2 --rf", None),
    ("not a 'command", None),
    (None, None),
])
def test_explorer_view_from_command(command, view):
    assert explorer_view(command) == view


def test_lab_links_name_real_lab_techniques():
    """Every CLI verb of a lab technique links to that technique in the lab, which serves it."""
    pytest.importorskip("fastapi")
    from convlens.catalog import lab_techniques
    from convlens.web.techniques import techniques
    served = set(techniques())
    for t in lab_techniques():
        assert t.id in served
        for verb in t.cli:
            assert explorer_view(f"convlens {verb} chelsea -o x.png") == f"/lab?image=chelsea&technique={t.id}"


def test_report_without_a_link_function_makes_no_links(tmp_path):
    """render/ knows no CLI verbs: only the link function it is given makes explorer links."""
    rep = Report(tmp_path, title="t", explorer_url="http://127.0.0.1:8000")
    rep.section("s").figure(torch.rand(1, 3, 8, 8), "a.png", "a", command="convlens saliency chelsea -o a.png")
    assert Page(rep.write().read_text()).links == []
    rep = Report(tmp_path, title="t", explorer_url="http://127.0.0.1:8000", link=explorer_view)
    rep.section("s").figure(torch.rand(1, 3, 8, 8), "a.png", "a", command="convlens saliency chelsea -o a.png")
    assert Page(rep.write().read_text()).links == ["http://127.0.0.1:8000/lab?image=chelsea&technique=saliency"]


@pytest.mark.slow  # exact receptive fields of 19 blocks: ~10-30 s
def test_demo_layers_section_opens_with_a_picture(tmp_path, offline_model):
    """The real demo section: the stage picture first, the 80-row layer table folded."""
    from convlens.demo.foundation import layer_table
    from convlens.demo.run import DemoContext
    rep = Report(tmp_path, title="demo", explorer_url="http://127.0.0.1:8000", link=explorer_view)
    ctx = DemoContext(tmp_path, quick=True)
    ctx.cache["model"] = offline_model
    layer_table(rep, ctx)
    page = Page(rep.write().read_text())
    parts = page.sections[0]["parts"]
    assert parts[0] == "figure" and "details" in parts
    assert page.strip[0]["img"] == "stages.png" and (tmp_path / "stages.png").exists()
    assert page.links == ["http://127.0.0.1:8000/layers/features.6?image=chelsea"]
    assert page.details and page.details[0].startswith("table: ") and int(page.details[0].split()[1]) > 12
