"""optim (see its issue and docs/). Public names listed in __all__ are re-exported as convlens.<name>."""
__all__: list[str] = []
