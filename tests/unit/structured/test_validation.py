"""Why a reply breaks its JSON constraint: the reason a strict 502 gives the client."""

from __future__ import annotations

from service.structured import StructuredConstraint, StructuredRequest, first_violation, validate_output

SCHEMA = {"type": "object", "properties": {"tag": {"enum": ["a", "b"]}}, "required": ["tag"]}


def request(kind: str = "json_schema") -> StructuredRequest:
    constraint = StructuredConstraint(json_schema=SCHEMA) if kind == "json_schema" else StructuredConstraint(regex="x+")
    return StructuredRequest(constraint=constraint, kind=kind, schema_=SCHEMA if kind == "json_schema" else None)  # type: ignore[arg-type]


def test_the_first_broken_reply_names_the_rule_and_where() -> None:
    assert first_violation(request(), ['{"tag": "a"}', '{"tag": "c"}']) == "'c' is not one of ['a', 'b'] at $.tag"


def test_a_reply_that_is_not_json_says_so() -> None:
    reason = first_violation(request(), ['{"tag": '])
    assert reason is not None and reason.startswith("not JSON: Expecting value")


def test_a_long_quoted_value_is_cut() -> None:
    reason = first_violation(request(), ['{"tag": "' + "z" * 1000 + '"}'])
    assert reason is not None and len(reason) < 230 and "..." in reason


def test_valid_replies_and_other_constraints_give_none() -> None:
    assert first_violation(request(), ['{"tag": "b"}']) is None
    assert first_violation(request("regex"), ["y"]) is None


def test_a_schema_the_validator_cannot_apply_is_a_reason_not_a_crash() -> None:
    schema = {"$ref": "#/$defs/missing"}
    unresolvable = StructuredRequest(constraint=StructuredConstraint(json_schema=schema), kind="json_schema", schema_=schema)
    assert validate_output(unresolvable, "{}", "stop") == "invalid"
    reason = first_violation(unresolvable, ["{}"])
    assert reason is not None and reason.startswith("the schema could not be applied") and "missing" in reason
