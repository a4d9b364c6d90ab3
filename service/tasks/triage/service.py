"""Ticket triage: one ticket in, a schema-valid triage object out (or a clear error).

No HTTP here: the API layer hands in tickets and maps results and errors to its responses.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from functools import cached_property

from pydantic import ValidationError

from service.engine.types import SamplingOptions
from service.errors import ServiceError, UpstreamGenerationError
from service.generation import GenerationRequest, GenerationResult, GenerationService
from service.structured import StructuredConstraint, StructuredRequest
from service.tasks.triage.prompt import TriagePrompt
from service.tasks.triage.schema import Ticket, TicketTriage, TriageMeta, TriageResponse


# No penalty (1.0): decode as the adapters were trained. A penalty on tokens the prompt already holds
# (the system prompt lists every label) tips close label calls: through this endpoint ticket-triage v4
# picked the right priority for 58% of 60 validation tickets with 1.15 and 72% without. The schema's
# 200-character strings bound a looping reply. Evaluations of the unconstrained path send the same value.
REPETITION_PENALTY = 1.0


# A body cut to fit keeps this many tokens at least, and cuts this many more than the prompt is
# over by (the "[...]" marker, and tokens that merge differently where the body was cut).
MIN_KEPT_BODY_TOKENS = 50
CUT_MARGIN_TOKENS = 16


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

    @cached_property
    def _structured(self) -> StructuredRequest:
        return StructuredRequest(constraint=StructuredConstraint(json_schema=self.schema), kind="json_schema",
                                 schema_=self.schema, strict=True, param="response_format.json_schema.schema")

    async def triage(self, ticket: Ticket, model: str | None = None, max_tokens: int | None = None,
                     route_key: str | None = None) -> TriageResponse:
        """Triage one ticket. `route_key` keeps a customer on one variant of an A/B route (default:
        the ticket's `metadata.customer_id`); without one, both attempts still share a variant."""
        started = time.monotonic()
        self.generation.check_ready()  # a 503 as chat's, before anything touches the tokenizer
        customer = (ticket.metadata or {}).get("customer_id")
        budget = max_tokens or self.default_max_tokens
        # Room for the retry's doubled budget is kept from the start.
        prompt_ids, shortened = self._fit(ticket, 2 * budget)
        # A reply cut off by the token budget gets one more try with twice the budget: one request
        # for the metrics and usage, the extra attempt counted as a retry.
        request = GenerationRequest(
            model=model or self.base_model, endpoint="triage",
            route_key=route_key or (str(customer) if customer is not None else None) or uuid.uuid4().hex,
            outcome_fields=("category", "priority"), prompt_token_ids=prompt_ids,
            sampling=SamplingOptions(max_tokens=budget, temperature=0, repetition_penalty=self.repetition_penalty),
            retry_truncated_max_tokens=2 * budget, structured=self._structured,
        )
        async with self.generation.session(request) as session:
            result = await session.run()
        triage = _triage_of(result)
        if triage is None:
            raise UpstreamGenerationError(
                f"The model did not produce a complete, schema-valid triage within {2 * budget} tokens "
                f"({result.attempts} attempts); the ticket may be too long for this model."
            )
        meta = _meta(result, started)
        meta.input_truncated = shortened
        return TriageResponse(triage=triage, meta=meta)

    def _fit(self, ticket: Ticket, reply_budget: int) -> tuple[list[int], bool]:
        """The prompt's token ids, rendered once; an over-long body is cut (keeping its first two
        thirds and last third) so prompt and reply fit the context: a ticket is still triaged from
        what it says first and last. Returns the ids and whether the body was cut."""
        limit = self.generation.limits.max_model_len - reply_budget
        prompt_ids = self.generation.render_chat(self.prompt.messages(ticket))
        if len(prompt_ids) <= limit:
            return prompt_ids, False
        body_ids = self.generation.tokenize(ticket.body)
        keep = max(MIN_KEPT_BODY_TOKENS, len(body_ids) - (len(prompt_ids) - limit) - CUT_MARGIN_TOKENS)
        head, tail = body_ids[: keep * 2 // 3], body_ids[len(body_ids) - keep // 3:]
        # A cut may split a character's bytes: the replacement characters at the cut are dropped.
        body = f"{self.generation.detokenize(head).rstrip(_SPLIT)}\n[...]\n{self.generation.detokenize(tail).lstrip(_SPLIT)}"
        return self.generation.render_chat(self.prompt.messages(ticket.model_copy(update={"body": body}))), True

    async def triage_batch(self, tickets: list[Ticket], model: str | None = None,
                           route_key: str | None = None) -> list[TriageResponse | ServiceError]:
        """Triage every ticket (a few at a time); a ticket that fails gets its error, not the batch.
        The limit is per batch, so one large batch cannot hold back another."""
        self.generation.check_ready()  # a batch sent during start-up is one 503, not a 200 of errors
        slots = asyncio.Semaphore(self.batch_concurrency)

        async def one(ticket: Ticket) -> TriageResponse | ServiceError:
            async with slots:
                try:
                    return await self.triage(ticket, model, route_key=route_key)
                except ServiceError as exc:
                    return exc

        return list(await asyncio.gather(*(one(ticket) for ticket in tickets)))


_SPLIT = "\ufffd"


def _triage_of(result: GenerationResult) -> TicketTriage | None:
    """The triage in a valid reply, from the JSON the generation service already parsed."""
    if result.structured_output != "valid":
        return None
    try:
        return TicketTriage.model_validate(result.structured_value)
    except ValidationError:
        return None


def _meta(result: GenerationResult, started: float) -> TriageMeta:
    target = result.target
    return TriageMeta(
        model=target.model, base_model=target.base_model,
        adapter_version=target.adapter.version if target.adapter else None,
        route=target.route, variant=target.variant,
        latency_ms=round((time.monotonic() - started) * 1000, 1),
        prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
        attempts=result.attempts, structured_backend=result.structured_backend,
    )
