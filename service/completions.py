"""Turn validated OpenAI-style requests into engine work, and engine output into results.

No HTTP here: the API layer hands in pydantic requests and gets back plain results or a stream
of deltas. Limits (context length, max_tokens, n) are enforced before anything reaches the
engine, and every finished request is recorded in the metrics.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from pydantic import BaseModel

from service.api.protocol import ChatCompletionRequest, CompletionRequest, SamplingFields
from service.engine import (
    Engine,
    EngineRequestError,
    EngineUnavailableError,
    FinishReason,
    GenerationDelta,
    SamplingOptions,
)
from service.errors import (
    ContextLengthExceededError,
    EngineNotReadyError,
    InvalidRequestError,
    ServiceError,
)
from service.metrics import Metrics
from service.registry import NO_LEASE, Lease
from service.routing import ModelRouter, ServingTarget
from service.structured import StructuredRequest, structured_request_from


class GenerationLimits(BaseModel):
    max_model_len: int
    max_tokens_limit: int
    max_n: int


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
    completion_tokens: int
    duration_seconds: float
    time_to_first_token_seconds: float | None
    structured_result: str | None = None  # "valid" | "invalid" | "truncated"


@dataclass
class _Observation:
    """Timing and token bookkeeping for one request while it runs."""

    started: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    completion_tokens: int = 0
    queue_seconds: float | None = None

    @property
    def time_to_first_token(self) -> float | None:
        return self.first_token_at - self.started if self.first_token_at is not None else None

    def saw_tokens(self, count: int) -> None:
        if count and self.first_token_at is None:
            self.first_token_at = time.monotonic()
        self.completion_tokens += count


class CompletionService:
    def __init__(self, engine: Engine, router: ModelRouter, metrics: Metrics, limits: GenerationLimits) -> None:
        self.engine = engine
        self.router = router
        self.metrics = metrics
        self.limits = limits

    # ---------------------------------------------------------------- prepare
    def prepare_chat(self, request: ChatCompletionRequest) -> PreparedGeneration:
        target = self._resolve(request.model)
        structured = self._structured(request, target, "chat")
        messages = [{"role": _template_role(m.role), "content": m.text} for m in request.messages]
        prompt_ids = self._render(lambda: self.engine.render_chat(messages))
        return self._prepared("chat", request, request.requested_max_tokens, target, prompt_ids, structured)

    def prepare_completion(self, request: CompletionRequest) -> PreparedGeneration:
        target = self._resolve(request.model)
        structured = self._structured(request, target, "completions")
        prompt_ids = self._render(lambda: self.engine.tokenize(request.prompt))
        prepared = self._prepared("completions", request, request.max_tokens, target, prompt_ids, structured)
        prepared.echo_text = request.prompt if request.echo else ""
        return prepared

    def _resolve(self, model: str) -> ServingTarget:
        if not self.engine.is_ready:
            self.metrics.rejected.labels("engine_not_ready").inc()
            raise EngineNotReadyError(f"The engine is {self.engine.state.value}; try again shortly.")
        try:
            return self.router.resolve(model)
        except ServiceError:
            self.metrics.rejected.labels("model_not_found").inc()
            raise

    def _structured(self, request: SamplingFields, target: ServingTarget, endpoint: str) -> StructuredRequest | None:
        try:
            return structured_request_from(request)
        except ServiceError as exc:
            self._record_rejection(target, endpoint, exc, "invalid_structured_output")
            raise

    def _render(self, render) -> list[int]:  # noqa: ANN001 - a zero-argument callable
        try:
            return render()
        except Exception as exc:  # a template error is the request's fault (e.g. bad role order)
            raise InvalidRequestError(f"Could not apply the chat template: {exc}", param="messages") from exc

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
                raise InvalidRequestError(
                    f"n must be at most {limits.max_n}; you asked for {request.n}.", param="n"
                )
            if max_tokens is not None and max_tokens > limits.max_tokens_limit:
                raise InvalidRequestError(
                    f"max_tokens is too large: {max_tokens}. This server allows at most "
                    f"{limits.max_tokens_limit} completion tokens.",
                    param="max_tokens",
                )
            room = limits.max_model_len - len(prompt_ids)
            requested = max_tokens if max_tokens is not None else min(limits.max_tokens_limit, room)
            if requested < 1 or len(prompt_ids) + requested > limits.max_model_len:
                raise ContextLengthExceededError(
                    f"This model's maximum context length is {limits.max_model_len} tokens. However, "
                    f"you requested {len(prompt_ids) + max(requested, 1)} tokens ({len(prompt_ids)} in "
                    f"the prompt, {max(requested, 1)} for the completion). Please reduce the prompt "
                    f"or max_tokens.",
                    param="messages" if endpoint == "chat" else "prompt",
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
            structured=structured.constraint if structured is not None else None,
        )
        # Last step, with no await since resolving: the adapter version cannot be retired between.
        return PreparedGeneration(endpoint, target, prompt_ids, sampling, structured,
                                  lease=self.router.lease(target))

    def _record_rejection(self, target: ServingTarget, endpoint: str, exc: ServiceError, reason: str) -> None:
        self.metrics.rejected.labels(reason).inc()
        self.metrics.requests.labels(**target.labels, endpoint=endpoint, status=str(exc.status)).inc()

    # -------------------------------------------------------------------- run
    async def run(self, prepared: PreparedGeneration) -> GenerationResult:
        """Generate to completion (cancellation aborts the request in the engine)."""
        choices = {i: ChoiceResult(index=i) for i in range(prepared.sampling.n)}
        observation = _Observation()
        async for deltas in self.stream(prepared, observation):
            for delta in deltas:
                choice = choices[delta.index]
                choice.text += delta.text
                choice.token_count += delta.token_count
                choice.finish_reason = delta.finish_reason or choice.finish_reason
        return GenerationResult(
            target=prepared.target,
            choices=list(choices.values()),
            prompt_tokens=len(prepared.prompt_token_ids),
            completion_tokens=observation.completion_tokens,
            duration_seconds=time.monotonic() - observation.started,
            time_to_first_token_seconds=observation.time_to_first_token,
        )

    async def stream(
        self, prepared: PreparedGeneration, observation: _Observation | None = None
    ) -> AsyncIterator[list[GenerationDelta]]:
        """Yield each engine step's deltas; metrics are recorded when the stream ends."""
        observation = observation or _Observation()
        in_flight = self.metrics.in_flight.labels(prepared.target.base_model, prepared.target.model)
        in_flight.inc()
        status = "200"
        try:
            async for update in self.engine.generate(
                prepared.prompt_token_ids, prepared.sampling, prepared.target.adapter
            ):
                if update.queue_seconds is not None:
                    observation.queue_seconds = update.queue_seconds
                observation.saw_tokens(sum(d.token_count for d in update.deltas))
                yield update.deltas
        except EngineUnavailableError as exc:
            status = "503"
            raise EngineNotReadyError(str(exc)) from exc
        except EngineRequestError as exc:
            status = "400"
            raise InvalidRequestError(str(exc)) from exc
        except BaseException:
            status = "499"  # client went away (nginx's convention); the engine aborted the request
            raise
        finally:
            in_flight.dec()
            prepared.release()
            self._record_finished(prepared, observation, status)

    def _record_finished(self, prepared: PreparedGeneration, obs: _Observation, status: str) -> None:
        m, labels = self.metrics, prepared.target.labels
        now = time.monotonic()
        m.requests.labels(**labels, endpoint=prepared.endpoint, status=status).inc()
        m.request_duration.labels(**labels, endpoint=prepared.endpoint).observe(now - obs.started)
        m.prompt_tokens.labels(**labels).inc(len(prepared.prompt_token_ids))
        m.completion_tokens.labels(**labels).inc(obs.completion_tokens)
        if obs.time_to_first_token is not None:
            m.time_to_first_token.labels(**labels).observe(obs.time_to_first_token)
            if obs.completion_tokens > 1:
                per_token = (now - obs.first_token_at) / (obs.completion_tokens - 1)
                m.time_per_output_token.labels(**labels).observe(per_token)
        if obs.queue_seconds is not None:
            m.queue_time.labels(prepared.target.base_model, prepared.target.model).observe(obs.queue_seconds)


def _template_role(role: str) -> str:
    # OpenAI's newer "developer" role plays the part of "system" for chat templates.
    return "system" if role == "developer" else role
