"""The triage task's published types: the ticket in, the triage out (and how it was produced).

`TicketTriage` is the output schema; clients can use the same model with the `openai` client's
`parse` helper against /v1/chat/completions.
"""

from __future__ import annotations

import json
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.adapters.validation import LabelTemperatures, TriageThresholds

Category = Literal["billing", "technical", "account", "shipping", "returns", "general"]
Priority = Literal["low", "medium", "high", "urgent"]
CATEGORIES: tuple[str, ...] = get_args(Category)
PRIORITIES: tuple[str, ...] = get_args(Priority)
ReviewReason = Literal["low_category_confidence", "low_priority_confidence", "input_truncated",
                       "probabilities_unavailable"]


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
    model_config = ConfigDict(extra="forbid")  # a misspelt field is a 400, not silently dropped

    subject: str = Field(max_length=1000)
    body: str = Field(min_length=1, max_length=20000)
    customer_tier: str | None = Field(None, max_length=100)
    channel: str | None = Field(None, max_length=100)
    metadata: dict[str, str | int | float | bool | None] | None = None


class LabelProbabilities(BaseModel):
    """The model's probability of every allowed label, read where the reply wrote the label and
    renormalised over the labels (then calibrated by the policy's temperature)."""

    category: dict[str, float]
    priority: dict[str, float]


class LabelConfidence(BaseModel):
    """The probability of the label returned for each field."""

    category: float
    priority: float


class TriagePolicy(BaseModel):
    """The policy in force for one reply (every threshold set); it is returned in `meta.policy`."""

    urgent_threshold: float = Field(ge=0.0, le=1.0)
    review_threshold: float = Field(ge=0.0, le=1.0)
    priority_review_threshold: float = Field(0.0, ge=0.0, le=1.0)
    temperature: LabelTemperatures = Field(default_factory=LabelTemperatures)

    def overridden(self, override: TriageThresholds | None) -> TriagePolicy:
        """This policy with the thresholds (and, from an adapter's file, temperatures) `override` sets."""
        if override is None:
            return self
        fields = override.model_dump(exclude_unset=True, exclude_none=True, exclude={"calibrated_on"})
        return TriagePolicy.model_validate(self.model_dump() | fields)


class TriageMeta(BaseModel):
    model: str
    base_model: str
    adapter_version: int | None
    route: str
    variant: str
    latency_ms: float
    prompt_tokens: int
    completion_tokens: int
    cached_prompt_tokens: int | None = Field(None, description="Prompt tokens read from the prefix cache (the "
                                             "shared instructions of the triage prompt); None: not reported.")
    attempts: int
    structured_backend: str | None
    input_truncated: bool = False  # the body was shortened to fit the model's context
    confidence: LabelConfidence | None = None  # None: probabilities were not asked for or not readable
    probabilities: LabelProbabilities | None = None
    needs_review: bool | None = Field(None, description="A person should check this triage (None: not assessed, "
                                      "the request turned probabilities off).")
    review_reasons: list[ReviewReason] = Field(default_factory=list)
    policy: TriagePolicy | None = Field(None, description="The decision policy applied (thresholds, temperatures).")


class TriageResponse(BaseModel):
    triage: TicketTriage
    meta: TriageMeta
