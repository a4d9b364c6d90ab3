"""Turn validated OpenAI-style requests into engine work, and engine output into results.

No HTTP here: the API layer hands in pydantic requests and gets back plain results or a stream
of deltas. Limits (context length, max_tokens, n) and structured-output constraints are checked
before anything reaches the engine; a constraint one backend cannot compile, or whose output
fails validation, is retried on the next backend; every request is recorded once in the metrics.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from pydantic import BaseModel

from service.api.protocol import ChatCompletionRequest, ChatMessage, CompletionRequest, SamplingFields
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
from service.metrics import Metrics
from service.registry import NO_LEASE, Lease
from service.routing import ModelRouter, ServingTarget
from service.stats import RequestSample, RequestStats
from service.structured import (
    StructuredGuard,
    StructuredRequest,
    ValidationResult,
    relaxed_schema,
    structured_request_from,
    validate_output,
)


class GenerationLimits(BaseModel):
    max_model_len: int
    max_tokens_limit: int
    max_n: int


class StructuredPolicy(BaseModel):
    default_backend: str = "xgrammar"
    fallback_backends: list[str] = ["guidance"]

    def chain(self, requested: str | None = None) -> list[str]:
        first = requested or self.default_backend
        return [first] + [b for b in self.fallback_backends if b != first]


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

    def release(self) -> None:
        self.lease.release()

    def sampling_for(self, attempt: DecodingAttempt | None) -> SamplingOptions:
        if attempt is None or self.sampling.structured is None:
            return self.sampling
        update: dict = {"backend": attempt.backend}
        if attempt.relaxed_schema is not None:
            update["json_schema"] = attempt.relaxed_schema
        constraint = self.sampling.structured.model_copy(update=update)
        return self.sampling.model_copy(update={"structured": constraint})


@dataclass(frozen=True)
class DecodingAttempt:
    """One way to decode a structured request: a backend, with the full or a relaxed schema."""

    backend: str
    relaxed_schema: dict | None = None

    def __str__(self) -> str:
        return f"{self.backend} (relaxed schema)" if self.relaxed_schema is not None else self.backend


@dataclass
class ChoiceResult:
    index: int
    text: str = ""
    token_count: int = 0
    finish_reason: FinishReason | None = None


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


@dataclass
class _Observation:
    """Timing and token bookkeeping for one request (all its attempts)."""

    started: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    completion_tokens: int = 0
    queue_seconds: float | None = None
    status: str = "200"
    structured_result: ValidationResult | None = None

    @property
    def time_to_first_token(self) -> float | None:
        return self.first_token_at - self.started if self.first_token_at is not None else None

    def saw_tokens(self, count: int) -> None:
        if count and self.first_token_at is None:
            self.first_token_at = time.monotonic()
        self.completion_tokens += count


class _ConstraintRefused(Exception):
    """One backend could not compile the request's constraint (another may)."""


