"""Find the data recipes in `adapters/recipes/` (plain Python modules kept beside the adapters
they train, not part of the installed package)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

from service.config import PROJECT_ROOT

RECIPES_DIR = PROJECT_ROOT / "adapters" / "recipes"
# Recipe name (as on the command line) -> module in adapters/recipes/.
RECIPE_MODULES = {"ticket-triage": "ticket_triage", "brand-voice": "brand_voice"}


def recipe_module(name: str) -> ModuleType:
    """Import `adapters.recipes.<module>` for a recipe name, with the project root on sys.path."""
    if name not in RECIPE_MODULES:
        raise KeyError(f"unknown recipe {name!r}; known: {', '.join(sorted(RECIPE_MODULES))}")
    root = str(PROJECT_ROOT)
    if root not in sys.path:
        sys.path.insert(0, root)
    return importlib.import_module(f"adapters.recipes.{RECIPE_MODULES[name]}")


DATA_DIR = RECIPES_DIR / "data"
# Recipe name -> (training file, validation file) written by the recipe's generator.
RECIPE_DATA = {
    "ticket-triage": ("triage_train.jsonl", "triage_validation.jsonl"),
    "brand-voice": ("voice_train.jsonl", "voice_validation.jsonl"),
}


def data_files(name: str) -> tuple[Path, Path]:
    """The default training and validation files of a recipe."""
    if name not in RECIPE_DATA:
        raise KeyError(f"unknown recipe {name!r}; known: {', '.join(sorted(RECIPE_DATA))}")
    train, validation = RECIPE_DATA[name]
    return DATA_DIR / train, DATA_DIR / validation


def project_path(path: str | Path) -> Path:
    """A data path as configured: absolute, or relative to the project root (so a recipe's default
    names the same file from any working directory)."""
    path = Path(path)
    return path if path.is_absolute() else PROJECT_ROOT / path
