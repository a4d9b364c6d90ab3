"""Ticket triage: one ticket in, a schema-valid triage object out (or a clear error).

No HTTP here: the API layer hands in tickets and maps results and errors to its responses.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from functools import cached_property, lru_cache
from pathlib import Path

from pydantic import ValidationError

from service.adapters.validation import AdapterValidationError, TriagePolicyFile, TriageThresholds, read_triage_policy
from service.engine.types import SamplingOptions, TopToken
from service.errors import ServiceError, UpstreamGenerationError
from service.generation import GenerationRequest, GenerationResult, GenerationService
from service.routing import ServingTarget
from service.structured import StructuredConstraint, StructuredRequest
from service.tasks.triage.policy import decide
from service.tasks.triage.probabilities import label_probabilities
from service.tasks.triage.prompt import TriagePrompt
from service.tasks.triage.schema import (
    CATEGORIES,
    PRIORITIES,
    LabelProbabilities,
    Ticket,
    TicketTriage,
    TriageMeta,
    TriagePolicy,
    TriageResponse,
)
from service.tasks.triage.settings import TriageSettings

logger = logging.getLogger(__name__)


# No penalty (1.0): decode as the adapters were trained. A penalty on tokens the prompt already holds
# (the system prompt lists every label) tips close label calls: through this endpoint ticket-triage v4
# picked the right priority for 58% of 60 validation tickets with 1.15 and 72% without. The schema's
# 200-character strings bound a looping reply. Evaluations of the unconstrained path send the same value.
REPETITION_PENALTY = 1.0


# A body cut to fit keeps this many tokens at least, and cuts this many more than the prompt is
# over by (the "[...]" marker, and tokens that merge differently where the body was cut).
MIN_KEPT_BODY_TOKENS = 50
CUT_MARGIN_TOKENS = 16
LABEL_ALTERNATIVES = 20  # top tokens per position the engine reports (vLLM's default max_logprobs)


class TriageService:
    def __init__(self, generation: GenerationService, base_model: str, prompt: TriagePrompt | None = None,
                 default_max_tokens: int = 256, batch_concurrency: int = 8,
                 repetition_penalty: float = REPETITION_PENALTY, policy: TriagePolicy | None = None) -> None:
        self.generation = generation
        self.policy = policy or TriageSettings().policy
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
                     route_key: str | None = None, policy: TriageThresholds | None = None,
                     probabilities: bool = True, cache_salt: str | None = None) -> TriageResponse:
        """Triage one ticket. `route_key` keeps a customer on one variant of an A/B route (default:
        the ticket's `metadata.customer_id`); without one, both attempts still share a variant.
        With `probabilities`, the labels follow the decision policy (the server's, the adapter's,
        then `policy`'s thresholds) applied to the label probabilities read from the reply."""
        started = time.monotonic()
        self.generation.check_ready()  # a 503 as chat's, before anything touches the tokenizer
        customer = (ticket.metadata or {}).get("customer_id")
        budget = max_tokens or self.default_max_tokens
        # Room for the retry's doubled budget is kept from the start.
        prompt_ids, shortened = self._fit(ticket, 2 * budget)
        # The client's decision (variant, labels), for the shadow's agreement with it; always set
        # (None when there is none), so a shadow waiting on it never waits forever.
        answered: asyncio.Future[tuple[str, dict[str, str]] | None] = asyncio.get_running_loop().create_future()

        async def decide_shadow(shadow: GenerationResult) -> None:  # a route's mirror: recorded, never returned
            decided = await self._decided(shadow, prompt_ids, policy, probabilities, shortened)
            if decided is not None:
                self._record(shadow.target, *decided, shadow=True, paired=await answered)

        # A reply cut off by the token budget gets one more try with twice the budget: one request
        # for the metrics and usage, the extra attempt counted as a retry.
        request = GenerationRequest(
            model=model or self.base_model, endpoint="triage",
            route_key=route_key or (str(customer) if customer is not None else None) or uuid.uuid4().hex,
            prompt_token_ids=prompt_ids, shadow_outcome=decide_shadow,
            sampling=SamplingOptions(max_tokens=budget, temperature=0, repetition_penalty=self.repetition_penalty,
                                     logprobs=LABEL_ALTERNATIVES if probabilities else None),
            retry_truncated_max_tokens=2 * budget, structured=self._structured, cache_salt=cache_salt,
        )
        try:
            async with self.generation.session(request) as session:
                result = await session.run()
            decided = await self._decided(result, prompt_ids, policy, probabilities, shortened)
            if decided is None:
                raise UpstreamGenerationError(
                    f"The model did not produce a complete, schema-valid triage within {2 * budget} tokens "
                    f"({result.attempts} attempts); the ticket may be too long for this model."
                )
            triage, meta = decided
            self._record(result.target, triage, meta)
            answered.set_result((result.target.variant, {"category": triage.category, "priority": triage.priority}))
        finally:
            if not answered.done():
                answered.set_result(None)
        meta.latency_ms = round((time.monotonic() - started) * 1000, 1)
        return TriageResponse(triage=triage, meta=meta)

    async def _decided(self, result: GenerationResult, prompt_ids: list[int], policy: TriageThresholds | None,
                       probabilities: bool, shortened: bool) -> tuple[TicketTriage, TriageMeta] | None:
        """The triage of a reply and its meta: with `probabilities`, its labels follow the decision
        policy in force for the served target; None when the reply holds no valid triage."""
        triage = _triage_of(result)
        if triage is None:
            return None
        meta = _meta(result, shortened)
        if not probabilities:
            return triage, meta
        in_force = self._policy_for(result.target).overridden(policy)
        raw = await self._label_probabilities(result, prompt_ids)
        decision = decide(in_force, raw, (triage.category, triage.priority), shortened)
        triage = triage.model_copy(update={"category": decision.category, "priority": decision.priority})
        meta = meta.model_copy(update={
            "probabilities": decision.probabilities, "confidence": decision.confidence,
            "needs_review": decision.needs_review, "review_reasons": decision.review_reasons, "policy": in_force,
        })
        return triage, meta

    def _record(self, target: ServingTarget, triage: TicketTriage, meta: TriageMeta, shadow: bool = False,
                paired: tuple[str, dict[str, str]] | None = None) -> None:
        confidence = meta.confidence.model_dump() if meta.confidence is not None else None
        self.generation.record_outcome(target, {"category": triage.category, "priority": triage.priority},
                                       shadow=shadow, needs_review=meta.needs_review, confidence=confidence,
                                       paired=paired)

    def _policy_for(self, target: ServingTarget) -> TriagePolicy:
        """The server's policy, with the served adapter's own (`triage_policy.json`) over it."""
        if target.adapter is None:
            return self.policy
        return self.policy.overridden(_adapter_policy(str(target.adapter.path)))

    async def _label_probabilities(self, result: GenerationResult, prompt_ids: list[int]) -> LabelProbabilities | None:
        tokens = result.choices[0].logprobs if result.choices else None
        if not tokens:
            return None

        async def probe(path: list[int]) -> list[TopToken]:
            return await self._next_token_alternatives(result.target, prompt_ids + path)

        read = await label_probabilities(tokens, {"category": CATEGORIES, "priority": PRIORITIES}, probe)
        return LabelProbabilities.model_validate(read) if read is not None else None

    async def _next_token_alternatives(self, target: ServingTarget, token_ids: list[int]) -> list[TopToken]:
        """The served model's most likely next tokens after `token_ids` (labels sharing a first
        token, off the decoded path); the same adapter, never re-routed."""
        request = GenerationRequest(model=target.model, endpoint="triage_probe", prompt_token_ids=token_ids,
                                    sampling=SamplingOptions(max_tokens=1, temperature=0, logprobs=LABEL_ALTERNATIVES))
        async with self.generation.session(request) as session:
            result = await session.run()
        chosen = (result.choices[0].logprobs or [None])[0] if result.choices else None
        if chosen is None:
            return []
        return [*chosen.top, TopToken(token_id=chosen.token_id, token=chosen.token, logprob=chosen.logprob)]

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
        start, end = self.generation.detokenize(head).rstrip(_SPLIT), self.generation.detokenize(tail).lstrip(_SPLIT)
        body = f"{start}\n[...]\n{end}"
        return self.generation.render_chat(self.prompt.messages(ticket.model_copy(update={"body": body}))), True

    async def triage_batch(self, tickets: list[Ticket], model: str | None = None,
                           route_key: str | None = None, policy: TriageThresholds | None = None,
                           probabilities: bool = True, cache_salt: str | None = None) -> list[TriageResponse | ServiceError]:
        """Triage every ticket (a few at a time); a ticket that fails gets its error, not the batch.
        The limit is per batch, so one large batch cannot hold back another."""
        self.generation.check_ready()  # a batch sent during start-up is one 503, not a 200 of errors
        slots = asyncio.Semaphore(self.batch_concurrency)

        async def one(ticket: Ticket) -> TriageResponse | ServiceError:
            async with slots:
                try:
                    return await self.triage(ticket, model, route_key=route_key, policy=policy,
                                             probabilities=probabilities, cache_salt=cache_salt)
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


def _meta(result: GenerationResult, input_truncated: bool) -> TriageMeta:
    target = result.target
    return TriageMeta(
        model=target.model, base_model=target.base_model,
        adapter_version=target.adapter.version if target.adapter else None,
        route=target.route, variant=target.variant, latency_ms=0.0,
        prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
        cached_prompt_tokens=result.cached_prompt_tokens, attempts=result.attempts,
        structured_backend=result.structured_backend, input_truncated=input_truncated,
    )


@lru_cache(maxsize=256)
def _adapter_policy(version_folder: str) -> TriagePolicyFile | None:
    """An adapter version's policy file (versions never change, so it is read once); it was
    checked on registration, so a failure here is logged and the server's policy applies."""
    try:
        return read_triage_policy(Path(version_folder))
    except (AdapterValidationError, OSError) as exc:
        logger.error("ignoring the triage policy of %s: %s", version_folder, exc)
        return None
