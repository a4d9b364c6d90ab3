"""Request accounting: every request is counted once in the metrics and the rolling stats,
whatever its outcome (served, refused, failed, or abandoned by the client)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from service.errors import ServiceError, failure_of
from service.generation.types import PreparedGeneration
from service.observability import NO_ROUTE, Metrics, OutcomeSample, RequestSample, RequestStats
from service.routing import RolloutGuard, ServingTarget
from service.structured import ValidationResult


@dataclass
class Observation:
    """Timing and token bookkeeping for one request (all its attempts)."""

    started: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    completion_tokens: int = 0  # of the attempt whose output the client receives
    attempts: int = 0
    queue_seconds: float | None = None
    cached_prompt_tokens: int | None = None  # of the attempt whose output the client receives (None: not reported)
    status: str = "200"
    structured_output: ValidationResult | None = None

    @property
    def time_to_first_token(self) -> float | None:
        return self.first_token_at - self.started if self.first_token_at is not None else None

    def saw_tokens(self, count: int) -> None:
        if count and self.first_token_at is None:
            self.first_token_at = time.monotonic()
        self.completion_tokens += count

    def start_attempt(self) -> None:
        self.attempts += 1

    def discard_attempt(self) -> int:
        """Forget the current attempt's tokens (its output is thrown away); returns how many."""
        discarded, self.completion_tokens = self.completion_tokens, 0
        self.cached_prompt_tokens = None
        return discarded


class Accounting:
    """Records finished and refused requests into Prometheus metrics and the rolling stats."""

    def __init__(self, metrics: Metrics, stats: RequestStats | None = None, rollout: RolloutGuard | None = None) -> None:
        self.metrics = metrics
        self.stats = stats
        self.rollout = rollout

    def track(self, prepared: PreparedGeneration, observation: Observation) -> Tracked:
        return Tracked(self, prepared, observation)

    def refused(self, reason: str) -> None:
        """A request refused before its target was known (no per-model series)."""
        self.metrics.rejected.labels(reason).inc()

    def finished(self, prepared: PreparedGeneration, obs: Observation) -> None:
        m, labels = self.metrics, prepared.target.labels
        duration = time.monotonic() - obs.started
        if prepared.is_shadow:
            # Client-facing series describe what clients received; mirrors are counted apart.
            m.shadow_requests.labels(prepared.target.route, prepared.target.variant, obs.status).inc()
            self._observe_stats(prepared.target, prepared.endpoint, int(obs.status), duration,
                                obs.time_to_first_token, len(prepared.prompt_token_ids), obs.completion_tokens,
                                obs.structured_output, shadow=True)
            return
        m.requests.labels(**labels, endpoint=prepared.endpoint, status=obs.status).inc()
        m.request_duration.labels(**labels, endpoint=prepared.endpoint).observe(duration)
        m.prompt_tokens.labels(**labels).inc(len(prepared.prompt_token_ids))
        if obs.cached_prompt_tokens is not None:
            m.prompt_cached_tokens.labels(**labels).inc(obs.cached_prompt_tokens)
        m.completion_tokens.labels(**labels).inc(obs.completion_tokens)
        ttft = obs.time_to_first_token
        if ttft is not None:
            m.time_to_first_token.labels(**labels).observe(ttft)
            if obs.completion_tokens > 1:
                m.time_per_output_token.labels(**labels).observe((duration - ttft) / (obs.completion_tokens - 1))
        if obs.queue_seconds is not None:
            m.queue_time.labels(prepared.target.base_model, prepared.target.model).observe(obs.queue_seconds)
        if obs.structured_output in ("valid", "invalid", "truncated"):
            m.structured_outputs.labels(**labels, result=obs.structured_output).inc()
        self._observe_stats(prepared.target, prepared.endpoint, int(obs.status), duration, ttft,
                            len(prepared.prompt_token_ids), obs.completion_tokens, obs.structured_output)
        if self.rollout is not None and prepared.target.route != NO_ROUTE:
            self.rollout.request_finished(prepared.target.route)

    def retried(self, prepared: PreparedGeneration, obs: Observation, reason: str) -> None:
        """Another engine attempt for the same request: counted apart, its tokens not in usage."""
        discarded = obs.discard_attempt()
        if prepared.is_shadow:
            return
        labels = prepared.target.labels
        self.metrics.generation_retries.labels(**labels, reason=reason).inc()
        self.metrics.discarded_completion_tokens.labels(**labels).inc(discarded)

    def decided(self, target: ServingTarget, labels: dict[str, str], shadow: bool, needs_review: bool | None,
                confidence: dict[str, float], paired: tuple[str, dict[str, str]] | None = None) -> None:
        """A task's decision on one request: its review flag and confidence in the metrics (client
        traffic), and, for a routed request, an outcome sample for route reports and /v1/stats.
        `paired` (a shadow's decision): the variant that answered the client and its labels."""
        if not shadow:
            if needs_review:
                self.metrics.triage_needs_review.labels(**target.labels).inc()
            for field, value in confidence.items():
                self.metrics.triage_confidence.labels(**target.labels, field=field).observe(value)
        if self.stats is None or target.route == NO_ROUTE:
            return
        self.stats.observe_outcome(OutcomeSample(
            finished_at=time.time(), route=target.route, variant=target.variant, shadow=shadow,
            labels=tuple(labels.items()), needs_review=needs_review, confidence=tuple(confidence.items()),
            route_version=target.route_version, paired_variant=paired[0] if paired else None,
            paired_labels=tuple(paired[1].items()) if paired else None,
        ))

    def rejected(self, target: ServingTarget, endpoint: str, exc: ServiceError, reason: str) -> None:
        """A request refused after its target was resolved (counted per model)."""
        self.metrics.rejected.labels(reason).inc()
        self.metrics.requests.labels(**target.labels, endpoint=endpoint, status=str(exc.status)).inc()
        self._observe_stats(target, endpoint, exc.status, 0.0, None, 0, 0, None)

    def _observe_stats(self, target: ServingTarget, endpoint: str, status: int, duration: float,
                       ttft: float | None, prompt_tokens: int, completion_tokens: int,
                       structured_output: str | None, shadow: bool = False) -> None:
        if self.stats is None:
            return
        self.stats.observe(RequestSample(
            finished_at=time.time(), base_model=target.base_model, model=target.model, route=target.route,
            variant=target.variant, endpoint=endpoint, status=status, duration_s=duration, ttft_s=ttft,
            prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
            structured_output=structured_output if structured_output != "unchecked" else None, shadow=shadow,
            route_version=target.route_version,
        ))


class Tracked:
    """Counts a request in flight while it runs, then records it exactly once."""

    def __init__(self, accounting: Accounting, prepared: PreparedGeneration, observation: Observation) -> None:
        self.accounting, self.prepared, self.observation = accounting, prepared, observation
        target = prepared.target
        self.in_flight = accounting.metrics.in_flight.labels(target.base_model, target.model)

    def __enter__(self) -> Observation:
        self.in_flight.inc()
        return self.observation

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        self.in_flight.dec()
        if exc is not None:
            self.observation.status = failure_of(exc).outcome
        self.accounting.finished(self.prepared, self.observation)
