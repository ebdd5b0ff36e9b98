"""`convlens demo`: one report, one section per technique that exists (see ``run.py``)."""
from .run import DemoContext, run_demo

__all__ = ["run_demo", "DemoContext"]