class CompletionService:
    def __init__(
        self,
        engine: Engine,
        router: ModelRouter,
        metrics: Metrics,
        limits: GenerationLimits,
        guard: StructuredGuard | None = None,
        policy: StructuredPolicy | None = None,
        stats: RequestStats | None = None,
    ) -> None:
        self.engine = engine
        self.router = router
        self.metrics = metrics
        self.limits = limits
        self.guard = guard
        self.policy = policy or StructuredPolicy()
        self.stats = stats

    # ---------------------------------------------------------------- prepare
    async def prepare_chat(self, request: ChatCompletionRequest, endpoint: str = "chat") -> PreparedGeneration:
        structured = await self._structured(request)
        target = self._resolve(request.model)
        messages = _template_messages(request.messages)
        prompt_ids = self._render(target, endpoint, lambda: self.engine.render_chat(messages))
        return self._prepared(endpoint, request, request.requested_max_tokens, target, prompt_ids, structured)

    async def prepare_completion(self, request: CompletionRequest) -> PreparedGeneration:
        structured = await self._structured(request)
        target = self._resolve(request.model)
        prompt_ids = self._render(target, "completions", lambda: self.engine.tokenize(request.prompt))
        prepared = self._prepared("completions", request, request.max_tokens, target, prompt_ids, structured)
        prepared.echo_text = request.prompt if request.echo else ""
        return prepared

    def count_chat_tokens(self, messages: list[ChatMessage]) -> int:
        """Prompt tokens of these messages after the chat template."""
        return len(self.engine.render_chat(_template_messages(messages)))

    async def _structured(self, request: SamplingFields) -> StructuredRequest | None:
        # Checked before the model is resolved: the guard may await, and nothing may await
        # between resolving an adapter and leasing it.
        try:
            structured = structured_request_from(request)
            if structured is not None and self.guard is not None:
                await self.guard.check(structured, self.policy.chain(structured.constraint.backend))
        except ServiceError as exc:
            self.metrics.rejected.labels(exc.code or "invalid_structured_output").inc()
            raise
        return structured

    def _resolve(self, model: str) -> ServingTarget:
        if not self.engine.is_ready:
            self.metrics.rejected.labels("engine_not_ready").inc()
            raise EngineNotReadyError(f"The engine is {self.engine.state.value}; try again shortly.")
        try:
            return self.router.resolve(model)
        except ServiceError:
            self.metrics.rejected.labels("model_not_found").inc()
            raise

    def _render(self, target: ServingTarget, endpoint: str, render: Callable[[], list[int]]) -> list[int]:
        try:
            return render()
        except Exception as exc:  # a template error is the request's fault (e.g. bad role order)
            error = InvalidRequestError(f"Could not apply the chat template: {exc}", param="messages")
            self._record_rejection(target, endpoint, error, "invalid_messages")
            raise error from exc

    def _prepared(
        self,
        endpoint: str,
        request: SamplingFields,
        max_tokens: int | None,
        target: ServingTarget,
        prompt_ids: list[int],
        structured: StructuredRequest | None,
    ) -> PreparedGeneration:
        limits = self.limits
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
        except ServiceError as exc:
            self._record_rejection(target, endpoint, exc, exc.code or "invalid_request")
            raise
        sampling = SamplingOptions(
            max_tokens=requested,
            temperature=request.temperature if request.temperature is not None else 1.0,
            top_p=request.top_p if request.top_p is not None else 1.0,
            n=request.n,
            seed=request.seed,
            stop=request.stop_sequences,
            frequency_penalty=request.frequency_penalty or 0.0,
            presence_penalty=request.presence_penalty or 0.0,
            repetition_penalty=request.repetition_penalty or 1.0,
            min_tokens=min(request.min_tokens, requested),
            ignore_eos=request.ignore_eos,
            structured=structured.constraint if structured is not None else None,
        )
        # Last step, with no await since resolving: the adapter version cannot be retired between.
        return PreparedGeneration(endpoint, target, prompt_ids, sampling, structured, lease=self.router.lease(target))

    # -------------------------------------------------------------------- run
    async def run(self, prepared: PreparedGeneration) -> GenerationResult:
        """Generate to completion, trying the next structured-output backend when one fails."""
        observation = _Observation()
        refusals: list[str] = []
        fallback_result: GenerationResult | None = None
        with _Tracked(self, prepared, observation):
            for attempt in self._backends(prepared):
                choices = {i: ChoiceResult(index=i) for i in range(prepared.sampling.n)}
                try:
                    async for deltas in self._attempt(prepared, observation, attempt):
                        for delta in deltas:
                            choice = choices[delta.index]
                            choice.text += delta.text
                            choice.token_count += delta.token_count
                            choice.finish_reason = delta.finish_reason or choice.finish_reason
                except _ConstraintRefused as exc:
                    refusals.append(f"{attempt}: {exc}")
                    continue
                result = GenerationResult(
                    target=prepared.target,
                    choices=list(choices.values()),
                    prompt_tokens=len(prepared.prompt_token_ids),
                    completion_tokens=sum(c.token_count for c in choices.values()),
                    duration_seconds=time.monotonic() - observation.started,
                    time_to_first_token_seconds=observation.time_to_first_token,
                    structured_backend=str(attempt) if attempt else None,
                )
                if prepared.structured is None:
                    return result
                result.structured_result = observation.structured_result = _combined(
                    validate_output(prepared.structured, c.text, c.finish_reason) for c in result.choices
                )
                if result.structured_result != "invalid":
                    return result
                refusals.append(f"{attempt}: the output did not validate against the schema")
                fallback_result = result
            return self._give_up(prepared, observation, refusals, fallback_result)

    def _give_up(
        self, prepared: PreparedGeneration, observation: _Observation, refusals: list[str],
        invalid_result: GenerationResult | None,
    ) -> GenerationResult:
        structured = prepared.structured
        assert structured is not None
        if invalid_result is None:
            observation.status = "400"
            raise InvalidRequestError(
                "No structured-output backend supports this constraint: " + "; ".join(refusals),
                param=structured.param, code="unsupported_constraint",
            )
        if structured.strict:
            observation.status = "502"
            raise UpstreamGenerationError(
                "No backend produced output that validates against the schema (tried "
                + "; ".join(refusals) + "). Try a larger max_tokens or a simpler schema.",
            )
        return invalid_result  # best effort, flagged invalid in the response header

    async def stream(self, prepared: PreparedGeneration) -> AsyncIterator[list[GenerationDelta]]:
        """Yield each engine step's deltas. A constraint refused by a backend falls back to the
        next one only before any output was sent; validation happens at the end (metrics)."""
        observation = _Observation()
        texts: dict[int, str] = {}
        finishes: dict[int, FinishReason | None] = {}
        refusals: list[str] = []
        with _Tracked(self, prepared, observation):
            for attempt in self._backends(prepared):
                sent = False
                try:
                    async for deltas in self._attempt(prepared, observation, attempt):
                        for delta in deltas:
                            texts[delta.index] = texts.get(delta.index, "") + delta.text
                            finishes[delta.index] = delta.finish_reason or finishes.get(delta.index)
                        sent = sent or any(d.text or d.token_count for d in deltas)
                        yield deltas
                    break
                except _ConstraintRefused as exc:
                    if sent:
                        raise UpstreamGenerationError(f"Structured generation failed mid-stream: {exc}") from exc
                    refusals.append(f"{attempt}: {exc}")
            else:
                if prepared.structured is not None:
                    self._give_up(prepared, observation, refusals, None)
            if prepared.structured is not None:
                observation.structured_result = _combined(
                    validate_output(prepared.structured, texts.get(i, ""), finishes.get(i)) for i in sorted(texts)
                )

    def _backends(self, prepared: PreparedGeneration) -> list[DecodingAttempt | None]:
        constraint = prepared.sampling.structured
        if constraint is None:
            return [None]
        chain = self.policy.chain(constraint.backend)
        attempts = [DecodingAttempt(backend) for backend in chain]
        relaxed = relaxed_schema(constraint.json_schema) if constraint.json_schema is not None else None
        if relaxed is not None:
            attempts += [DecodingAttempt(backend, relaxed) for backend in chain]
        return attempts

    async def _attempt(
        self, prepared: PreparedGeneration, observation: _Observation, attempt: DecodingAttempt | None
    ) -> AsyncIterator[list[GenerationDelta]]:
        try:
            async for update in self.engine.generate(
                prepared.prompt_token_ids, prepared.sampling_for(attempt), prepared.target.adapter
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

    # ---------------------------------------------------------------- records
    def _record_finished(self, prepared: PreparedGeneration, obs: _Observation) -> None:
        m, labels = self.metrics, prepared.target.labels
        duration = time.monotonic() - obs.started
        m.requests.labels(**labels, endpoint=prepared.endpoint, status=obs.status).inc()
        m.request_duration.labels(**labels, endpoint=prepared.endpoint).observe(duration)
        m.prompt_tokens.labels(**labels).inc(len(prepared.prompt_token_ids))
        m.completion_tokens.labels(**labels).inc(obs.completion_tokens)
        ttft = obs.time_to_first_token
        if ttft is not None:
            m.time_to_first_token.labels(**labels).observe(ttft)
            if obs.completion_tokens > 1:
                m.time_per_output_token.labels(**labels).observe((duration - ttft) / (obs.completion_tokens - 1))
        if obs.queue_seconds is not None:
            m.queue_time.labels(prepared.target.base_model, prepared.target.model).observe(obs.queue_seconds)
        if obs.structured_result in ("valid", "invalid", "truncated"):
            m.structured_outputs.labels(**labels, result=obs.structured_result).inc()
        self._observe_stats(prepared.target, prepared.endpoint, int(obs.status), duration, ttft,
                            len(prepared.prompt_token_ids), obs.completion_tokens, obs.structured_result)

    def _record_rejection(self, target: ServingTarget, endpoint: str, exc: ServiceError, reason: str) -> None:
        self.metrics.rejected.labels(reason).inc()
        self.metrics.requests.labels(**target.labels, endpoint=endpoint, status=str(exc.status)).inc()
        self._observe_stats(target, endpoint, exc.status, 0.0, None, 0, 0, None)

    def _observe_stats(self, target: ServingTarget, endpoint: str, status: int, duration: float,
                       ttft: float | None, prompt_tokens: int, completion_tokens: int,
                       structured_result: str | None) -> None:
        if self.stats is None:
            return
        self.stats.observe(RequestSample(
            finished_at=time.time(), base_model=target.base_model, model=target.model, route=target.route,
            variant=target.variant, endpoint=endpoint, status=status, duration_s=duration, ttft_s=ttft,
            prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
            structured_result=structured_result if structured_result != "unchecked" else None,
        ))


class _Tracked:
    """Counts a request in flight while it runs, then records it exactly once."""

    def __init__(self, service: CompletionService, prepared: PreparedGeneration, observation: _Observation) -> None:
        self.service, self.prepared, self.observation = service, prepared, observation
        target = prepared.target
        self.in_flight = service.metrics.in_flight.labels(target.base_model, target.model)

    def __enter__(self) -> _Observation:
        self.in_flight.inc()
        return self.observation

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        self.in_flight.dec()
        self.prepared.release()
        if isinstance(exc, ServiceError):
            self.observation.status = str(exc.status)
        elif exc is not None:
            self.observation.status = "499"  # client went away (nginx's convention); engine aborted it
        self.service._record_finished(self.prepared, self.observation)


def _combined(results) -> ValidationResult:  # noqa: ANN001 - an iterable of ValidationResult
    """One verdict for all choices: any invalid > any truncated > any unchecked > valid."""
    found = set(results)
    for verdict in ("invalid", "truncated", "unchecked"):
        if verdict in found:
            return verdict  # type: ignore[return-value]
    return "valid"


def _template_messages(messages: list[ChatMessage]) -> list[dict[str, str]]:
    # OpenAI's newer "developer" role plays the part of "system" for chat templates.
    return [{"role": "system" if m.role == "developer" else m.role, "content": m.text} for m in messages]
