"""Ticket triage: one ticket in, a schema-valid triage object out (or a clear error).

The output schema is the `TicketTriage` pydantic model; clients can use the same model with the
`openai` client's `parse` helper against /v1/chat/completions. The prompt lives in
`service/data/triage_prompt.json`.
"""

from __future__ import annotations

import asyncio
import json
import time
from functools import cached_property
from pathlib import Path
from string import Template
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.api.protocol import (
    ChatCompletionRequest,
    ChatMessage,
    ErrorDetail,
    JsonSchemaSpec,
    ResponseFormat,
)
from service.completions import CompletionService, GenerationResult
from service.errors import ServiceError, UpstreamGenerationError

PROMPT_FILE = Path(__file__).parent / "data" / "triage_prompt.json"

Category = Literal["billing", "technical", "account", "shipping", "returns", "general"]
Priority = Literal["low", "medium", "high", "urgent"]


class TicketTriage(BaseModel):
    """The triage of one ticket (the published output schema)."""

    model_config = ConfigDict(extra="forbid", title="TicketTriage")

    category: Category
    priority: Priority
    summary: str = Field(min_length=1, max_length=200)
    suggested_action: str = Field(min_length=1, max_length=200)


class Ticket(BaseModel):
    subject: str = Field(max_length=1000)
    body: str = Field(min_length=1, max_length=20000)
    customer_tier: str | None = Field(None, max_length=100)
    channel: str | None = Field(None, max_length=100)
    metadata: dict[str, str | int | float | bool | None] | None = None


class TriageRequest(Ticket):
    model: str | None = Field(None, description="Base model, adapter or route; default: the base model.")
    max_tokens: int | None = Field(None, ge=32, description="Token budget for the first attempt.")


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


class BatchTriageRequest(BaseModel):
    tickets: list[Ticket] = Field(min_length=1)
    model: str | None = None


class BatchItem(BaseModel):
    index: int
    triage: TicketTriage | None = None
    meta: TriageMeta | None = None
    error: ErrorDetail | None = None


class BatchTriageResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchItem]


class TriagePrompt(BaseModel):
    system: str
    user: str

    @classmethod
    def load(cls, path: Path = PROMPT_FILE) -> TriagePrompt:
        return cls.model_validate_json(path.read_text())

    def messages(self, ticket: Ticket) -> list[ChatMessage]:
        metadata = "".join(f"{key}: {value}\n" for key, value in (ticket.metadata or {}).items())
        # safe_substitute: `$` in a ticket is data, never a template field.
        user = Template(self.user).safe_substitute(
            subject=ticket.subject or "(none)", body=ticket.body,
            customer_tier=ticket.customer_tier or "unknown", channel=ticket.channel or "unknown",
            metadata=f"Metadata:\n{metadata}" if metadata else "",
        )
        return [ChatMessage(role="system", content=self.system), ChatMessage(role="user", content=user)]


class TriageService:
    def __init__(self, completions: CompletionService, base_model: str, prompt: TriagePrompt | None = None,
                 default_max_tokens: int = 256, batch_concurrency: int = 8,
                 repetition_penalty: float = 1.15) -> None:
        self.completions = completions
        self.base_model = base_model
        self.prompt = prompt or TriagePrompt.load()
        self.default_max_tokens = default_max_tokens
        self.repetition_penalty = repetition_penalty
        self._batch_slots = asyncio.Semaphore(batch_concurrency)

    @cached_property
    def schema(self) -> dict:
        return TicketTriage.model_json_schema()

    async def triage(self, ticket: Ticket, model: str | None = None, max_tokens: int | None = None) -> TriageResponse:
        started = time.monotonic()
        budget = max_tokens or self.default_max_tokens
        # Room for the retry's doubled budget is kept from the start.
        ticket, shortened = self._fit(ticket, 2 * budget)
        # A reply cut off by the token budget gets one more try with twice the budget.
        for attempt in (1, 2):
            result = await self._generate(ticket, model or self.base_model, budget)
            triage = _parse(result)
            if triage is not None:
                meta = _meta(result, started, attempt)
                meta.input_truncated = shortened
                return TriageResponse(triage=triage, meta=meta)
            budget *= 2
        raise UpstreamGenerationError(
            f"The model did not produce a complete, schema-valid triage within {budget // 2} tokens "
            f"(two attempts); the ticket may be too long for this model."
        )

    def _fit(self, ticket: Ticket, reply_budget: int) -> tuple[Ticket, bool]:
        """Shorten an over-long body (keeping its start and end) so prompt and reply fit the
        context; a ticket is still triaged from what it says first and last."""
        limit = self.completions.limits.max_model_len - reply_budget
        for _ in range(4):
            used = self.completions.count_chat_tokens(self.prompt.messages(ticket))
            if used <= limit:
                return ticket, _ != 0
            body = ticket.body
            keep = max(200, int(len(body) * (1 - (used - limit) / max(used, 1)) * 0.9))
            if keep >= len(body):
                keep = len(body) // 2
            head, tail = body[: keep * 2 // 3], body[len(body) - keep // 3:]
            ticket = ticket.model_copy(update={"body": f"{head}\n[...]\n{tail}"})
        return ticket, True

    async def triage_batch(self, request: BatchTriageRequest) -> BatchTriageResponse:
        async def one(index: int, ticket: Ticket) -> BatchItem:
            async with self._batch_slots:
                try:
                    result = await self.triage(ticket, request.model)
                except ServiceError as exc:
                    return BatchItem(index=index, error=ErrorDetail.of(exc))
                return BatchItem(index=index, triage=result.triage, meta=result.meta)

        items = await asyncio.gather(*(one(i, t) for i, t in enumerate(request.tickets)))
        return BatchTriageResponse(data=list(items))

    async def _generate(self, ticket: Ticket, model: str, max_tokens: int) -> GenerationResult:
        request = ChatCompletionRequest(
            model=model,
            messages=self.prompt.messages(ticket),
            max_tokens=max_tokens,
            temperature=0,
            # Small models loop on repeated phrases inside long strings; this keeps replies short.
            repetition_penalty=self.repetition_penalty,
            response_format=ResponseFormat(
                type="json_schema",
                json_schema=JsonSchemaSpec(name="TicketTriage", schema=self.schema, strict=True),
            ),
        )
        prepared = await self.completions.prepare_chat(request, endpoint="triage")
        try:
            return await self.completions.run(prepared)
        finally:
            prepared.release()


def _parse(result: GenerationResult) -> TicketTriage | None:
    if result.structured_result != "valid":
        return None
    try:
        return TicketTriage.model_validate(json.loads(result.choices[0].text))
    except (ValueError, ValidationError):
        return None


def _meta(result: GenerationResult, started: float, attempts: int) -> TriageMeta:
    target = result.target
    return TriageMeta(
        model=target.model, base_model=target.base_model,
        adapter_version=target.adapter.version if target.adapter else None,
        route=target.route, variant=target.variant,
        latency_ms=round((time.monotonic() - started) * 1000, 1),
        prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
        attempts=attempts, structured_backend=result.structured_backend,
    )
