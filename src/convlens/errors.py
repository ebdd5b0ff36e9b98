"""One exception type for every user-facing problem.

Each message names the problem *and* the fix, on one line, so the CLI can print it as is.
"""
from __future__ import annotations

import difflib


class ConvlensError(ValueError):
    """A problem with the user's input or set-up; the message says how to fix it."""


def closest(name: str, choices, n: int = 5) -> str:
    """'a, b, c' of the valid choices closest to `name` (for 'did you mean' hints)."""
    choices = list(choices)
    hits = difflib.get_close_matches(name, choices, n=n, cutoff=0.3)
    if not hits:  # fall back to prefix / substring matches, then the first few
        hits = [c for c in choices if name.split(".")[0] in c][:n] or choices[:n]
    return ", ".join(hits)
