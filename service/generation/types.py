"""The generation service's own request and result types: endpoint-neutral, no HTTP shapes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from service.adapters import NO_LEASE, Lease
from service.engine.types import FinishReason, SamplingExtras, SamplingOptions, TokenLogprob
from service.routing import ServingTarget
from service.structured import DecodingAttempt, StructuredRequest, ValidationResult


class PromptMessage(BaseModel):
    """One chat turn as the chat template sees it (roles already mapped to the template's)."""

    role: str
    content: str


class GenerationRequest(BaseModel):
    """What any endpoint (chat, completions, tasks) asks the generation service for.

    Exactly one of `messages` (rendered with the model's chat template) and `prompt` (raw text).
    Unset sampling fields take the engine's defaults.
    """

    model: str
    endpoint: str = "chat"  # metric label
    messages: list[PromptMessage] | None = None
    prompt: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: int = 1
    seed: int | None = None
    stop: list[str] = Field(default_factory=list)
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    repetition_penalty: float | None = None
    min_tokens: int = 0
    ignore_eos: bool = False
    extras: SamplingExtras = Field(default_factory=SamplingExtras)
    structured: StructuredRequest | None = None
    # A structured reply cut off by max_tokens is retried once with this budget (tasks use it).
    retry_truncated_max_tokens: int | None = None
    echo: bool = False  # completions: return the prompt before the completion
    route_key: str | None = None  # keeps a client on one variant of an A/B route
    # Fields of a valid structured reply that route reports break down (triage: category, priority).
    outcome_fields: tuple[str, ...] = ()


class GenerationSettings(BaseModel):
    """`Settings.generation`: what one request may ask for."""

    max_tokens_limit: int = Field(
        1024, ge=1, description="Largest `max_tokens` a request may ask for; also the default."
    )
    max_n: int = Field(4, ge=1, description="Largest `n` (choices per request).")


class GenerationLimits(GenerationSettings):
    """The generation settings and the engine's context length (`Settings.engine.max_model_len`)."""

    max_model_len: int


@dataclass
class PreparedGeneration:
    """A request that passed every check: ready for the engine."""

    endpoint: str
    target: ServingTarget
    prompt_token_ids: list[int]
    sampling: SamplingOptions
    structured: StructuredRequest | None
    lease: Lease = NO_LEASE
    echo_text: str = ""
    shadow: PreparedGeneration | None = None  # the mirror of this request (routes with a shadow)
    is_shadow: bool = False
    outcome_fields: tuple[str, ...] = ()
    priority: int = 0  # engine priority: lower numbers first
    retry_truncated_max_tokens: int | None = None
    structured_verdict: ValidationResult | None = None  # a structured stream's, once it has ended

    def release(self) -> None:
        """Release this request's adapter lease, and its shadow's if the shadow never ran."""
        self.lease.release()
        if self.shadow is not None:
            self.shadow.release()

    def sampling_for(self, attempt: DecodingAttempt | None, max_tokens: int | None = None) -> SamplingOptions:
        sampling = self.sampling if max_tokens is None else self.sampling.model_copy(update={"max_tokens": max_tokens})
        if attempt is None or sampling.structured is None:
            return sampling
        update: dict[str, Any] = {"backend": attempt.backend}
        if attempt.relaxed_schema is not None:
            update["json_schema"] = attempt.relaxed_schema
        constraint = sampling.structured.model_copy(update=update)
        return sampling.model_copy(update={"structured": constraint})


@dataclass
class ChoiceResult:
    index: int
    text: str = ""
    token_count: int = 0
    finish_reason: FinishReason | None = None
    logprobs: list[TokenLogprob] | None = None


@dataclass
class GenerationResult:
    target: ServingTarget
    choices: list[ChoiceResult]
    prompt_tokens: int
    completion_tokens: int  # of the returned choices
    duration_seconds: float
    time_to_first_token_seconds: float | None
    structured_result: ValidationResult | None = None
    structured_backend: str | None = None
    attempts: int = 1  # engine attempts behind this reply (backend fallbacks, truncation retries)
