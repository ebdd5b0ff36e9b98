"""Demo-report sections for the inspect concern: (name, build(report, ctx)) pairs, in order."""
from __future__ import annotations

SECTIONS: list = []
