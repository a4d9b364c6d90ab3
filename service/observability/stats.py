"""Rolling-window request statistics per model/adapter and per route variant (GET /v1/stats).

Prometheus answers the same questions over time from /metrics; this module answers them from the
service alone, in one JSON document, for the last few minutes. No HTTP, no vLLM: the completion
service feeds one RequestSample per finished request and the API layer asks for a StatsReport.

Definitions (documented in README "Observability"):
- errors: status >= 400 (client disconnects are 499 and count as errors).
- Latency and TTFT percentiles, tokens/s and mean token counts use successful (status < 400)
  requests only; percentiles interpolate linearly between closest ranks (numpy's default). This
  module's `percentile` and `mean` are the project's one convention (evaluation and loadtests too).
- tokens_per_second is the mean over successful requests with tokens of
  completion_tokens / duration_s: the speed one client sees, not the server's total throughput
  (that is the recording rule loragate_model:completion_tokens:rate_5m).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from statistics import fmean
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, Field

from service.errors import DependencyFailedError
from service.observability.metrics import NO_ROUTE

FiguresFrom = Literal["prometheus", "this_replica"]


@dataclass(frozen=True)
class RequestSample:
    finished_at: float  # time.time()
    base_model: str
    model: str  # served name: base model or adapter
    route: str  # "none" when direct
    variant: str  # "none" when direct
    endpoint: str  # "chat" | "completions" | "triage"
    status: int  # HTTP status
    duration_s: float
    ttft_s: float | None
    prompt_tokens: int
    completion_tokens: int
    structured_output: str | None  # "valid" | "invalid" | "truncated" | None (not structured)
    shadow: bool = False  # a mirrored request of a route's shadow target (never seen by a client)
    route_version: int = 0  # the route's version the request was routed by (0 when direct)


@dataclass(frozen=True)
class OutcomeSample:
    """What a task decided for one request (triage: category and priority), for route reports."""

    finished_at: float
    route: str
    variant: str
    shadow: bool
    labels: tuple[tuple[str, str], ...]  # e.g. (("category", "billing"), ("priority", "high"))
    needs_review: bool | None = None  # None: the task did not assess it
    confidence: tuple[tuple[str, float], ...] = ()  # per field, the probability of the label decided
    route_version: int = 0  # the route's version the request was routed by
    # A shadow's decision only: the variant that answered the client for the same request and the
    # labels it decided (None: no decision of the client's reply to compare with).
    paired_variant: str | None = None
    paired_labels: tuple[tuple[str, str], ...] | None = None


def agreement_pairs(outcomes: Iterable[OutcomeSample], variant: str, control: str) -> list[OutcomeSample]:
    """`variant`'s shadow decisions on requests the control answered, each with the control's labels."""
    return [o for o in outcomes if o.shadow and o.variant == variant and o.paired_variant == control
            and o.paired_labels is not None]


def agreement(pairs: Iterable[OutcomeSample]) -> dict[str, tuple[int, int]]:
    """Label key -> (pairs whose two decisions agree on it, pairs where both decided it)."""
    counts: dict[str, list[int]] = {}
    for pair in pairs:
        control = dict(pair.paired_labels or ())
        for key, value in pair.labels:
            if key in control:
                tally = counts.setdefault(key, [0, 0])
                tally[0] += value == control[key]
                tally[1] += 1
    return {key: (agreed, n) for key, (agreed, n) in sorted(counts.items())}


def figures_unavailable(message: str) -> DependencyFailedError:
    """What a sample source raises when it cannot answer (e.g. Prometheus unreachable): the guard
    holds, the report fails with 424 and this message."""
    return DependencyFailedError(message, code="figures_unavailable")


class RouteSampleSource(Protocol):
    """Where the rollout guard and the route report get a route's samples. `RequestStats` (this
    replica's requests) is the default; a fleet-wide source (Prometheus, see
    service/routing/prometheus_source.py) can stand in. `route_window` may block (it is called
    off the event loop) and raises `figures_unavailable(...)` when it cannot answer."""

    description: str  # said in the report: where its figures came from, and what they lose
    figures_from: FiguresFrom

    def route_window(self, route: str, window_s: float | None = None, now: float | None = None, *,
                     version: int | None = None) -> tuple[list[RequestSample], list[OutcomeSample]]: ...


class DecisionFigures(BaseModel):
    """A task's decisions for one group of requests (triage: how many a person must review)."""

    decisions: int = Field(description="Requests whose task decision was recorded.")
    needs_review_rate: float | None = Field(description="Share of assessed decisions flagged for review.")
    mean_confidence: dict[str, float] = Field(description="Field -> mean probability of the label decided.")
    urgent_rate: float | None = Field(description="Share of decisions with priority `urgent`.")


