"""A static HTML report: sections of figures and tables, each with the command that reproduces it.

    report = Report("out/demo", title="convlens demo")
    sec = report.section("Predictions", "Top-5 of the default model.")
    sec.figure(img, "preds.png", caption="...", command="convlens predict chelsea")
    sec.table(["image", "top-1"], rows)
    report.write()        # out/demo/index.html, written atomically; PNGs saved as added

Sections are written as they are added (``write`` may be called after each), so an interrupted
run still leaves a valid report with everything finished so far.

The page has the explorer's look (the colours of ``web/static/style.css``): a contents strip of
thumbnails (each section's first picture) at the top, every section a card that opens with a
picture, tables longer than ``FOLD_ROWS`` folded under ``<details>``, and under each figure an
"open in explorer" link to the view of ``convlens serve`` that reproduces it (found from the
figure's command by the ``link`` function the report is given (the demo's: ``catalog.explorer_view``),
or given as ``figure(..., explorer="/layers/...")``). The report knows no CLI verbs or URLs itself.
The links point at ``explorer_url``: by default ``$CONVLENS_EXPLORER_URL`` or, unset,
``http://127.0.0.1:8000`` (what ``convlens serve`` prints); ``explorer_url=""`` or
``CONVLENS_EXPLORER_URL=off`` leaves them out.
"""
from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..images.io import save_png, write_atomic

EXPLORER_ENV = "CONVLENS_EXPLORER_URL"
EXPLORER_DEFAULT = "http://127.0.0.1:8000"
_STYLE_CSS = Path(__file__).resolve().parent.parent / "web" / "static" / "style.css"
_FALLBACK_ROOT = ":root{--bg:#fafaf8;--fg:#1d1d1f;--muted:#6e6e73;--line:#e2e2e0;--accent:#c2410c;--card:#fff}"


def _explorer_colours() -> str:
    """The ``:root { --bg ... }`` block of the explorer's stylesheet: one palette for page and report."""
    try:
        m = re.search(r":root\s*\{[^}]*\}", _STYLE_CSS.read_text())
        return m.group(0) if m else _FALLBACK_ROOT
    except OSError:
        return _FALLBACK_ROOT


