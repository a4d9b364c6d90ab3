"""The relaxed schema a grammar backend gets when it cannot take the full one."""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.engine.types import StructuredConstraint
from service.structured import relaxed_schema
from service.structured.policy import StructuredPolicy
from service.structured.relaxation import relaxed_for_backend
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


def test_formats_no_grammar_backend_knows_are_dropped_and_known_ones_kept() -> None:
    schema = {"type": "object", "properties": {
        "link": {"type": "string", "format": "uri-reference"}, "at": {"type": "string", "format": "date-time"},
        "replicas": {"type": "integer", "format": "int32"}}}
    assert relaxed_schema(schema) == {"type": "object", "properties": {
        "link": {"type": "string"}, "at": {"type": "string", "format": "date-time"}, "replicas": {"type": "integer"}}}


def test_length_bounds_beside_a_pattern_or_format_are_dropped() -> None:
    schema = {"type": "object", "properties": {
        "code": {"type": "string", "pattern": "^[A-Z]+$", "minLength": 2, "maxLength": 8},
        "mail": {"type": "string", "format": "email", "maxLength": 254},
        "name": {"type": "string", "maxLength": 80}}}
    assert relaxed_schema(schema) == {"type": "object", "properties": {
        "code": {"type": "string", "pattern": "^[A-Z]+$"}, "mail": {"type": "string", "format": "email"},
        "name": {"type": "string", "maxLength": 80}}}


def test_guidance_is_told_to_skip_what_it_does_not_implement() -> None:
    relaxed = {"type": "object", "x-guidance": {"whitespace_flexible": False}}
    assert relaxed_for_backend(relaxed, "guidance") == {
        "type": "object", "x-guidance": {"whitespace_flexible": False, "lenient": True}}
    assert relaxed_for_backend(relaxed, "xgrammar") is relaxed
    assert relaxed_for_backend({"type": "object"}, "guidance")["x-guidance"] == {"lenient": True}


def test_the_policy_tries_every_backend_in_full_then_relaxed() -> None:
    constraint = StructuredConstraint(json_schema={"type": "array", "uniqueItems": True})
    attempts = StructuredPolicy().attempts(constraint)
    assert [str(attempt) for attempt in attempts] == [
        "xgrammar", "guidance", "xgrammar (relaxed schema)", "guidance (relaxed schema)"]
    assert attempts[2].relaxed_schema == {"type": "array"}
    assert attempts[3].relaxed_schema == {"type": "array", "x-guidance": {"lenient": True}}
    assert len(StructuredPolicy().attempts(StructuredConstraint(json_schema={"type": "array"}))) == 2
