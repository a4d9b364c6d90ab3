"""The generation service's own request and result types: endpoint-neutral, no HTTP shapes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, model_validator

from service.engine.types import FinishReason, SamplingOptions, TokenLogprob
from service.routing import ServingTarget
from service.structured import DecodingAttempt, StructuredRequest, ValidationResult


class PromptMessage(BaseModel):
    """One chat turn as the chat template sees it (roles already mapped to the template's)."""

    role: str
    content: str


class GenerationRequest(BaseModel):
    """What any endpoint (chat, completions, tasks) asks the generation service for.

    Exactly one prompt form: `messages` (rendered with the model's chat template), `prompt` (raw
    text) or `prompt_token_ids` (already rendered by the caller, e.g. a task that fitted it to the
    context). `sampling.max_tokens` unset: what the context leaves, up to the server's limit.
    """

    model: str
    endpoint: str = "chat"  # metric label
    messages: list[PromptMessage] | None = None
    prompt: str | None = None
    prompt_token_ids: list[int] | None = None
    sampling: SamplingOptions = Field(default_factory=SamplingOptions)
    structured: StructuredRequest | None = None
    # A structured reply cut off by max_tokens is retried once with this budget (tasks use it).
    retry_truncated_max_tokens: int | None = None
    echo: bool = False  # completions: return the prompt before the completion
    route_key: str | None = None  # keeps a client on one variant of an A/B route
    # Salts the prefix-cache keys: requests with different salts never share cached blocks.
    cache_salt: str | None = Field(None, min_length=1)
    # What the task does with the result of this request's shadow (a route that mirrors): a shadow's
    # reply reaches no client, but the task's decision on it is recorded for route reports.
    shadow_outcome: Callable[[Any], Awaitable[None]] | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _one_prompt(self) -> GenerationRequest:
        forms = [form for form in (self.messages, self.prompt, self.prompt_token_ids) if form is not None]
        if len(forms) > 1:
            raise ValueError("give one of messages, prompt and prompt_token_ids")
        return self


class GenerationSettings(BaseModel):
    """`Settings.generation`: what one request may ask for."""

    max_tokens_limit: int = Field(
        1024, ge=1, description="Largest `max_tokens` a request may ask for; also the default."
    )
    max_n: int = Field(4, ge=1, description="Largest `n` (choices per request).")


class GenerationLimits(GenerationSettings):
    """The generation settings and the engine's context length (`Settings.engine.max_model_len`)."""

    max_model_len: int


@dataclass(frozen=True)
class PreparedGeneration:
    """A request that passed every check, as the engine will run it (a value: nothing to release)."""

    endpoint: str
    target: ServingTarget
    prompt_token_ids: list[int]
    sampling: SamplingOptions  # max_tokens decided, the constraint of the first attempt set
    structured: StructuredRequest | None
    retry_truncated_max_tokens: int | None = None
    echo_text: str = ""
    is_shadow: bool = False
    priority: int = 0  # engine priority: lower numbers first
    cache_salt: str | None = None  # the request's prefix-cache salt (its shadow keeps it)

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
    structured_output: ValidationResult | None = None  # the verdict on a structured reply
    structured_value: Any = None  # the first choice's parsed JSON, when it is valid JSON output
    structured_backend: str | None = None
    attempts: int = 1  # engine attempts behind this reply (backend fallbacks, truncation retries)
    cached_prompt_tokens: int | None = None  # of this reply's attempt: prompt tokens read from the prefix cache
