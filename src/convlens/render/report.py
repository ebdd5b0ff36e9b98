"""A static HTML report: sections of figures and tables, each with the command that reproduces it.

    report = Report("out/demo", title="convlens demo")
    sec = report.section("Predictions", "Top-5 of the default model.")
    sec.figure(img, "preds.png", caption="...", command="convlens predict chelsea")
    sec.table(["image", "top-1"], rows)
    report.write()        # out/demo/index.html, written atomically; PNGs saved as added

Sections are written as they are added (``write`` may be called after each), so an interrupted
run still leaves a valid report with everything finished so far.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

from ..images.io import save_png, write_atomic

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
figure{margin:1em 0} figure img{max-width:100%;image-rendering:auto;border:1px solid #eee}
figcaption{color:#555;font-size:.92em;margin-top:.3em}
code,pre{background:#f5f5f7;border-radius:4px;padding:.1em .35em;font-size:.9em}
pre{padding:.5em .8em;overflow-x:auto}
table{border-collapse:collapse;font-size:.9em;margin:.8em 0} td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}
th{background:#f5f5f7} .meta{color:#666;font-size:.9em}
nav.strip{display:flex;flex-wrap:wrap;gap:.5em;margin:1em 0 2em}
nav.strip a{display:flex;flex-direction:column;align-items:center;width:112px;text-decoration:none;color:#333;font-size:.78em;text-align:center}
nav.strip img{width:104px;height:72px;object-fit:cover;border:1px solid #ddd;border-radius:4px;background:#f5f5f7}
nav.strip span.blank{display:block;width:104px;height:72px;border:1px solid #ddd;border-radius:4px;background:#f5f5f7}
details{margin:.8em 0} summary{cursor:pointer;color:#444}
"""

# Tables longer than this are folded under <details> so pictures stay first.
FOLD_ROWS = 12


@dataclass
class Section:
    title: str
    intro: str = ""
    parts: list[str] = field(default_factory=list)
    report: "Report | None" = None
    thumbnail: str | None = None  # the section's first figure, shown in the contents strip
    meta: str = ""  # e.g. "computed in 3.1 s"

    @property
    def anchor(self) -> str:
        return "".join(ch if ch.isalnum() else "-" for ch in self.title.lower()).strip("-")

    def text(self, text: str) -> "Section":
        self.parts.append(f"<p>{html.escape(text)}</p>")
        return self

    def figure(self, image, filename: str, caption: str = "", command: str | None = None) -> Path:
        """Save ``image`` (PIL / tensor) as ``filename`` in the report folder and show it."""
        path = save_png(image, self.report.folder / filename)
        self.thumbnail = self.thumbnail or path.name
        cmd = f"<pre>$ {html.escape(command)}</pre>" if command else ""
        self.parts.append(f'<figure><img loading="lazy" src="{html.escape(path.name)}" alt="{html.escape(caption)}">'
                          f"<figcaption>{html.escape(caption)}</figcaption>{cmd}</figure>")
        return path

    def command(self, command: str) -> "Section":
        self.parts.append(f"<pre>$ {html.escape(command)}</pre>")
        return self

    def table(self, header, rows) -> "Section":
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
        table = f"<table><tr>{head}</tr>{body}</table>"
        rows = len(rows) if hasattr(rows, "__len__") else body.count("<tr>")
        if rows > FOLD_ROWS:
            table = f"<details><summary>table: {rows} rows</summary>{table}</details>"
        self.parts.append(table)
        return self

    def html(self) -> str:
        intro = f"<p>{html.escape(self.intro)}</p>" if self.intro else ""
        meta = f'<p class="meta">{html.escape(self.meta)}</p>' if self.meta else ""
        return (f'<section id="{self.anchor}"><h2>{html.escape(self.title)}</h2>{intro}{"".join(self.parts)}'
                f"{meta}</section>")

    def strip_entry(self) -> str:
        pic = (f'<img src="{html.escape(self.thumbnail)}" alt="">' if self.thumbnail
               else '<span class="blank"></span>')
        return f'<a href="#{self.anchor}">{pic}{html.escape(self.title)}</a>'


class Report:
    """An HTML report in ``folder`` (created), with sections added in order."""

    def __init__(self, folder, title: str = "convlens report", subtitle: str = ""):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.title, self.subtitle = title, subtitle
        self.sections: list[Section] = []

    def section(self, title: str, intro: str = "") -> Section:
        sec = Section(title, intro, report=self)
        self.sections.append(sec)
        return sec

    def html(self) -> str:
        nav = '<nav class="strip">' + "".join(s.strip_entry() for s in self.sections) + "</nav>"
        body = "".join(s.html() for s in self.sections)
        sub = f'<p class="meta">{html.escape(self.subtitle)}</p>' if self.subtitle else ""
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                f"<style>{CSS}</style></head><body><h1>{html.escape(self.title)}</h1>{sub}{nav}{body}</body></html>")

    def write(self) -> Path:
        return write_atomic(self.folder / "index.html", self.html())
