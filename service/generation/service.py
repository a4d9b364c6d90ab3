"""The generation service: one path from any endpoint's request to engine work and results.

No HTTP here: endpoints hand in a `GenerationRequest` and get back a `GenerationResult` or a
stream of deltas. Limits (context length, max_tokens, n) and structured-output constraints are
checked before anything reaches the engine; a constraint one backend cannot compile, or whose
output fails validation, is retried on the next backend; every request is recorded once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

from service.engine import (
    Engine,
    EngineRequestError,
    EngineUnavailableError,
    FinishReason,
    GenerationDelta,
    GenerationFailedError,
    SamplingOptions,
)
from service.errors import (
    ContextLengthExceededError,
    EngineNotReadyError,
    InvalidRequestError,
    ServiceError,
    UpstreamGenerationError,
)
from service.generation.accounting import Accounting, Observation
from service.generation.types import (
    ChoiceResult,
    GenerationLimits,
    GenerationRequest,
    GenerationResult,
    PreparedGeneration,
    PromptMessage,
)
from service.observability import Metrics, RequestStats
from service.routing import ModelRouter, RolloutGuard, ServingTarget
from service.structured import (
    DecodingAttempt,
    StructuredGuard,
    StructuredPolicy,
    StructuredRequest,
    combined_verdict,
    first_violation,
    validate_output,
)


class _ConstraintRefused(Exception):
    """One backend could not compile the request's constraint (another may)."""


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
    ) -> None:
        self.engine = engine
        self.router = router
        self.metrics = metrics
        self.limits = limits
        self.guard = guard
        self.policy = policy or StructuredPolicy()
        self.accounting = Accounting(metrics, stats, rollout)
        self._background: set[asyncio.Task[None]] = set()

    # ---------------------------------------------------------------- prepare
    async def prepare(self, request: GenerationRequest) -> PreparedGeneration:
        """Check everything, resolve the model, render the prompt and lease the adapter version."""
        await self._check_structured(request.structured)
        target = self._resolve(request.model, request.route_key)
        if request.messages is not None:
            messages = [m.model_dump() for m in request.messages]
            prompt_ids = self._render(target, request.endpoint, lambda: self.engine.render_chat(messages))
        else:
            prompt = request.prompt or ""
            prompt_ids = self._render(target, request.endpoint, lambda: self.engine.tokenize(prompt))
        prepared = self._prepared(request, target, prompt_ids)
        prepared.echo_text = (request.prompt or "") if request.echo else ""
        return prepared

    def count_chat_tokens(self, messages: list[PromptMessage]) -> int:
        """Prompt tokens of these messages after the chat template."""
        return len(self.engine.render_chat([m.model_dump() for m in messages]))

    def refused(self, exc: ServiceError) -> None:
        """Count a request the API refused while translating it (a malformed constraint)."""
        self.accounting.refused(exc.code or "invalid_structured_output")

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

    def _resolve(self, model: str, route_key: str | None) -> ServingTarget:
        if not self.engine.is_ready:
            self.accounting.refused("engine_not_ready")
            raise EngineNotReadyError(f"The engine is {self.engine.state.value}; try again shortly.")
        try:
            return self.router.resolve(model, route_key)
        except ServiceError:
            self.accounting.refused("model_not_found")
            raise

    def _render(self, target: ServingTarget, endpoint: str, render: Callable[[], list[int]]) -> list[int]:
        try:
            return render()
        except Exception as exc:  # a template error is the request's fault (e.g. bad role order)
            error = InvalidRequestError(f"Could not apply the chat template: {exc}", param="messages")
            self.accounting.rejected(target, endpoint, error, "invalid_messages")
            raise error from exc

    def _prepared(self, request: GenerationRequest, target: ServingTarget, prompt_ids: list[int]) -> PreparedGeneration:
        limits, endpoint, max_tokens = self.limits, request.endpoint, request.max_tokens
        try:
            if request.n > limits.max_n:
                raise InvalidRequestError(f"n must be at most {limits.max_n}; you asked for {request.n}.", param="n")
            if request.n > 1 and request.temperature == 0:
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
            if request.min_tokens > requested:
                raise InvalidRequestError(
                    f"min_tokens ({request.min_tokens}) must be less than or equal to max_tokens ({requested}).",
                    param="min_tokens",
                )
            self._check_token_ids(request)
        except ServiceError as exc:
            self.accounting.rejected(target, endpoint, exc, exc.code or "invalid_request")
            raise
        sampling = SamplingOptions(
            max_tokens=requested,
            temperature=request.temperature if request.temperature is not None else 1.0,
            top_p=request.top_p if request.top_p is not None else 1.0,
            n=request.n,
            seed=request.seed,
            stop=request.stop,
            frequency_penalty=request.frequency_penalty or 0.0,
            presence_penalty=request.presence_penalty or 0.0,
            repetition_penalty=request.repetition_penalty or 1.0,
            min_tokens=request.min_tokens,
            ignore_eos=request.ignore_eos,
            extras=request.extras,
            structured=request.structured.constraint if request.structured is not None else None,
        )
        # Last step, with no await since resolving: the adapter version cannot be retired between.
        prepared = PreparedGeneration(endpoint, target, prompt_ids, sampling, request.structured,
                                      lease=self.router.lease(target), outcome_fields=request.outcome_fields,
                                      retry_truncated_max_tokens=request.retry_truncated_max_tokens)
        shadow = self.router.shadow(target, request.route_key)
        if shadow is not None:
            prepared.shadow = PreparedGeneration(endpoint, shadow, prompt_ids, sampling, request.structured,
                                                 lease=self.router.lease(shadow), is_shadow=True, priority=1,
                                                 outcome_fields=request.outcome_fields)
        return prepared

    def _check_token_ids(self, request: GenerationRequest) -> None:
        # vLLM would refuse these too, but only after the constraint fallback chain had begun.
        vocab = self.engine.vocab_size
        for field, ids in request.extras.token_ids().items():
            bad = [i for i in ids if not 0 <= i < vocab]
            if bad:
                raise InvalidRequestError(
                    f"{field} names token id(s) outside the vocabulary (0-{vocab - 1}): {bad[:5]}.", param=field,
                )

    # -------------------------------------------------------------------- run
    async def run(self, prepared: PreparedGeneration) -> GenerationResult:
        """Generate to completion, trying the next structured-output backend when one fails."""
        try:
            return await self._run(prepared)
        finally:
            self._mirror(prepared)

    async def stream(self, prepared: PreparedGeneration) -> AsyncIterator[list[GenerationDelta]]:
        """Yield each engine step's deltas. A constraint refused by a backend falls back to the
        next one only before any output was sent. A structured stream's verdict is set on
        `prepared.structured_verdict` before its last deltas are yielded; a `strict` one that
        fails validation ends with UpstreamGenerationError instead of those last deltas."""
        try:
            async for deltas in self._stream(prepared):
                yield deltas
        finally:
            self._mirror(prepared)

    def _mirror(self, prepared: PreparedGeneration) -> None:
        """Start the request's shadow once the client's reply is done, so it can never delay it;
        it runs at lower engine priority and is recorded apart from client traffic."""
        shadow, prepared.shadow = prepared.shadow, None
        if shadow is None:
            return
        task = asyncio.get_running_loop().create_task(self._run_shadow(shadow))
        self._background.add(task)  # a reference, so the task cannot be collected mid-flight
        task.add_done_callback(self._background.discard)

    async def _run_shadow(self, shadow: PreparedGeneration) -> None:
        try:
            await self._run(shadow)
        except Exception:  # noqa: BLE001 - recorded by the accounting; a shadow never fails a client
            pass

    async def _run(self, prepared: PreparedGeneration) -> GenerationResult:
        observation = Observation()
        refusals: list[str] = []
        fallback_result: GenerationResult | None = None
        with self.accounting.track(prepared, observation):
            attempts = self._backends(prepared)
            max_tokens: int | None = None
            while attempts:
                attempt = attempts.pop(0)
                observation.start_attempt()
                choices = {i: ChoiceResult(index=i) for i in range(prepared.sampling.n)}
                try:
                    async for deltas in self._attempt(prepared, observation, attempt, max_tokens):
                        for delta in deltas:
                            _add(choices[delta.index], delta)
                except _ConstraintRefused as exc:
                    refusals.append(f"{attempt}: {exc}")
                    self.accounting.retried(prepared, observation, "backend_refused")
                    continue
                result = GenerationResult(
                    target=prepared.target,
                    choices=list(choices.values()),
                    prompt_tokens=len(prepared.prompt_token_ids),
                    completion_tokens=sum(c.token_count for c in choices.values()),
                    duration_seconds=time.monotonic() - observation.started,
                    time_to_first_token_seconds=observation.time_to_first_token,
                    structured_backend=str(attempt) if attempt else None,
                    attempts=observation.attempts,
                )
                if prepared.structured is None:
                    return result
                result.structured_result = observation.structured_result = combined_verdict(
                    validate_output(prepared.structured, c.text, c.finish_reason) for c in result.choices
                )
                retry_budget = prepared.retry_truncated_max_tokens
                if result.structured_result == "truncated" and retry_budget and max_tokens is None:
                    # One more try on the same backend with the larger budget the caller reserved.
                    max_tokens = retry_budget
                    attempts.insert(0, attempt)
                    self.accounting.retried(prepared, observation, "truncated")
                    fallback_result = result
                    continue
                if result.structured_result != "invalid":
                    if result.structured_result == "valid":
                        self.accounting.outcome(prepared, result.choices[0].text)
                    return result
                why = first_violation(prepared.structured, (c.text for c in result.choices))
                refusals.append(f"{attempt}: the output did not validate against the schema" + (f" ({why})" if why else ""))
                fallback_result = result
                if attempts:
                    self.accounting.retried(prepared, observation, "invalid_output")
            return self._give_up(prepared, observation, refusals, fallback_result)

    def _give_up(
        self, prepared: PreparedGeneration, observation: Observation, refusals: list[str],
        invalid_result: GenerationResult | None,
    ) -> GenerationResult:
        structured = prepared.structured
        assert structured is not None
        if invalid_result is None:
            raise InvalidRequestError(
                "No structured-output backend supports this constraint: " + "; ".join(refusals),
                param=structured.param, code="unsupported_constraint",
            )
        if structured.strict:
            raise UpstreamGenerationError(
                "No backend produced output that validates against the schema (tried "
                + "; ".join(refusals or [str(invalid_result.structured_backend)])
                + "). Try a larger max_tokens or a simpler schema.",
            )
        return invalid_result  # best effort, flagged invalid in the response header

    async def _stream(self, prepared: PreparedGeneration) -> AsyncIterator[list[GenerationDelta]]:
        observation = Observation()
        texts: dict[int, str] = {}
        finishes: dict[int, FinishReason | None] = {}
        refusals: list[str] = []
        held: list[GenerationDelta] | None = None  # structured: the latest step, sent after the verdict
        with self.accounting.track(prepared, observation):
            for attempt in self._backends(prepared):
                observation.start_attempt()
                sent = False
                try:
                    async for deltas in self._attempt(prepared, observation, attempt):
                        for delta in deltas:
                            texts[delta.index] = texts.get(delta.index, "") + delta.text
                            finishes[delta.index] = delta.finish_reason or finishes.get(delta.index)
                        if prepared.structured is None:
                            yield deltas
                            continue
                        if held is not None:
                            sent = True
                            yield held
                        held = deltas
                    break
                except _ConstraintRefused as exc:
                    if sent:
                        raise UpstreamGenerationError(f"Structured generation failed mid-stream: {exc}") from exc
                    held = None
                    refusals.append(f"{attempt}: {exc}")
                    self.accounting.retried(prepared, observation, "backend_refused")
            else:
                if prepared.structured is not None:
                    self._give_up(prepared, observation, refusals, None)
            if prepared.structured is None:
                return
            verdict = observation.structured_result = prepared.structured_verdict = combined_verdict(
                validate_output(prepared.structured, texts.get(i, ""), finishes.get(i)) for i in sorted(texts)
            )
            if verdict == "invalid" and prepared.structured.strict:
                # Truncation is reported by finish_reason "length", as in non-streamed replies.
                raise UpstreamGenerationError(
                    "The streamed output did not validate against the schema; with strict, its last chunk "
                    "is withheld. Try a simpler schema.",
                )
            if held is not None:
                yield held

    def _backends(self, prepared: PreparedGeneration) -> list[DecodingAttempt | None]:
        constraint = prepared.sampling.structured
        return [None] if constraint is None else list(self.policy.attempts(constraint))

    async def _attempt(
        self, prepared: PreparedGeneration, observation: Observation, attempt: DecodingAttempt | None,
        max_tokens: int | None = None,
    ) -> AsyncIterator[list[GenerationDelta]]:
        try:
            async for update in self.engine.generate(
                prepared.prompt_token_ids, prepared.sampling_for(attempt, max_tokens), prepared.target.adapter,
                priority=prepared.priority,
            ):
                if update.queue_seconds is not None and observation.queue_seconds is None:
                    observation.queue_seconds = update.queue_seconds
                observation.saw_tokens(sum(d.token_count for d in update.deltas))
                yield update.deltas
        except EngineUnavailableError as exc:
            raise EngineNotReadyError(str(exc)) from exc
        except (EngineRequestError, GenerationFailedError) as exc:
            if prepared.structured is not None:
                raise _ConstraintRefused(str(exc)) from exc
            if isinstance(exc, EngineRequestError):
                raise InvalidRequestError(str(exc)) from exc
            raise UpstreamGenerationError(str(exc)) from exc


def _add(choice: ChoiceResult, delta: GenerationDelta) -> None:
    choice.text += delta.text
    choice.token_count += delta.token_count
    choice.finish_reason = delta.finish_reason or choice.finish_reason
    if delta.logprobs is not None:
        choice.logprobs = (choice.logprobs or []) + delta.logprobs
