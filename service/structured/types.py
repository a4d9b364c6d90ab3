"""What a structured request is, and the verdicts a decoded reply can get."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from service.engine.types import StructuredConstraint

ValidationResult = Literal["valid", "invalid", "truncated", "unchecked"]
StructuredKind = Literal["json_schema", "json_object", "regex", "choice", "grammar"]


class StructuredRequest(BaseModel):
    constraint: StructuredConstraint
    kind: StructuredKind
    schema_: dict[str, Any] | None = None  # for post-decoding validation
    strict: bool = False
    param: str = "response_format"


class StructuredLimits(BaseModel):
    max_schema_bytes: int = 64 * 1024
    max_depth: int = 32
    max_enum_values: int = 1024
    max_properties: int = 512
    max_regex_length: int = 2048
    max_grammar_bytes: int = 64 * 1024
    max_choices: int = 256
    compile_timeout_s: float = 5.0  # a trial conversion that takes longer is refused
    compile_workers: int = 2  # worker processes running trial conversions at once
    compile_wait_s: float = 5.0  # longest wait for a free worker before OverloadedError (503)
    compile_max_waiting: int = 32  # requests that may wait for a worker; more get OverloadedError
    cache_entries: int = 1024  # trial verdicts remembered, for passes and for refusals each