class GroupStats(BaseModel):
    """Figures for one model/adapter (`models`) or one route variant (`variants`)."""

    base_model: str | None = Field(None, description="Base model; for a variant, only if all its requests share one.")
    model: str | None = Field(None, description="Served model or adapter; for a variant, only if it served one.")
    kind: Literal["base", "adapter"] | None = Field(None, description="Set on `models` entries only.")
    route: str | None = Field(None, description="Set on `variants` entries only.")
    variant: str | None = Field(None, description="Set on `variants` entries only.")
    requests: int
    errors: int = Field(description="Requests answered with status >= 400.")
    error_rate: float
    latency_p50_s: float | None
    latency_p95_s: float | None
    ttft_p50_s: float | None
    ttft_p95_s: float | None
    tokens_per_second: float | None = Field(
        description="Mean of completion_tokens / duration over successful requests that produced tokens."
    )
    mean_prompt_tokens: float | None
    mean_completion_tokens: float | None
    structured_requests: int
    structured_valid_rate: float | None
    latency_p95_ratio_vs_base: float | None = Field(
        None, description="Adapter p95 latency / its base model's p95 in the same window (adapters only)."
    )
    decisions: DecisionFigures | None = Field(None, description="What the task decided (variants of routes "
                                              "that serve triage).")


def decision_figures(outcomes: Collection[OutcomeSample]) -> DecisionFigures | None:
    """None without decisions."""
    if not outcomes:
        return None
    assessed = [o.needs_review for o in outcomes if o.needs_review is not None]
    confidences: dict[str, list[float]] = {}
    for outcome in outcomes:
        for field, value in outcome.confidence:
            confidences.setdefault(field, []).append(value)
    priorities = [value for o in outcomes for key, value in o.labels if key == "priority"]
    return DecisionFigures(
        decisions=len(outcomes),
        needs_review_rate=sum(assessed) / len(assessed) if assessed else None,
        mean_confidence={field: fmean(values) for field, values in confidences.items()},
        urgent_rate=priorities.count("urgent") / len(priorities) if priorities else None,
    )


class StatsReport(BaseModel):
    window_seconds: float
    generated_at: float = Field(description="Unix time the window ends at.")
    models: list[GroupStats]
    variants: list[GroupStats]


def percentile(values: Collection[float], q: float) -> float | None:
    """The q-th percentile (q in 0-100, in any order) with numpy's default linear interpolation
    between closest ranks; None for no values."""
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else None


def mean(values: Collection[float]) -> float | None:
    """The arithmetic mean; None for no values (not 0: nothing was measured)."""
    return fmean(values) if len(values) else None


def _figures(samples: list[RequestSample]) -> dict[str, int | float | None]:
    ok = [s for s in samples if s.status < 400]
    errors = len(samples) - len(ok)
    latencies = [s.duration_s for s in ok]
    ttfts = [s.ttft_s for s in ok if s.ttft_s is not None]
    structured = [s for s in samples if s.structured_output is not None]
    valid = sum(1 for s in structured if s.structured_output == "valid")
    return {
        "requests": len(samples),
        "errors": errors,
        "error_rate": errors / len(samples),
        "latency_p50_s": percentile(latencies, 50),
        "latency_p95_s": percentile(latencies, 95),
        "ttft_p50_s": percentile(ttfts, 50),
        "ttft_p95_s": percentile(ttfts, 95),
        "tokens_per_second": mean([s.completion_tokens / s.duration_s for s in ok
                                   if s.completion_tokens > 0 and s.duration_s > 0]),
        "mean_prompt_tokens": mean([s.prompt_tokens for s in ok]),
        "mean_completion_tokens": mean([s.completion_tokens for s in ok]),
        "structured_requests": len(structured),
        "structured_valid_rate": valid / len(structured) if structured else None,
    }


