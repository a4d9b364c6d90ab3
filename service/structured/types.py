"""What a structured request is, and the verdicts a decoded reply can get."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from service.engine.types import StructuredConstraint, StructuredOutputBackend

ValidationResult = Literal["valid", "invalid", "truncated", "unchecked"]
StructuredKind = Literal["json_schema", "json_object", "regex", "choice", "grammar"]


class StructuredRequest(BaseModel):
    constraint: StructuredConstraint
    kind: StructuredKind
    schema_: dict[str, Any] | None = None  # for post-decoding validation
    strict: bool = False
    param: str = "response_format"


class StructuredLimits(BaseModel):
    """What the guard accepts, and its constraint-compiling workers."""

    max_schema_bytes: int = Field(64 * 1024, ge=1, description="Largest JSON schema accepted (bytes).")
    max_depth: int = Field(32, ge=1, description="Deepest JSON schema nesting accepted.")
    max_enum_values: int = Field(1024, ge=1, description="Most values in one schema enum.")
    max_properties: int = Field(512, ge=1, description="Most properties declared in one schema.")
    max_regex_length: int = Field(2048, ge=1, description="Longest regex constraint accepted.")
    max_grammar_bytes: int = Field(64 * 1024, ge=1, description="Largest EBNF grammar accepted (bytes).")
    max_choices: int = Field(256, ge=1, description="Most alternatives in one choice constraint (`guided_choice`).")
    compile_timeout_s: float = Field(
        5.0, gt=0, description="A constraint that takes longer to compile is refused (400)."
    )
    compile_workers: int = Field(2, ge=1, description="Worker processes trial-compiling constraints at once.")
    compile_wait_s: float = Field(
        5.0, ge=0, description="Longest wait for a free constraint worker; then 503 with Retry-After."
    )
    compile_max_waiting: int = Field(
        32, ge=0, description="Requests that may wait for a constraint worker; more get 503 with Retry-After."
    )
    cache_entries: int = Field(1024, ge=1, description="Constraint verdicts remembered (passes, and refusals), each.")


class StructuredSettings(StructuredLimits):
    """`Settings.structured`: the guard's limits (passed to `StructuredGuard` as they are) and the
    backends tried after the engine's default one."""

    fallback_backends: list[StructuredOutputBackend] = Field(
        default_factory=lambda: ["guidance"],
        description="Backends tried, in order, when the default cannot compile a constraint or its "
        "output fails validation. outlines builds a full automaton per schema: costly on the CPU.",
    )
