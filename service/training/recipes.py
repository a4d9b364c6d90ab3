"""The data recipes: `adapters.recipes` (installed beside `service`, see pyproject.toml), one module
per recipe name, and the data files each recipe's generator writes to `adapters/data/`."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from service.config import PROJECT_ROOT

# Recipe name (as on the command line) -> module in adapters/recipes/.
RECIPE_MODULES = {"ticket-triage": "ticket_triage", "brand-voice": "brand_voice"}


def recipe_module(name: str) -> ModuleType:
    """Import `adapters.recipes.<module>` for a recipe name (imported on use: it loads its tables)."""
    if name not in RECIPE_MODULES:
        raise KeyError(f"unknown recipe {name!r}; known: {', '.join(sorted(RECIPE_MODULES))}")
    return importlib.import_module(f"adapters.recipes.{RECIPE_MODULES[name]}")


# Beside `service` in a checkout (and in an install: `adapters` ships its data as package data).
DATA_DIR = PROJECT_ROOT / "adapters" / "data"
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