def _group(samples: Iterable[RequestSample], key) -> dict[tuple[str, ...], list[RequestSample]]:  # noqa: ANN001
    groups: dict[tuple[str, ...], list[RequestSample]] = {}
    for sample in samples:
        groups.setdefault(key(sample), []).append(sample)
    return groups


def _only(values: Iterable[str]) -> str | None:
    distinct = set(values)
    return distinct.pop() if len(distinct) == 1 else None


class RequestStats:
    """The last `window_s` seconds of finished requests, at most `max_samples` of them.

    observe() is an append plus amortised O(1) eviction with no awaits, so calling it from the
    event loop needs no lock; report() copies the deque in one C-level step before reading it.
    """

    description = "in-process samples of this replica"
    figures_from: FiguresFrom = "this_replica"

    def __init__(self, window_s: float = 900.0, max_samples: int = 100_000) -> None:
        if window_s <= 0 or max_samples < 1:
            raise ValueError("window_s must be > 0 and max_samples >= 1")
        self.window_s = window_s
        self._samples: deque[RequestSample] = deque(maxlen=max_samples)
        self._outcomes: deque[OutcomeSample] = deque(maxlen=max_samples)

    def __len__(self) -> int:
        return len(self._samples)

    def observe(self, sample: RequestSample) -> None:
        self._samples.append(sample)  # maxlen drops the oldest once full
        self._evict(sample.finished_at)

    def observe_outcome(self, outcome: OutcomeSample) -> None:
        self._outcomes.append(outcome)
        self._evict(outcome.finished_at)

    def _evict(self, now: float) -> None:
        # Samples arrive in finish order, so the expired ones are at the left end.
        cutoff = now - self.window_s
        for samples in (self._samples, self._outcomes):
            while samples and samples[0].finished_at < cutoff:
                samples.popleft()

    def route_window(self, route: str, window_s: float | None = None, now: float | None = None, *,
                     version: int | None = None) -> tuple[list[RequestSample], list[OutcomeSample]]:
        """One route's request and outcome samples of the last `window_s` seconds (shadow
        included); with `version`, only those routed by that version of the route."""
        now = time.time() if now is None else now
        cutoff = now - (self.window_s if window_s is None else min(window_s, self.window_s))

        def wanted(sample: RequestSample | OutcomeSample) -> bool:
            return (sample.route == route and cutoff <= sample.finished_at <= now
                    and (version is None or sample.route_version == version))

        return [s for s in list(self._samples) if wanted(s)], [o for o in list(self._outcomes) if wanted(o)]

    def report(self, window_s: float | None = None, now: float | None = None) -> StatsReport:
        """Figures over the last `window_s` seconds (at most the configured window) before `now`."""
        now = time.time() if now is None else now
        window = self.window_s if window_s is None else min(window_s, self.window_s)
        self._evict(now)
        cutoff = now - window
        recent = [s for s in list(self._samples) if cutoff <= s.finished_at <= now]

        models: list[GroupStats] = []
        for (base, model), group in _group(recent, lambda s: (s.base_model, s.model)).items():
            kind = "base" if model == base else "adapter"
            models.append(GroupStats(base_model=base, model=model, kind=kind, **_figures(group)))
        base_p95 = {g.base_model: g.latency_p95_s for g in models if g.kind == "base"}
        for g in models:
            reference = base_p95.get(g.base_model)
            if g.kind == "adapter" and g.latency_p95_s is not None and reference:
                g.latency_p95_ratio_vs_base = g.latency_p95_s / reference
        models.sort(key=lambda g: (g.base_model or "", g.kind != "base", g.model or ""))

        routed = (s for s in recent if s.route != NO_ROUTE and not s.shadow)
        decided = [o for o in list(self._outcomes) if cutoff <= o.finished_at <= now and not o.shadow]
        variants = [
            GroupStats(route=route, variant=variant, base_model=_only(s.base_model for s in group),
                       model=_only(s.model for s in group), **_figures(group),
                       decisions=decision_figures([o for o in decided if (o.route, o.variant) == (route, variant)]))
            for (route, variant), group in sorted(_group(routed, lambda s: (s.route, s.variant)).items())
        ]
        return StatsReport(window_seconds=window, generated_at=now, models=models, variants=variants)