CSS = _explorer_colours() + """
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--fg)}
header.top{display:flex;align-items:baseline;gap:16px;padding:10px 24px;border-bottom:1px solid var(--line);background:var(--card)}
header.top .brand{font-weight:700;color:var(--accent);font-size:18px}
header.top h1{font-size:18px;margin:0;font-weight:600}
main{max-width:1240px;margin:0 auto;padding:8px 24px 40px}
a{color:var(--accent)}
section{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:2px 20px 14px;margin:18px 0}
h2{font-size:20px;margin:14px 0 4px}
figure{margin:1em 0} figure img{max-width:100%;image-rendering:auto;border:1px solid var(--line);border-radius:3px}
figcaption{color:var(--muted);font-size:.92em;margin-top:.3em}
figcaption a.explorer{margin-left:.6em;white-space:nowrap;font-size:.92em;text-decoration:none}
figcaption a.explorer:hover{text-decoration:underline}
code,pre{background:#f3f3f0;border-radius:4px;padding:.1em .35em;font-size:.88em}
pre{padding:.45em .8em;overflow-x:auto;margin:.4em 0}
table{border-collapse:collapse;font-size:.9em;margin:.8em 0} td,th{border-bottom:1px solid var(--line);padding:.25em .7em;text-align:left}
th{background:#f3f3f0} .meta{color:var(--muted);font-size:.85em}
nav.strip{display:grid;grid-template-columns:repeat(auto-fill,minmax(118px,1fr));gap:10px;margin:16px 0 8px}
nav.strip a{display:flex;flex-direction:column;align-items:center;text-decoration:none;color:var(--fg);font-size:.78em;text-align:center;line-height:1.25}
nav.strip img,nav.strip span.blank{display:block;width:112px;height:76px;object-fit:cover;border:2px solid var(--line);border-radius:5px;background:#f3f3f0;margin-bottom:3px}
nav.strip a:hover img,nav.strip a:hover span.blank{border-color:var(--accent)}
nav.strip span.blank.text{font:10px/1.25 ui-monospace,monospace;white-space:pre;overflow:hidden;text-align:left;padding:4px 5px;box-sizing:border-box;color:#444;background:#fff}
p.explorer-link{margin:-6px 0 10px;font-size:.85em}
details{margin:.8em 0} summary{cursor:pointer;color:var(--muted)}
p.note{color:var(--muted);font-size:.88em;margin:4px 0 0}
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

    def figure(self, image, filename: str, caption: str = "", command: str | None = None,
               explorer: str | None = None) -> Path:
        """Save ``image`` (PIL / tensor) as ``filename`` in the report folder and show it.

        ``explorer``: the explorer view reproducing it (a path such as ``/layers/features.6/3?image=chelsea``);
        default: the report's ``link(command)``; "" for none.
        """
        path = save_png(image, self.report.folder / filename)
        self.thumbnail = self.thumbnail or path.name
        cmd = f"<pre>$ {html.escape(command)}</pre>" if command else ""
        link = self._explorer_link(command, explorer)
        self.parts.append(f'<figure><img loading="lazy" src="{html.escape(path.name)}" alt="{html.escape(caption)}">'
                          f"<figcaption>{html.escape(caption)}{link}</figcaption>{cmd}</figure>")
        return path

    def _explorer_link(self, command: str | None, explorer: str | None = None) -> str:
        """The "open in explorer" anchor of a command's view (``explorer``, else the report's ``link``), or ""."""
        link = self.report.link if self.report is not None else None
        view = (link(command) if link and command else None) if explorer is None else explorer
        base = self.report.explorer_url if self.report is not None else ""
        return (f' <a class="explorer" href="{html.escape(base + view)}" title="needs convlens serve running">'
                "open in explorer &#8599;</a>") if (view and base) else ""

    def command(self, command: str, explorer: str | None = None) -> "Section":
        """Show a command and, as a figure's caption has, the link to the explorer view reproducing it
        (``explorer``, else the report's ``link(command)``; "" for none)."""
        link = self._explorer_link(command, explorer)
        self.parts.append(f"<pre>$ {html.escape(command)}</pre>" + (f'<p class="explorer-link">{link.strip()}</p>' if link else ""))
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
        return (f'<section id="{self.anchor}"><h2>{html.escape(self.title)}</h2>{intro}{"".join(self.ordered())}'
                f"{meta}</section>")

    def ordered(self) -> list[str]:
        """The parts with pictures first: a section opens with its first figure, whatever was added before it."""
        first = next((i for i, p in enumerate(self.parts) if p.startswith("<figure>")), None)
        if not first:
            return list(self.parts)
        return [self.parts[first], *self.parts[:first], *self.parts[first + 1:]]

    def preview_text(self, lines: int = 5) -> str:
        """The first lines of the section's first printed output (else of its text): its contents tile."""
        for p in self.ordered():
            if p.startswith(("<pre>", "<table", "<details", "<p>")):
                text = html.unescape(re.sub(r"<[^>]+>", "\n", p))
                rows = [r.strip() for r in text.splitlines() if r.strip() and not r.strip().startswith("$ ")]
                if rows:
                    return "\n".join(rows[:lines])
        return self.title

    def strip_entry(self) -> str:
        # a section without a figure (printed lists: the word neighbours) shows the start of its first output
        pic = (f'<img src="{html.escape(self.thumbnail)}" alt="">' if self.thumbnail
               else f'<span class="blank text">{html.escape(self.preview_text())}</span>')
        return f'<a href="#{self.anchor}">{pic}{html.escape(self.title)}</a>'


class Report:
    """An HTML report in ``folder`` (created), with sections added in order."""

    def __init__(self, folder, title: str = "convlens report", subtitle: str = "", explorer_url: str | None = None,
                 link=None):
        """``explorer_url``: base of the "open in explorer" links (default ``$CONVLENS_EXPLORER_URL``, else
        http://127.0.0.1:8000); "" or "off" leaves the links out. ``link(command) -> path or None``: the
        explorer view of a figure's command (the demo passes ``convlens.catalog.explorer_view``)."""
        self.link = link
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.title, self.subtitle = title, subtitle
        url = os.environ.get(EXPLORER_ENV, EXPLORER_DEFAULT) if explorer_url is None else explorer_url
        self.explorer_url = "" if url.strip().lower() in ("", "off", "none", "0") else url.strip().rstrip("/")
        self.sections: list[Section] = []

    def section(self, title: str, intro: str = "") -> Section:
        sec = Section(title, intro, report=self)
        self.sections.append(sec)
        return sec

    def html(self) -> str:
        nav = '<nav class="strip">' + "".join(s.strip_entry() for s in self.sections) + "</nav>"
        body = "".join(s.html() for s in self.sections)
        sub = f'<p class="meta">{html.escape(self.subtitle)}</p>' if self.subtitle else ""
        note = (f'<p class="note">"open in explorer" links need <code>convlens serve</code> running at '
                f"{html.escape(self.explorer_url)} (set {EXPLORER_ENV} to change it, or to off to hide them).</p>"
                if self.explorer_url else "")
        return (f"<!doctype html><html><head><meta charset='utf-8'><meta name='viewport' "
                f"content='width=device-width, initial-scale=1'><title>{html.escape(self.title)}</title>"
                f"<style>{CSS}</style></head><body><header class=\"top\"><span class=\"brand\">convlens</span>"
                f"<h1>{html.escape(self.title)}</h1></header><main>{sub}{note}{nav}{body}</main></body></html>")

    def write(self) -> Path:
        return write_atomic(self.folder / "index.html", self.html())
