"""Every regex a JSON schema holds gets the checks a regex constraint gets: nested unbounded
repeats such as `(a+)+$` explode a backend's automaton and make the reply validator backtrack."""

from __future__ import annotations

from typing import Any

import pytest

from service.errors import InvalidRequestError
from service.structured import StructuredLimits
from service.structured.schema_checks import check_schema
from tests.unit.structured.fakes import FakeCompiler, regex_request, schema_request

pytestmark = pytest.mark.anyio

BAD = "(a+)+$"
STRING = {"type": "string", "pattern": BAD}

REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"type": "object", "properties": {"name": STRING}}, "properties/name/pattern"),
    ({"type": "array", "items": STRING}, "items/pattern"),
    ({"type": "object", "patternProperties": {BAD: {"type": "string"}}}, f"patternProperties/{BAD}"),
    ({"type": "object", "propertyNames": {"pattern": BAD}}, "propertyNames/pattern"),
    ({"type": "array", "prefixItems": [{"type": "integer"}, STRING]}, "prefixItems/1/pattern"),
    ({"anyOf": [{"type": "integer"}, STRING]}, "anyOf/1/pattern"),
    ({"type": "object", "additionalProperties": STRING}, "additionalProperties/pattern"),
    ({"type": "object", "properties": {"a": {"$ref": "#/$defs/s"}}, "$defs": {"s": STRING}}, "$defs/s/pattern"),
    ({"$schema": "http://json-schema.org/draft-07/schema#", "definitions": {"s": STRING},
      "items": [{"$ref": "#/definitions/s"}]}, "definitions/s/pattern"),
    ({"type": "object", "properties": {"deep": {"type": "object", "properties": {"list": {
        "type": "array", "items": {"oneOf": [{"type": "null"}, {"type": "string", "pattern": "^(\\d*)*x$"}]}}}}}},
     "properties/deep/properties/list/items/oneOf/1/pattern"),
    ({"$ref": "#/x-library/s", "x-library": {"s": STRING}}, "#/x-library/s/pattern"),  # reached only by $ref
]


@pytest.mark.parametrize(("schema", "where"), REFUSED, ids=[where for _, where in REFUSED])
def test_a_hazardous_regex_anywhere_in_a_schema_is_refused(schema: dict[str, Any], where: str) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        check_schema(schema, StructuredLimits(), "response_format")
    assert refused.value.code == "invalid_regex"
    assert refused.value.param == "response_format"
    assert where in refused.value.message and "nested unbounded repetition" in refused.value.message


@pytest.mark.parametrize(("schema", "where"), REFUSED[:4], ids=[where for _, where in REFUSED[:4]])
async def test_the_guard_refuses_it_before_any_trial_conversion(make_guard: Any, compiler: FakeCompiler,
                                                               schema: dict[str, Any], where: str) -> None:
    guard = make_guard()
    with pytest.raises(InvalidRequestError) as refused:
        await guard.check(schema_request(schema), ["xgrammar"])
    assert (refused.value.code, refused.value.param) == ("invalid_regex", "response_format")
    assert where in refused.value.message
    assert compiler.calls == []


def test_a_schema_regex_longer_than_the_limit_is_refused() -> None:
    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": "[A-Z]" * 20}}}
    with pytest.raises(InvalidRequestError) as refused:
        check_schema(schema, StructuredLimits(max_regex_length=50), "response_format")
    assert refused.value.code == "regex_too_large"
    assert "properties/code/pattern" in refused.value.message


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"pattern": {"type": "string"}}, "required": ["pattern"]},  # a property's name
    {"type": "object", "properties": {"code": {"type": "string", "pattern": "^[A-Z]{3}-\\d{1,4}$"}}},
    {"type": "object", "patternProperties": {"^x-[a-z]+$": {"type": "integer"}}},
    {"enum": [{"pattern": BAD}]},  # data, not a schema
    {"type": "object", "const": {"pattern": BAD}, "default": {"pattern": BAD}, "examples": [{"pattern": BAD}]},
], ids=["property-named-pattern", "safe-pattern", "safe-pattern-properties", "enum-data", "const-default-data"])
def test_regex_like_data_and_safe_patterns_are_accepted(schema: dict[str, Any]) -> None:
    check_schema(schema, StructuredLimits(), "response_format")


async def test_the_requests_own_regex_is_still_checked(make_guard: Any, compiler: FakeCompiler) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        await make_guard().check(regex_request(BAD))
    assert (refused.value.code, refused.value.param) == ("invalid_regex", "structured_outputs")
    assert compiler.calls == []
