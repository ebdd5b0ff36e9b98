"""CLI commands for the synthesis concern (filled in by its issue)."""
from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this concern's commands to `app`."""
