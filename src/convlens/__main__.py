"""`python -m convlens ...` is the `convlens` command."""
from .cli.main import main

main()
