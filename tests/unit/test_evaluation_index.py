"""adapters/evaluation/README.md indexes every evaluation run kept in the repository: one table row
per folder (or file) of adapters/evaluation, and no row for something that is not there."""

from __future__ import annotations

import re
from pathlib import Path

EVALUATION = Path(__file__).resolve().parents[2] / "adapters" / "evaluation"
INDEX = EVALUATION / "README.md"
COLUMNS = ["folder", "what it evaluates", "command", "date (UTC)", "shipped or experiment"]


def _rows() -> list[list[str]]:
    lines = [line for line in INDEX.read_text(encoding="utf-8").splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == COLUMNS, header
    # A cell may hold `|` only inside backticks (a command): split on the pipes outside them.
    return [[cell.strip() for cell in re.split(r"\|(?=(?:[^`]*`[^`]*`)*[^`]*$)", line.strip().strip("|"))]
            for line in lines[2:]]


def test_every_evaluation_entry_is_indexed_and_every_row_exists() -> None:
    on_disk = {p.name + ("/" if p.is_dir() else "") for p in EVALUATION.iterdir() if p.name != "README.md"}
    indexed = [re.fullmatch(r"`([^`]+)`", row[0]).group(1) for row in _rows()]
    assert len(indexed) == len(set(indexed)), "an entry is listed twice"
    assert set(indexed) - on_disk == set(), "rows without a folder"
    assert on_disk - set(indexed) == set(), "folders missing from adapters/evaluation/README.md"


def test_every_row_fills_every_column() -> None:
    for row in _rows():
        assert len(row) == len(COLUMNS) and all(row), row
        assert re.match(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", row[3]), row[3]
        assert re.match(r"(shipped|experiment|demo)", row[4]), row[4]
