"""Griffe extension for the API reference: a Google-style section heading right under the previous
section's last line (convlens's habit: ``Args:`` ... ``Returns:`` ... ``Example:`` with no blank line
between them) is read as a section, as Python's own readers of these docstrings do.

Griffe's Google parser needs a blank line above a section heading and otherwise keeps the heading as
plain text. This inserts that blank line in the parsed copy of each docstring (the source is untouched),
only above a line that is a known section name alone (``Returns:``), outside code fences, and reads
``Example:`` as ``Examples:`` (griffe's name for the section whose ``>>>`` lines render as code).
"""
from __future__ import annotations

import re

import griffe

SECTION = re.compile(r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Other Args|Other Arguments|"
                     r"Other Parameters|Other Params|Returns?|Yields?|Raises|Warns|Examples?|Notes?|Warnings?|"
                     r"Attributes|Receives|Functions|Methods|Classes|Modules):\s*$", re.IGNORECASE)


def separate_sections(text: str) -> str:
    """``text`` with a blank line above each section heading that lacks one."""
    out, fenced = [], False
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if not fenced and SECTION.match(line):
            if out and out[-1].strip():
                out.append("")
            if line.strip().lower() == "example:":
                line = line.replace("Example:", "Examples:").replace("example:", "examples:")
        out.append(line)
    return "\n".join(out)


class SectionsWithoutBlankLine(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = separate_sections(obj.docstring.value)
