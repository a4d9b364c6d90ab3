"""Loading labelled JSONL: both label spellings, optional fields, and errors that name the line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.evaluation.dataset import (
    CATEGORIES,
    PRIORITIES,
    DatasetError,
    load_tickets,
    load_voice,
)
from service.testing import TICKETS_FILE

REPO_TICKETS = TICKETS_FILE


def _write(tmp_path: Path, *lines: object) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def test_repository_tickets_load_with_expected_spelling() -> None:
    tickets = load_tickets(REPO_TICKETS)
    assert len(tickets) == 60
    assert tickets[0].id == "t001" and tickets[0].category == "billing" and tickets[0].priority == "high"
    assert {t.category for t in tickets} <= set(CATEGORIES) and {t.priority for t in tickets} <= set(PRIORITIES)
    assert [t.id for t in load_tickets(REPO_TICKETS, limit=4)] == ["t001", "t002", "t003", "t004"]


def test_plain_spelling_optional_fields_and_ignored_extras(tmp_path: Path) -> None:
    path = _write(tmp_path,
                  {"subject": "Lost parcel", "body": "Where is it?", "category": "Shipping ", "priority": "HIGH",
                   "customer_tier": "pro", "channel": "email", "metadata": {"order": "A-1", "items": 2},
                   "team": "eu", "created_at": "2024-01-01"},
                  "",  # blank lines are skipped
                  {"id": 7, "subject": "", "body": "Refund please", "category": "returns", "priority": "low"})
    first, second = load_tickets(path)
    assert first.id == "line-1" and second.id == "7"
    assert (first.category, first.priority) == ("shipping", "high")  # case and spaces normalised
    ticket = first.to_ticket()
    assert ticket.metadata == {"order": "A-1", "items": 2} and ticket.customer_tier == "pro"
    assert not hasattr(ticket, "category")
    assert second.to_ticket().customer_tier is None


@pytest.mark.parametrize(("line", "message"), [
    ("{not json", "line 2: not valid JSON"),
    ('["a list"]', "line 2: each line must be a JSON object"),
    ({"subject": "s", "category": "billing", "priority": "low"}, "line 2: body: Field required"),
    ({"subject": "s", "body": "b", "priority": "low"}, "line 2: category: Field required"),
    ({"subject": "s", "body": "b", "category": "sales", "priority": "low"}, "line 2: category: unknown category 'sales'"),
    ({"subject": "s", "body": "b", "category": "billing", "priority": "p1"}, "line 2: priority: unknown priority 'p1'"),
    ({"subject": "s", "body": "b", "category": "billing", "expected_category": "account", "priority": "low"},
     "line 2: 'category' and 'expected_category' disagree"),
    ({"subject": "s", "body": "", "category": "billing", "priority": "low"}, "line 2: body: String should have at least 1"),
    ({"id": "a", "subject": "s", "body": "b", "category": "billing", "priority": "low"}, "line 2: id 'a' repeats line 1"),
])
def test_bad_lines_are_named(tmp_path: Path, line: object, message: str) -> None:
    good = {"id": "a", "subject": "s", "body": "b", "category": "billing", "priority": "low"}
    path = _write(tmp_path, good, line)
    with pytest.raises(DatasetError) as excinfo:
        load_tickets(path)
    assert message in str(excinfo.value) and str(path) in str(excinfo.value)


def test_empty_missing_and_bad_limit(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no examples"):
        load_tickets(_write(tmp_path, ""))
    with pytest.raises(DatasetError, match="cannot read"):
        load_tickets(tmp_path / "missing.jsonl")
    with pytest.raises(DatasetError, match="at least 1"):
        load_tickets(REPO_TICKETS, limit=0)


def test_voice_dataset(tmp_path: Path) -> None:
    path = _write(tmp_path, {"message": "Where is order 42?", "reply": "Hello! It ships today."},
                  {"id": "x", "message": "Thanks", "extra": 1})
    first, second = load_voice(path)
    assert (first.id, first.reply) == ("line-1", "Hello! It ships today.")
    assert (second.id, second.reply) == ("x", None)
    with pytest.raises(DatasetError, match="line 1: message"):
        load_voice(_write(tmp_path, {"reply": "no message"}))
