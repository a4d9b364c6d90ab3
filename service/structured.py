"""Structured output: turn a request's response_format (or vLLM-style extras) into an engine
constraint, and check decoded replies against it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from service.api.protocol import SamplingFields
from service.engine import StructuredConstraint
from service.errors import InvalidRequestError


class StructuredRequest(BaseModel):
    constraint: StructuredConstraint
    schema_: dict[str, Any] | None = None  # for post-decoding validation
    strict: bool = False
    param: str = "response_format"


def structured_request_from(request: SamplingFields) -> StructuredRequest | None:
    """At most one constraint per request, from whichever field the client used."""
    found: list[StructuredRequest] = []
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_object":
        found.append(StructuredRequest(constraint=StructuredConstraint(json_object=True)))
    elif fmt is not None and fmt.type == "json_schema" and fmt.json_schema is not None:
        schema = fmt.json_schema.schema_ or {}
        found.append(StructuredRequest(
            constraint=StructuredConstraint(json_schema=schema), schema_=schema,
            strict=bool(fmt.json_schema.strict),
        ))
    extras = dict(request.structured_outputs or {})
    for key, value in (("json", request.guided_json), ("regex", request.guided_regex),
                       ("choice", request.guided_choice), ("grammar", request.guided_grammar)):
        if value is not None:
            extras[key] = value
    unknown = set(extras) - {"json", "regex", "choice", "grammar", "json_object"}
    if unknown:
        raise InvalidRequestError(
            f"Unknown structured_outputs field(s): {', '.join(sorted(unknown))}.", param="structured_outputs"
        )
    for key, value in extras.items():
        found.append(_from_extra(key, value))
    if len(found) > 1:
        raise InvalidRequestError(
            "Use only one structured-output constraint per request (response_format, json, regex, "
            "choice or grammar).", param="response_format",
        )
    return found[0] if found else None


def _from_extra(key: str, value: Any) -> StructuredRequest:
    param = f"structured_outputs.{key}"
    if key == "json":
        if not isinstance(value, dict):
            raise InvalidRequestError("The JSON schema must be a JSON object.", param=param)
        return StructuredRequest(constraint=StructuredConstraint(json_schema=value), schema_=value, param=param)
    if key == "json_object":
        return StructuredRequest(constraint=StructuredConstraint(json_object=bool(value)), param=param)
    if key == "choice":
        if not isinstance(value, list) or not value or not all(isinstance(c, str) for c in value):
            raise InvalidRequestError("choice must be a non-empty list of strings.", param=param)
        return StructuredRequest(constraint=StructuredConstraint(choice=value), param=param)
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequestError(f"{key} must be a non-empty string.", param=param)
    if key == "regex":
        return StructuredRequest(constraint=StructuredConstraint(regex=value), param=param)
    return StructuredRequest(constraint=StructuredConstraint(grammar=value), param=param)
