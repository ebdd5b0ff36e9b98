"""Demo-report sections for the synthesis concern: (name, build(report, ctx)) pairs, in order."""
from __future__ import annotations

SECTIONS: list = []
