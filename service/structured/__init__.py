"""Structured output: constraint types, the guard, reply validation and the fallback policy."""

from service.engine.types import STRUCTURED_OUTPUT_BACKENDS, StructuredConstraint
from service.structured.guard import StructuredGuard
from service.structured.policy import DecodingAttempt, StructuredPolicy
from service.structured.relaxation import relaxed_schema
from service.structured.types import (
    StructuredKind,
    StructuredLimits,
    StructuredRequest,
    StructuredSettings,
    ValidationResult,
)
from service.structured.validation import checked_output, combined_verdict, first_violation, validate_output

__all__ = [
    "STRUCTURED_OUTPUT_BACKENDS", "DecodingAttempt", "StructuredConstraint", "StructuredGuard", "StructuredKind",
    "StructuredLimits", "StructuredPolicy", "StructuredRequest", "StructuredSettings", "ValidationResult",
    "checked_output", "combined_verdict", "first_violation", "relaxed_schema", "validate_output",
]
