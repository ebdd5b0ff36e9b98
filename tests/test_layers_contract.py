"""The import layering of docs/CONTRIBUTING.md ("Layers") holds: import-linter's contracts in
pyproject.toml ([tool.importlinter]) are kept, and they do catch an upward import (one hidden
inside a function included), so a green run means something."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "pyproject.toml"


def _lint(src: Path, cwd: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` over the package found in ``src`` (its own interpreter: grimp reads the files)."""
    code = ("import sys\n"
            "try:\n"
            "    from importlinter.cli import lint_imports\n"
            "except ImportError:\n"
            "    sys.exit('import-linter is not installed: pip install -e .[test] (or pip install import-linter)')\n"
            f"sys.exit(lint_imports(config_filename={str(CONFIG)!r}, no_cache=True, no_logo=True))\n")
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _contract_count() -> int:
    return CONFIG.read_text().count("\n[[tool.importlinter.contracts]]\n")


def test_import_contracts_are_kept(tmp_path):
    r = _lint(ROOT / "src", tmp_path)
    assert r.returncode == 0, f"import-linter found imports against the layer order:\n{r.stdout}\n{r.stderr}"
    n = _contract_count()
    assert n >= 5 and f"Contracts: {n} kept, 0 broken." in r.stdout, r.stdout


def test_an_upward_import_inside_a_function_breaks_them(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "convlens", src / "convlens",
                    ignore=lambda d, names: [n for n in names if not n.endswith(".py") and not (Path(d) / n).is_dir()])
    model = src / "convlens" / "models" / "model.py"
    model.write_text(model.read_text() + "\n\ndef _upward():\n    from ..cli import common  # noqa: F401\n")
    r = _lint(src, tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "BROKEN" in r.stdout and "convlens.models.model -> convlens.cli.common" in r.stdout, r.stdout
