"""The generation service: one path from any endpoint's request to engine work and results.

No HTTP here: endpoints open a session (`async with generation.session(request) as session`) and
get a `GenerationResult` or a stream of deltas from it. Limits (context length, max_tokens, n) and
structured-output constraints are checked before anything reaches the engine; the decoding loop
(`decoding.py`) falls back between backends; every request is recorded once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from service.adapters import Lease
from service.engine import Engine
from service.errors import (
    ContextLengthExceededError,
    EngineNotReadyError,
    InvalidRequestError,
    ServiceError,
)
from service.generation.accounting import Accounting
from service.generation.decoding import Decoder
from service.generation.session import GenerationSession
from service.generation.types import GenerationLimits, GenerationRequest, PreparedGeneration, PromptMessage
from service.observability import Metrics, RequestStats
from service.routing import ModelRouter, RolloutGuard, ServingTarget
from service.structured import StructuredGuard, StructuredPolicy, StructuredRequest


logger = logging.getLogger(__name__)
ShadowOutcome = Callable[[Any], Awaitable[None]]


class ModelResolver(Protocol):
    """Registers a `model` nobody registered, on its first request (service.adapters.remote)."""

    async def resolve(self, name: str) -> None: ...


class GenerationService:
    def __init__(
        self,
        engine: Engine,
        router: ModelRouter,
        metrics: Metrics,
        limits: GenerationLimits,
        guard: StructuredGuard | None = None,
        policy: StructuredPolicy | None = None,
        stats: RequestStats | None = None,
        rollout: RolloutGuard | None = None,
        resolver: ModelResolver | None = None,
    ) -> None:
        self.engine = engine
        self.router = router
        self.limits = limits
        self.guard = guard
        self.resolver = resolver
        self.policy = policy or StructuredPolicy()
        self.accounting = Accounting(metrics, stats, rollout)
        self.decoder = Decoder(engine, self.policy, self.accounting)
        self._background: set[asyncio.Task[None]] = set()

    def session(self, request: GenerationRequest) -> GenerationSession:
        """A request's session, entered with `async with` (see `GenerationSession`)."""
        return GenerationSession(self, request)

    # ------------------------------------------------------------ readiness
    def check_ready(self) -> None:
        """Refuse (503 with Retry-After, counted) while the engine cannot serve, before anything
        touches the tokenizer, which does not exist until the engine has started."""
        if not self.engine.is_ready:
            self.accounting.refused("engine_not_ready")
            raise EngineNotReadyError(f"The engine is {self.engine.state.value}; try again shortly.")

    def refused(self, exc: ServiceError) -> None:
        """Count a request the API refused while translating it (a malformed constraint)."""
        self.accounting.refused(exc.code or "invalid_structured_output")

    # ---------------------------------------------------------- tokenization
    def render_chat(self, messages: list[PromptMessage]) -> list[int]:
        """Prompt token ids of these messages after the chat template."""
        return self.engine.render_chat([m.model_dump() for m in messages])

    def tokenize(self, text: str) -> list[int]:
        return self.engine.tokenize(text)

    def detokenize(self, token_ids: list[int]) -> str:
        return self.engine.detokenize(token_ids)

    # ---------------------------------------------------------------- prepare
    async def prepare(
        self, request: GenerationRequest,
    ) -> tuple[PreparedGeneration, Lease, tuple[PreparedGeneration, Lease] | None]:
        """Check everything, resolve the model, render the prompt and lease the adapter version (and
        the shadow's, for a route that mirrors). Used by `GenerationSession`, which releases them."""
        await self._check_structured(request.structured)
        self.check_ready()
        await self._resolve_unknown(request.model)
        target = self._resolve(request.model, request.route_key)
        prompt_ids = self._prompt_ids(request, target)
        prepared = self._prepared(request, target, prompt_ids)
        # Last step, with no await since resolving: the adapter version cannot be retired between.
        lease = self.router.lease(target)
        shadow_target = self.router.shadow(target, request.route_key)
        if shadow_target is None:
            return prepared, lease, None
        shadow = PreparedGeneration(prepared.endpoint, shadow_target, prompt_ids, prepared.sampling,
                                    request.structured, is_shadow=True, priority=1, cache_salt=request.cache_salt)
        return prepared, lease, (shadow, self.router.lease(shadow_target))

    async def _check_structured(self, structured: StructuredRequest | None) -> None:
        # Checked before the model is resolved: the guard may await, and nothing may await
        # between resolving an adapter and leasing it.
        if structured is None or self.guard is None:
            return
        try:
            await self.guard.check(structured, self.policy.chain(structured.constraint.backend))
        except ServiceError as exc:
            self.refused(exc)
            raise

    async def _resolve_unknown(self, model: str) -> None:
        # Before resolving: once resolved, nothing may await until the adapter is leased.
        if self.resolver is None or self.router.knows(model):
            return
        try:
            await self.resolver.resolve(model)
        except ServiceError as exc:
            self.accounting.refused(exc.code or "adapter_resolution_failed")
            raise

    def _resolve(self, model: str, route_key: str | None) -> ServingTarget:
        try:
            return self.router.resolve(model, route_key)
        except ServiceError:
            self.accounting.refused("model_not_found")
            raise

    def _prompt_ids(self, request: GenerationRequest, target: ServingTarget) -> list[int]:
        if request.prompt_token_ids is not None:
            return request.prompt_token_ids
        try:
            if request.messages is not None:
                return self.render_chat(request.messages)
            return self.engine.tokenize(request.prompt or "")
        except Exception as exc:  # a template error is the request's fault (e.g. bad role order)
            error = InvalidRequestError(f"Could not apply the chat template: {exc}", param="messages")
            self.accounting.rejected(target, request.endpoint, error, "invalid_messages")
            raise error from exc

    def _prepared(self, request: GenerationRequest, target: ServingTarget, prompt_ids: list[int]) -> PreparedGeneration:
        limits, endpoint, sampling = self.limits, request.endpoint, request.sampling
        max_tokens = sampling.max_tokens
        try:
            if sampling.n > limits.max_n:
                raise InvalidRequestError(f"n must be at most {limits.max_n}; you asked for {sampling.n}.", param="n")
            if sampling.n > 1 and sampling.temperature == 0:
                raise InvalidRequestError("n > 1 needs temperature > 0: greedy choices would be identical.", param="n")
            if max_tokens is not None and max_tokens > limits.max_tokens_limit:
                raise InvalidRequestError(
                    f"max_tokens is too large: {max_tokens}. This server allows at most "
                    f"{limits.max_tokens_limit} completion tokens.",
                    param="max_tokens",
                )
            room = limits.max_model_len - len(prompt_ids)
            requested = max_tokens if max_tokens is not None else min(limits.max_tokens_limit, room)
            if requested < 1 or len(prompt_ids) + requested > limits.max_model_len:
                asked = max(requested, 1)
                raise ContextLengthExceededError(
                    f"This model's maximum context length is {limits.max_model_len} tokens. However, "
                    f"you requested {len(prompt_ids) + asked} tokens ({len(prompt_ids)} in the prompt, "
                    f"{asked} for the completion). Please reduce the prompt or max_tokens.",
                    param="messages" if endpoint != "completions" else "prompt",
                )
            if sampling.min_tokens > requested:
                raise InvalidRequestError(
                    f"min_tokens ({sampling.min_tokens}) must be less than or equal to max_tokens ({requested}).",
                    param="min_tokens",
                )
            self._check_token_ids(request)
        except ServiceError as exc:
            self.accounting.rejected(target, endpoint, exc, exc.code or "invalid_request")
            raise
        constraint = request.structured.constraint if request.structured is not None else None
        return PreparedGeneration(
            endpoint, target, prompt_ids, sampling.model_copy(update={"max_tokens": requested, "structured": constraint}),
            request.structured, retry_truncated_max_tokens=request.retry_truncated_max_tokens,
            echo_text=(request.prompt or "") if request.echo else "", cache_salt=request.cache_salt,
        )

    def _check_token_ids(self, request: GenerationRequest) -> None:
        # vLLM would refuse these too, but only after the constraint fallback chain had begun.
        vocab = self.engine.vocab_size
        for field, ids in request.sampling.named_token_ids().items():
            bad = [i for i in ids if not 0 <= i < vocab]
            if bad:
                raise InvalidRequestError(
                    f"{field} names token id(s) outside the vocabulary (0-{vocab - 1}): {bad[:5]}.", param=field,
                )

    # ---------------------------------------------------------------- shadow
    def mirror(self, shadow: PreparedGeneration, lease: Lease, outcome: ShadowOutcome | None = None) -> None:
        """Run a route's shadow in the background once the client's reply is done, at lower engine
        priority, recorded apart from client traffic; a shadow never fails a client. `outcome`: what
        the task does with the shadow's result (records its decision)."""
        task = asyncio.get_running_loop().create_task(self._run_shadow(shadow, lease, outcome))
        self._background.add(task)  # a reference, so the task cannot be collected mid-flight
        task.add_done_callback(self._background.discard)

    async def _run_shadow(self, shadow: PreparedGeneration, lease: Lease, outcome: ShadowOutcome | None) -> None:
        try:
            result = await self.decoder.run(shadow)
            if outcome is not None:
                await outcome(result)
        except Exception:  # noqa: BLE001 - recorded by the accounting
            logger.debug("shadow request failed", exc_info=True)
        finally:
            lease.release()

    # --------------------------------------------------------------- outcomes
    def record_outcome(self, target: ServingTarget, labels: dict[str, str], shadow: bool = False,
                       needs_review: bool | None = None, confidence: dict[str, float] | None = None,
                       paired: tuple[str, dict[str, str]] | None = None) -> None:
        """What a task decided for one request (triage: its labels, review flag and confidence), for
        the metrics, /v1/stats and route reports; `paired`, for a shadow: the client's reply's
        variant and labels (the guard's shadow agreement compares the two)."""
        self.accounting.decided(target, labels, shadow, needs_review, confidence or {}, paired)
