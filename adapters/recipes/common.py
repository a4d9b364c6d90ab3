"""Helpers shared by the recipe generators: their tables, lazily sampled template slots, rendering,
JSON lines.

Why slots are lazy: a ticket's body, subject, summary and action are rendered from independent
templates, and each must show the *same* order number or amount. A `Slots` object samples a value
the first time a template asks for it and returns the same value afterwards, and records which slots
the customer's text actually used, so a summary never restates a fact the customer did not give.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

# The phrase and situation tables the generators draw from (data, not code: see tables/*.yaml).
TABLES_DIR = Path(__file__).resolve().parent / "tables"
# The generated train/validation files and the hand-written held-out sets (adapters/data/).
DATA_DIR = Path(__file__).resolve().parent.parent / "data"

SlotMaker = Callable[[random.Random, "Slots"], str]

_OPTIONAL = re.compile(r"\[([^\[\]]*)\]")
_FIELD = re.compile(r"\{(\w+)\}")


class Slots(dict):
    """Template values for one record, sampled on first use from `makers` with the record's rng."""

    def __init__(self, rng: random.Random, makers: Mapping[str, SlotMaker]) -> None:
        super().__init__()
        self.rng = rng
        self.makers = makers
        self.used: set[str] = set()

    def __missing__(self, key: str) -> str:
        value = self.makers[key](self.rng, self)
        self[key] = value
        return value


class _Recording:
    """A mapping view for `str.format_map` that marks every slot it hands out as used."""

    def __init__(self, slots: Slots) -> None:
        self.slots = slots

    def __getitem__(self, key: str) -> str:
        self.slots.used.add(key)
        return self.slots[key]


def load_table(name: str) -> Any:
    """A table of `tables/` (YAML) with every list as a tuple: the tables are shared constants."""
    with (TABLES_DIR / name).open(encoding="utf-8") as source:
        return _frozen(yaml.load(source, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))


def _frozen(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_frozen(item) for item in value)
    if isinstance(value, dict):
        return {key: _frozen(item) for key, item in value.items()}
    return value


def fill(template: str, slots: Slots) -> str:
    """Render customer-visible text; its slots count as facts the customer gave."""
    return template.format_map(_Recording(slots))


def fill_label(template: str, slots: Slots) -> str:
    """Render a summary or action: `[...]` parts appear only if the customer used all their slots."""

    def optional(match: re.Match[str]) -> str:
        part = match.group(1)
        return part if all(name in slots.used for name in _FIELD.findall(part)) else ""

    return _OPTIONAL.sub(optional, template).format_map(slots)


def required_fields(template: str) -> set[str]:
    """Slots a label template needs outside its optional `[...]` parts (used by the tests)."""
    return set(_FIELD.findall(_OPTIONAL.sub("", template)))


def fields(template: str) -> set[str]:
    return set(_FIELD.findall(template))


def lower_words(text: str) -> str:
    """Lowercase words that have no digits, so order numbers and codes keep their form."""
    return " ".join(w if any(c.isdigit() for c in w) else w.lower() for w in text.split(" "))


def normalize(text: str) -> str:
    """The form used to detect duplicate bodies: case and whitespace do not make a ticket new."""
    return " ".join(text.lower().split())


def write_jsonl(path: Path, records: Iterable[Mapping[str, Any]]) -> int:
    """Write records as UTF-8 JSON lines with stable key order; returns the number written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for record in records:
            out.write(json.dumps(dict(record), ensure_ascii=False) + "\n")
            count += 1
    return count


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as source:
        return [json.loads(line) for line in source if line.strip()]


def one_sentence(text: str, limit: int = 200) -> str:
    """Collapse whitespace and keep a label within `limit` characters, cutting at a word boundary."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "."
