"""Fallback policy: which backends a structured request tries, in order, with which schema."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from service.engine.types import StructuredConstraint
from service.errors import InvalidRequestError
from service.structured.relaxation import relaxed_for_backend, relaxed_schema


@dataclass(frozen=True)
class DecodingAttempt:
    """One way to decode a structured request: a backend, with the full or a relaxed schema."""

    backend: str
    relaxed_schema: dict[str, Any] | None = None

    def __str__(self) -> str:
        return f"{self.backend} (relaxed schema)" if self.relaxed_schema is not None else self.backend


class StructuredPolicy(BaseModel):
    default_backend: str = "xgrammar"
    fallback_backends: list[str] = ["guidance"]
    per_request_backends: bool = True  # False without loragate's vLLM plugin: one backend per engine

    def chain(self, requested: str | None = None) -> list[str]:
        if requested not in (None, self.default_backend) and not self.per_request_backends:
            raise InvalidRequestError(
                f"This server runs one structured-output backend ({self.default_backend}); "
                f"'{requested}' cannot be chosen per request.", param="structured_outputs.backend",
            )
        first = requested or self.default_backend
        return [first] + [b for b in self.fallback_backends if b != first]

    def attempts(self, constraint: StructuredConstraint) -> list[DecodingAttempt]:
        """Every backend with the full schema, then (if it has keywords grammars cannot express)
        every backend with the relaxed schema; replies are still validated against the full one."""
        chain = self.chain(constraint.backend)
        attempts = [DecodingAttempt(backend) for backend in chain]
        relaxed = relaxed_schema(constraint.json_schema) if constraint.json_schema is not None else None
        if relaxed is not None:
            attempts += [DecodingAttempt(backend, relaxed_for_backend(relaxed, backend)) for backend in chain]
        return attempts
