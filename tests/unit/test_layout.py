"""The package layout holds: import contracts (pyproject's [tool.importlinter]), module size, and
each subpackage's `__init__` naming its public face."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "service"
MAX_MODULE_LINES = 400


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("module", sorted(p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("*.py")))
def test_modules_stay_small(module: str) -> None:
    lines = len((ROOT / module).read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{module} has {lines} lines; split it by responsibility"


def test_subpackages_name_their_public_face() -> None:
    """An `__init__` that re-exports declares `__all__`, and defines nothing else of its own."""
    for init in PACKAGE.rglob("__init__.py"):
        tree = ast.parse(init.read_text())
        imports = [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("service")]
        names = {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
        if imports and init.parent.name != "cli":
            assert "__all__" in names, f"{init.relative_to(ROOT)} re-exports without __all__"
