"""Labelled evaluation data: JSON lines, validated line by line so a bad line is reported by number.

Triage datasets need `subject`, `body`, `category`, `priority` (or the `expected_category` /
`expected_priority` spelling of service/testing/tickets.jsonl); `customer_tier`, `channel`,
`metadata` and `id` are optional and every other field is ignored, so any team can evaluate on
its own exported tickets. Voice datasets need `message` and may carry a reference `reply`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from service.tasks.triage import Ticket, TicketTriage

# The label sets are the served schema's, so a dataset can never disagree with the endpoint.
CATEGORIES: tuple[str, ...] = get_args(TicketTriage.model_fields["category"].annotation)
PRIORITIES: tuple[str, ...] = get_args(TicketTriage.model_fields["priority"].annotation)


class DatasetError(ValueError):
    """A dataset that cannot be used; the message names the file and line."""


class LabelledTicket(Ticket):
    """One ticket with its true labels (the Ticket fields are validated as the endpoint does)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    category: str
    priority: str

    @model_validator(mode="before")
    @classmethod
    def _accept_expected_spelling(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError("each line must be a JSON object")
        data = dict(data)
        for field in ("category", "priority"):
            alias = f"expected_{field}"
            if alias in data:
                if field in data and data[field] != data[alias]:
                    raise ValueError(f"{field!r} and {alias!r} disagree ({data[field]!r} vs {data[alias]!r})")
                data[field] = data.pop(alias)
        return data

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, (int, float)) else value

    @field_validator("category")
    @classmethod
    def _known_category(cls, value: str) -> str:
        return _one_of(value, CATEGORIES, "category")

    @field_validator("priority")
    @classmethod
    def _known_priority(cls, value: str) -> str:
        return _one_of(value, PRIORITIES, "priority")

    def to_ticket(self) -> Ticket:
        return Ticket(**self.model_dump(include=set(Ticket.model_fields)))


class VoiceExample(BaseModel):
    """One customer message, optionally with a reference reply written in the brand's voice."""

    model_config = ConfigDict(extra="ignore")

    id: str
    message: str = Field(min_length=1)
    reply: str | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, (int, float)) else value


Example = TypeVar("Example", LabelledTicket, VoiceExample)


def load_tickets(path: Path, limit: int | None = None) -> list[LabelledTicket]:
    return _load(path, LabelledTicket, limit)


def load_voice(path: Path, limit: int | None = None) -> list[VoiceExample]:
    return _load(path, VoiceExample, limit)


def _one_of(value: str, allowed: tuple[str, ...], name: str) -> str:
    normalised = value.strip().lower() if isinstance(value, str) else value
    if normalised not in allowed:
        raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(allowed)}")
    return normalised


def _load(path: Path, model: type[Example], limit: int | None) -> list[Example]:
    """Validate every line (even past `limit`, so a bad file fails at once), then keep `limit`."""
    if limit is not None and limit < 1:
        raise DatasetError(f"{path}: the limit must be at least 1")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read the dataset: {exc}") from exc
    examples: list[Example] = []
    first_seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise DatasetError(f"{path}: line {number}: not valid JSON ({exc})") from exc
        if isinstance(data, dict) and data.get("id") in (None, ""):
            data = data | {"id": f"line-{number}"}
        try:
            example = model.model_validate(data)
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(part) for part in problem.get("loc", ()))
            message = problem.get("msg", "invalid").removeprefix("Value error, ")
            raise DatasetError(f"{path}: line {number}: {where + ': ' if where else ''}{message}") from exc
        if example.id in first_seen:
            raise DatasetError(f"{path}: line {number}: id {example.id!r} repeats line {first_seen[example.id]}")
        first_seen[example.id] = number
        examples.append(example)
    if not examples:
        raise DatasetError(f"{path}: the dataset has no examples")
    return examples[:limit] if limit is not None else examples
