"""The triage task's published types: the ticket in, the triage out (and how it was produced).

`TicketTriage` is the output schema; clients can use the same model with the `openai` client's
`parse` helper against /v1/chat/completions.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Category = Literal["billing", "technical", "account", "shipping", "returns", "general"]
Priority = Literal["low", "medium", "high", "urgent"]


class TicketTriage(BaseModel):
    """The triage of one ticket (the published output schema)."""

    model_config = ConfigDict(extra="forbid", title="TicketTriage")

    category: Category
    priority: Priority
    summary: str = Field(min_length=1, max_length=200)
    suggested_action: str = Field(min_length=1, max_length=200)


def parse_triage_reply(text: str) -> tuple[bool, TicketTriage | None]:
    """Whether an unconstrained reply is one JSON object (surrounding whitespace allowed), and its
    triage if that object is schema-valid: the parse and schema-valid rates of `loragate eval` and
    of a training run's model card."""
    try:
        value = json.loads(text.strip())
    except ValueError:
        return False, None
    if not isinstance(value, dict):
        return False, None
    try:
        return True, TicketTriage.model_validate(value)
    except ValidationError:
        return True, None


class Ticket(BaseModel):
    subject: str = Field(max_length=1000)
    body: str = Field(min_length=1, max_length=20000)
    customer_tier: str | None = Field(None, max_length=100)
    channel: str | None = Field(None, max_length=100)
    metadata: dict[str, str | int | float | bool | None] | None = None


class TriageMeta(BaseModel):
    model: str
    base_model: str
    adapter_version: int | None
    route: str
    variant: str
    latency_ms: float
    prompt_tokens: int
    completion_tokens: int
    attempts: int
    structured_backend: str | None
    input_truncated: bool = False  # the body was shortened to fit the model's context


class TriageResponse(BaseModel):
    triage: TicketTriage
    meta: TriageMeta
