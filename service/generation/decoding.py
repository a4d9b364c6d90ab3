"""The one decoding loop behind every reply, streamed or not: engine attempts, structured-output
fallbacks and retries, and the verdict on the reply.

One rule decides whether another attempt may replace the current one: nothing of it has reached
the client yet. A reply that is not streamed is never sent before it is done; a structured stream
holds back its latest step until the verdict, so an attempt whose whole output is still held can
be replaced too. Then:
- a backend that cannot compile the constraint (or fails the request) hands over to the next one;
- a reply cut off by max_tokens is retried once on the same backend with the budget the caller
  reserved (`retry_truncated_max_tokens`);
- a reply that fails validation is retried on the next backend;
- when no backend is left: a strict request fails with 502 (with every backend's reason), any
  other gets the last reply, flagged invalid.
Once output has been sent, a failure ends the stream: with strict, its held last step is withheld.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from service.engine import (
    Engine,
    EngineRequestError,
    EngineUnavailableError,
    GenerationDelta,
    GenerationFailedError,
)
from service.errors import EngineNotReadyError, InvalidRequestError, UpstreamGenerationError
from service.generation.accounting import Accounting, Observation
from service.generation.types import ChoiceResult, GenerationResult, PreparedGeneration
from service.structured import DecodingAttempt, StructuredPolicy, checked_output, combined_verdict, first_violation

# What the loop yields: each step's deltas (when streaming), and once the reply's result. The result
# comes before a structured stream's held last step, so the verdict is known when it is written.
DecodingEvent = list[GenerationDelta] | GenerationResult


class _ConstraintRefused(Exception):
    """One backend could not compile the request's constraint (another may)."""


class Decoder:
    def __init__(self, engine: Engine, policy: StructuredPolicy, accounting: Accounting) -> None:
        self.engine = engine
        self.policy = policy
        self.accounting = accounting

    async def run(self, prepared: PreparedGeneration) -> GenerationResult:
        """Decode to completion; nothing is sent before the reply is done."""
        result: GenerationResult | None = None
        async for event in self.decode(prepared, stream=False):
            if isinstance(event, GenerationResult):
                result = event
        assert result is not None, "the decoding loop ends with a result or raises"
        return result

    async def decode(self, prepared: PreparedGeneration, stream: bool) -> AsyncIterator[DecodingEvent]:
        """The decoding loop (see the module's docstring); records the request once, whatever happens."""
        observation = Observation()
        structured = prepared.structured
        attempts = self._backends(prepared)
        refusals: list[str] = []
        fallback: tuple[GenerationResult, list[GenerationDelta] | None] | None = None
        max_tokens: int | None = None
        sent = False
        with self.accounting.track(prepared, observation):
            while attempts:
                attempt = attempts.pop(0)
                observation.start_attempt()
                choices = {i: ChoiceResult(index=i) for i in range(prepared.sampling.n)}
                held: list[GenerationDelta] | None = None  # structured streams: the latest step
                try:
                    async for deltas in self._engine_steps(prepared, observation, attempt, max_tokens):
                        for delta in deltas:
                            _add(choices[delta.index], delta)
                        if not stream:
                            continue
                        if structured is None:
                            sent = True
                            yield deltas
                            continue
                        if held is not None:
                            sent = True
                            yield held
                        held = deltas
                except _ConstraintRefused as exc:
                    if sent:
                        raise UpstreamGenerationError(f"Structured generation failed mid-stream: {exc}") from exc
                    refusals.append(f"{attempt}: {exc}")
                    self.accounting.retried(prepared, observation, "backend_refused")
                    continue
                result = _result(prepared, observation, choices, attempt)
                if structured is None:
                    yield result
                    return
                checked = [checked_output(structured, c.text, c.finish_reason) for c in result.choices]
                verdict = result.structured_output = observation.structured_output = combined_verdict(
                    v for v, _ in checked)
                result.structured_value = checked[0][1]
                if not sent and verdict == "truncated" and prepared.retry_truncated_max_tokens and max_tokens is None:
                    max_tokens = prepared.retry_truncated_max_tokens
                    attempts.insert(0, attempt)
                    self.accounting.retried(prepared, observation, "truncated")
                    fallback = (result, held)  # what is left if the retry's backend then refuses
                    continue
                if verdict == "invalid" and not sent:
                    why = first_violation(structured, (c.text for c in result.choices))
                    refusals.append(f"{attempt}: the output did not validate against the schema"
                                    + (f" ({why})" if why else ""))
                    fallback = (result, held)
                    if attempts:
                        self.accounting.retried(prepared, observation, "invalid_output")
                    continue
                yield result
                if verdict == "invalid" and structured.strict:  # only a stream that already sent output
                    # Truncation is reported by finish_reason "length", as in replies that are not streamed.
                    raise UpstreamGenerationError(
                        "The streamed output did not validate against the schema; with strict, its last chunk "
                        "is withheld. Try a simpler schema.",
                    )
                if held is not None:
                    yield held
                return
            given_up = _give_up(prepared, refusals, fallback)
            observation.cached_prompt_tokens = given_up.cached_prompt_tokens  # the attempt the client receives
            yield given_up
            if fallback is not None and fallback[1] is not None:
                yield fallback[1]

    def _backends(self, prepared: PreparedGeneration) -> list[DecodingAttempt | None]:
        constraint = prepared.sampling.structured
        return [None] if constraint is None else list(self.policy.attempts(constraint))

    async def _engine_steps(
        self, prepared: PreparedGeneration, observation: Observation, attempt: DecodingAttempt | None,
        max_tokens: int | None,
    ) -> AsyncIterator[list[GenerationDelta]]:
        try:
            async for update in self.engine.generate(
                prepared.prompt_token_ids, prepared.sampling_for(attempt, max_tokens), prepared.target.adapter,
                priority=prepared.priority, cache_salt=prepared.cache_salt,
            ):
                if update.queue_seconds is not None and observation.queue_seconds is None:
                    observation.queue_seconds = update.queue_seconds
                if update.cached_prompt_tokens is not None:
                    observation.cached_prompt_tokens = update.cached_prompt_tokens
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


