"""Ticket triage: one ticket in, a schema-valid triage object out (or a clear error).

No HTTP here: the API layer hands in tickets and maps results and errors to its responses.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from functools import cached_property

from pydantic import ValidationError

from service.errors import EngineNotReadyError, ServiceError, UpstreamGenerationError
from service.generation import GenerationRequest, GenerationResult, GenerationService
from service.structured import StructuredConstraint, StructuredRequest
from service.tasks.triage.prompt import TriagePrompt
from service.tasks.triage.schema import Ticket, TicketTriage, TriageMeta, TriageResponse


# No penalty (1.0): decode as the adapters were trained. A penalty on tokens the prompt already holds
# (the system prompt lists every label) tips close label calls: through this endpoint ticket-triage v4
# picked the right priority for 58% of 60 validation tickets with 1.15 and 72% without. The schema's
# 200-character strings bound a looping reply. Evaluations of the unconstrained path send the same value.
REPETITION_PENALTY = 1.0


class TriageService:
    def __init__(self, generation: GenerationService, base_model: str, prompt: TriagePrompt | None = None,
                 default_max_tokens: int = 256, batch_concurrency: int = 8,
                 repetition_penalty: float = REPETITION_PENALTY) -> None:
        self.generation = generation
        self.base_model = base_model
        self.prompt = prompt or TriagePrompt.load()
        self.default_max_tokens = default_max_tokens
        self.repetition_penalty = repetition_penalty
        self.batch_concurrency = batch_concurrency  # tickets in flight per batch (each batch its own)

    @cached_property
    def schema(self) -> dict:
        return TicketTriage.model_json_schema()

    async def triage(self, ticket: Ticket, model: str | None = None, max_tokens: int | None = None,
                     route_key: str | None = None) -> TriageResponse:
        """Triage one ticket. `route_key` keeps a customer on one variant of an A/B route (default:
        the ticket's `metadata.customer_id`); without one, both attempts still share a variant."""
        started = time.monotonic()
        self._require_ready()
        customer = (ticket.metadata or {}).get("customer_id")
        route_key = route_key or (str(customer) if customer is not None else None) or uuid.uuid4().hex
        budget = max_tokens or self.default_max_tokens
        # Room for the retry's doubled budget is kept from the start.
        ticket, shortened = self._fit(ticket, 2 * budget)
        # A reply cut off by the token budget gets one more try with twice the budget: one request
        # for the metrics and usage, the extra attempt counted as a retry.
        result = await self._generate(ticket, model or self.base_model, budget, route_key)
        triage = _parse(result)
        if triage is None:
            raise UpstreamGenerationError(
                f"The model did not produce a complete, schema-valid triage within {2 * budget} tokens "
                f"({result.attempts} attempts); the ticket may be too long for this model."
            )
        meta = _meta(result, started, result.attempts)
        meta.input_truncated = shortened
        return TriageResponse(triage=triage, meta=meta)

    def _fit(self, ticket: Ticket, reply_budget: int) -> tuple[Ticket, bool]:
        """Shorten an over-long body (keeping its start and end) so prompt and reply fit the
        context; a ticket is still triaged from what it says first and last."""
        limit = self.generation.limits.max_model_len - reply_budget
        for _ in range(4):
            used = self.generation.count_chat_tokens(self.prompt.messages(ticket))
            if used <= limit:
                return ticket, _ != 0
            body = ticket.body
            keep = max(200, int(len(body) * (1 - (used - limit) / max(used, 1)) * 0.9))
            if keep >= len(body):
                keep = len(body) // 2
            head, tail = body[: keep * 2 // 3], body[len(body) - keep // 3:]
            ticket = ticket.model_copy(update={"body": f"{head}\n[...]\n{tail}"})
        return ticket, True

    def _require_ready(self) -> None:
        """Refuse as /v1/chat/completions does (a 503 with Retry-After) before anything touches the
        tokenizer, which does not exist until the engine is ready (else start-up gives a 500)."""
        engine = self.generation.engine
        if not engine.is_ready:
            self.generation.accounting.refused("engine_not_ready")
            raise EngineNotReadyError(f"The engine is {engine.state.value}; try again shortly.")

    async def triage_batch(self, tickets: list[Ticket], model: str | None = None,
                           route_key: str | None = None) -> list[TriageResponse | ServiceError]:
        """Triage every ticket (a few at a time); a ticket that fails gets its error, not the batch.
        The limit is per batch, so one large batch cannot hold back another."""
        self._require_ready()  # a batch sent during start-up is one 503, not a 200 of errors
        slots = asyncio.Semaphore(self.batch_concurrency)

        async def one(ticket: Ticket) -> TriageResponse | ServiceError:
            async with slots:
                try:
                    return await self.triage(ticket, model, route_key=route_key)
                except ServiceError as exc:
                    return exc

        return list(await asyncio.gather(*(one(ticket) for ticket in tickets)))

    async def _generate(self, ticket: Ticket, model: str, max_tokens: int, route_key: str) -> GenerationResult:
        request = GenerationRequest(
            model=model,
            endpoint="triage",
            route_key=route_key,
            outcome_fields=("category", "priority"),
            messages=self.prompt.messages(ticket),
            max_tokens=max_tokens,
            retry_truncated_max_tokens=2 * max_tokens,
            temperature=0,
            repetition_penalty=self.repetition_penalty,
            structured=StructuredRequest(
                constraint=StructuredConstraint(json_schema=self.schema), kind="json_schema",
                schema_=self.schema, strict=True, param="response_format.json_schema.schema",
            ),
        )
        prepared = await self.generation.prepare(request)
        try:
            return await self.generation.run(prepared)
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
