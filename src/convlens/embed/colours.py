"""Colour a map by a metadata column: categories (label, folder) as codes, sizes as numbers.

    c = colour_codes(store, "label")     # c.kind == "category": c.codes (uint8), c.categories, c.counts
    c = colour_codes(store, "width")     # c.kind == "numeric": c.values (float32), c.min, c.max

Categories are ordered by count (most frequent first, ties by name); past ``max_categories`` the
rarest are folded into one last "(other)" category, so a palette of that many colours covers a map.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConvlensError

COLOUR_COLUMNS = ("label", "folder", "width", "height")
MAX_CATEGORIES = 20             # the 19 most frequent values keep their colour, the rest are "(other)"
NONE = "(none)"
OTHER = "(other)"


@dataclass
class ColourCodes:
    """Colours of a store's rows by one column.

    Attributes:
        column: the column; kind: "category" or "numeric".
        codes: (N,) uint8 category index of each row (category kind), else None.
        categories: category names in code order; counts: rows per category.
        values: (N,) float32 (numeric kind), else None; min, max: their range (0 for no rows).
    """

    column: str
    kind: str
    codes: np.ndarray | None = None
    categories: list | None = None
    counts: list | None = None
    values: np.ndarray | None = None
    min: float = 0.0
    max: float = 0.0


def categorize(values, max_categories: int = MAX_CATEGORIES) -> tuple[np.ndarray, list[str], list[int]]:
    """(codes uint8, categories, counts) of a list of values: None and "" become "(none)"; categories
    by count, most frequent first (ties by name); past ``max_categories`` the rarest share "(other)"."""
    if not 2 <= max_categories <= 256:
        raise ConvlensError(f"max_categories must be 2..256 (uint8 codes), got {max_categories}")
    vals = [NONE if v in (None, "") else str(v) for v in values]
    top = [v for v, _ in sorted(Counter(vals).items(), key=lambda kv: (-kv[1], kv[0]))]
    if len(top) > max_categories:
        top = top[:max_categories - 1] + [OTHER]
    code = {v: i for i, v in enumerate(top)}
    other = len(top) - 1
    codes = np.array([code.get(v, other) for v in vals], np.uint8)
    counts = np.bincount(codes, minlength=len(top)).tolist() if len(codes) else [0] * len(top)
    return codes, top, counts


def colour_codes(store, column: str, max_categories: int = MAX_CATEGORIES) -> ColourCodes:
    """Colours of every row of ``store`` by ``column``: "label" and "folder" (the parent folder's name
    of each row's path) as categories, "width" and "height" (of the source image) as numbers."""
    if column not in COLOUR_COLUMNS:
        raise ConvlensError(f"unknown colour column '{column[:40]}'; choose {', '.join(COLOUR_COLUMNS)}")
    if column in ("width", "height"):
        v = np.asarray(store.column(column), np.float32)
        return ColourCodes(column, "numeric", values=v, min=float(v.min()) if len(v) else 0.0,
                           max=float(v.max()) if len(v) else 0.0)
    if column == "folder":
        vals = [Path(p).parent.name if p else None for p in store.column("path")]
    else:
        vals = store.column("label")
    codes, categories, counts = categorize(vals, max_categories)
    return ColourCodes(column, "category", codes=codes, categories=categories, counts=counts)