def _give_up(
    prepared: PreparedGeneration, refusals: list[str],
    fallback: tuple[GenerationResult, list[GenerationDelta] | None] | None,
) -> GenerationResult:
    """No backend is left: refuse the constraint, fail a strict request, or return the last
    invalid reply (best effort, flagged invalid in the response)."""
    structured = prepared.structured
    assert structured is not None
    if fallback is None:
        raise InvalidRequestError(
            "No structured-output backend supports this constraint: " + "; ".join(refusals),
            param=structured.param, code="unsupported_constraint",
        )
    result = fallback[0]
    if structured.strict:
        raise UpstreamGenerationError(
            "No backend produced output that validates against the schema (tried "
            + "; ".join(refusals or [str(result.structured_backend)])
            + "). Try a larger max_tokens or a simpler schema.",
        )
    return result


def _result(prepared: PreparedGeneration, observation: Observation, choices: dict[int, ChoiceResult],
            attempt: DecodingAttempt | None) -> GenerationResult:
    return GenerationResult(
        target=prepared.target,
        choices=list(choices.values()),
        prompt_tokens=len(prepared.prompt_token_ids),
        completion_tokens=sum(c.token_count for c in choices.values()),
        duration_seconds=time.monotonic() - observation.started,
        time_to_first_token_seconds=observation.time_to_first_token,
        structured_backend=str(attempt) if attempt else None,
        attempts=observation.attempts,
        cached_prompt_tokens=observation.cached_prompt_tokens,
    )


def _add(choice: ChoiceResult, delta: GenerationDelta) -> None:
    choice.text += delta.text
    choice.token_count += delta.token_count
    choice.finish_reason = delta.finish_reason or choice.finish_reason
    if delta.logprobs is not None:
        choice.logprobs = (choice.logprobs or []) + delta.logprobs
