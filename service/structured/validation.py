"""Check a decoded reply against its constraint, independently of the backend that produced it."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import jsonschema
import referencing.exceptions

from service.structured import linear_regex
from service.structured.types import StructuredRequest, ValidationResult

_MAX_REASON = 200  # a violation's message quotes the reply: long values are cut
# A $ref the validator cannot follow, or a schema recursing too deep: the reply is not valid.
_UNRESOLVABLE = (referencing.exceptions.Unresolvable, RecursionError)


def validate_output(request: StructuredRequest, text: str, finish_reason: str | None) -> ValidationResult:
    """Check one decoded reply against its constraint."""
    return checked_output(request, text, finish_reason)[0]


def checked_output(request: StructuredRequest, text: str, finish_reason: str | None) -> tuple[ValidationResult, Any]:
    """The verdict on one decoded reply and, for a JSON constraint, its parsed value (None
    otherwise), so that nobody downstream parses the reply again."""
    if finish_reason == "length":
        return "truncated", None
    kind = request.kind
    if kind in ("json_schema", "json_object"):
        try:
            value = json.loads(text)
        except ValueError:
            return "invalid", None
        if kind == "json_object":
            return ("valid" if isinstance(value, dict) else "invalid"), value
        try:
            return ("valid" if _schema_validator(request).is_valid(value) else "invalid"), value
        except _UNRESOLVABLE:
            return "invalid", value
    if kind == "choice":
        return ("valid" if text in (request.constraint.choice or []) else "invalid"), None
    if kind == "regex":
        try:
            return ("valid" if linear_regex.fullmatch(request.constraint.regex or "", text) else "invalid"), None
        except linear_regex.LinearRegexError:  # the guard compiles every regex it admits: not expected
            return "unchecked", None
    return "unchecked", None  # EBNF grammars: the engine enforces them; there is no independent checker here


def _schema_validator(request: StructuredRequest) -> Any:
    return _validator(json.dumps(request.schema_ or {}, sort_keys=True))


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> Any:
    """One compiled validator per distinct schema (keyed by its canonical JSON): every triage
    reply is checked against the same schema, and building a validator costs more than using it."""
    schema = json.loads(schema_json)
    validator_class = _linear_patterns(jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator))
    return validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)


@lru_cache(maxsize=None)
def _linear_patterns(validator_class: Any) -> Any:
    """`validator_class` with `pattern` and `patternProperties` matched by RE2 instead of Python's
    backtracking `re` (the patterns come from the client). jsonschema's own additionalProperties
    bookkeeping still uses `re` on property names, which the guard's regex analysis covers."""

    def pattern(validator: Any, regex: str, instance: Any, schema: Any) -> Any:
        if validator.is_type(instance, "string") and not _search(regex, instance):
            yield jsonschema.ValidationError(f"{instance!r} does not match {regex!r}")

    def pattern_properties(validator: Any, patterns: dict[str, Any], instance: Any, schema: Any) -> Any:
        if not validator.is_type(instance, "object"):
            return
        for regex, subschema in patterns.items():
            for name, value in instance.items():
                if _search(regex, name):
                    yield from validator.descend(value, subschema, path=name, schema_path=regex)

    return jsonschema.validators.extend(validator_class, {"pattern": pattern, "patternProperties": pattern_properties})


def _search(regex: str, text: str) -> bool:
    try:
        return linear_regex.search(regex, text)
    except linear_regex.LinearRegexError:  # the guard compiles every regex it admits: not expected
        return False


def first_violation(request: StructuredRequest, texts: Iterable[str]) -> str | None:
    """Why the first reply that breaks a JSON constraint does (for the client's 502), or None."""
    if request.kind not in ("json_schema", "json_object"):
        return None
    for text in texts:
        try:
            value = json.loads(text)
        except ValueError as exc:
            return f"not JSON: {exc}"
        if request.kind == "json_object" and not isinstance(value, dict):
            return "not a JSON object"
        if request.kind == "json_schema":
            try:
                error = jsonschema.exceptions.best_match(_schema_validator(request).iter_errors(value))
            except _UNRESOLVABLE as exc:
                return f"the schema could not be applied: {exc}"[:_MAX_REASON]
            if error is not None:
                message = error.message if len(error.message) <= _MAX_REASON else error.message[:_MAX_REASON] + "..."
                return f"{message} at {error.json_path}"
    return None


def combined_verdict(results: Iterable[ValidationResult]) -> ValidationResult:
    """One verdict for all choices: any invalid > any truncated > any unchecked > valid."""
    found = set(results)
    for verdict in ("invalid", "truncated", "unchecked"):
        if verdict in found:
            return verdict  # type: ignore[return-value]
    return "valid"
