"""The relaxed schema a grammar backend gets when it cannot take the full one."""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.structured import relaxed_schema
from service.structured.validation import _validator


def test_a_schema_with_nothing_to_relax_gives_none() -> None:
    assert relaxed_schema({"type": "object", "properties": {"a": {"type": "string", "pattern": "^x"}}}) is None


def test_unexpressible_keywords_are_dropped_everywhere_but_names_are_kept() -> None:
    schema = {"type": "object", "properties": {
        "not": {"type": "array", "uniqueItems": True, "items": {"type": "integer", "multipleOf": 3}},
    }, "$defs": {"if": {"not": {"type": "null"}}}}
    assert relaxed_schema(schema) == {"type": "object", "properties": {
        "not": {"type": "array", "items": {"type": "integer"}},
    }, "$defs": {"if": {}}}


def test_one_of_is_widened_to_any_of() -> None:
    schema = {"oneOf": [{"type": "string"}, {"type": "object", "properties": {"x": {"oneOf": [{"const": 1}]}}}]}
    assert relaxed_schema(schema) == {"anyOf": [{"type": "string"},
                                                {"type": "object", "properties": {"x": {"anyOf": [{"const": 1}]}}}]}


@pytest.mark.parametrize("order", ["oneOf first", "anyOf first"])
def test_one_of_beside_any_of_and_all_of_keeps_every_condition(order: str) -> None:
    parts: list[tuple[str, Any]] = [("oneOf", [{"minimum": 0}, {"maximum": 10}]), ("anyOf", [{"type": "integer"}]),
                                    ("allOf", [{"not": {"const": 5}}, {"type": "number"}])]
    schema = dict(parts if order == "oneOf first" else parts[::-1])
    assert relaxed_schema(schema) == {"anyOf": [{"type": "integer"}],
                                      "allOf": [{}, {"type": "number"}, {"anyOf": [{"minimum": 0}, {"maximum": 10}]}]}


def test_the_reply_is_still_validated_against_one_of() -> None:
    """A value both branches accept passes the relaxed schema but not the full one."""
    schema = {"oneOf": [{"type": "integer"}, {"type": "number", "minimum": 0}]}
    relaxed = relaxed_schema(schema)
    assert relaxed is not None
    assert _validator(json.dumps(relaxed)).is_valid(3)
    assert not _validator(json.dumps(schema)).is_valid(3)
    assert _validator(json.dumps(schema)).is_valid(-3)
