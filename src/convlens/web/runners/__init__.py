"""The web lab's runners, one module per family: ``RUNNERS = {technique id: Runner}``.

A runner calls the library function the catalog names (nothing is reimplemented), saves its images
through ``ctx.save`` and returns ``{"figures": ...}``, the numbers the page shows (mostly the catalog
entry's ``summarize(result)``). ``fixed`` lists the web-only inputs shown before the config's fields.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ...fields import ConfigField


@dataclass
class Runner:
    run: Callable
    fixed: list[ConfigField] = field(default_factory=list)
    hidden: tuple = ()                  # config fields the web sets itself (not in the form)
