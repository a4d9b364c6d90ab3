"""Result models of an evaluation run and the summary of one target x mode (pure: outcomes in,
metrics out)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal, get_args

from pydantic import BaseModel

from service.evaluation import metrics
from service.evaluation.dataset import CATEGORIES, PRIORITIES
from service.evaluation.thresholds import CalibrationSummary
from service.observability.stats import mean, percentile

# Constrained: POST /v1/tickets/triage; unconstrained: chat with the same prompt.
TriageMode = Literal["constrained", "unconstrained"]
TRIAGE_MODES: tuple[TriageMode, ...] = get_args(TriageMode)
Mode = Literal[TriageMode, "voice"]

# Shown in report.md and report.json so every figure is defined where it is read.
DEFINITIONS = {
    "n": "examples sent",
    "errors": "requests with no usable answer other than a 502 (other 4xx/5xx, timeouts, connection failures); "
              "counted as wrong, never retried except connection failures",
    "json_parse_rate": "replies that are one JSON object (whole reply, stripped) / n; constrained: 200 replies / n",
    "schema_valid_rate": "replies that validate as TicketTriage / n (constrained: a 502 is not valid)",
    "category_accuracy": "correct category / n (invalid outputs and errors count as wrong)",
    "priority_accuracy": "correct priority / n (invalid outputs and errors count as wrong)",
    "category_macro_f1": "unweighted mean of per-category F1 over categories present in labels or predictions",
    "priority_macro_f1": "unweighted mean of per-priority F1 over priorities present in labels or predictions",
    "misrouted_per_1000": "tickets with a wrong (or no) category per 1,000 tickets",
    "urgent_recall": "urgent tickets predicted urgent / urgent tickets",
    "urgent_missed": "urgent tickets not predicted urgent (count)",
    "over_escalations": "predicted priority above the true one (count; per_1000 over n); invalid outputs excluded",
    "under_escalations": "predicted priority below the true one (count; per_1000 over n); invalid outputs excluded",
    "latency_p50_ms/latency_p95_ms": "client-side wall time per request with an HTTP response (linear interpolation)",
    "mean_prompt_tokens/mean_completion_tokens": "per request, from `usage` or `meta` (requests that report them)",
}


class Outcome(BaseModel):
    """One example sent to one target in one mode."""

    id: str
    true_category: str
    true_priority: str
    status: int | None
    parsed_json: bool
    schema_valid: bool
    category: str | None  # predicted; None unless schema-valid
    priority: str | None
    error: str | None
    latency_s: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    served_by: str | None  # x-loragate-model (and variant), useful for A/B routes
    output: str | None  # the triage or reply text (truncated), to inspect failures
    # Constrained replies' meta, as served (issue 26); None when the reply had none.
    probabilities: dict[str, dict[str, float]] | None = None  # field -> label -> probability
    confidence: dict[str, float] | None = None  # field -> probability of the returned label
    needs_review: bool | None = None
    review_reasons: list[str] | None = None
    policy: dict[str, Any] | None = None  # thresholds and temperatures the reply was decided with


class Confusion(BaseModel):
    rows: list[str]  # true labels
    columns: list[str]  # predicted labels, then metrics.INVALID
    matrix: list[list[int]]


class TriageMetrics(BaseModel):
    n: int
    errors: int
    error_messages: dict[str, int]
    json_parse_rate: float | None
    schema_valid_rate: float | None
    category_accuracy: float | None
    priority_accuracy: float | None
    category_macro_f1: float | None
    priority_macro_f1: float | None
    category_f1: dict[str, float | None]
    priority_f1: dict[str, float | None]
    category_confusion: Confusion
    priority_confusion: Confusion
    misrouted: int
    misrouted_per_1000: float | None
    urgent_tickets: int
    urgent_recall: float | None
    urgent_missed: int
    over_escalations: int
    over_escalations_per_1000: float | None
    under_escalations: int
    under_escalations_per_1000: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    mean_prompt_tokens: float | None
    mean_completion_tokens: float | None
    served_by: dict[str, int]


class VoiceOutcome(BaseModel):
    id: str
    status: int | None
    error: str | None
    latency_s: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    reply: str | None
    scores: dict[str, float | int | bool | list[str] | None] | None  # VoiceScores (`invented` lists specifics)


class VoiceMetrics(BaseModel):
    n: int
    errors: int
    error_messages: dict[str, int]
    measures: dict[str, float | None]
    delta_vs_base: dict[str, float | None] | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    mean_prompt_tokens: float | None
    mean_completion_tokens: float | None


class ModeResult(BaseModel):
    target: str  # as named on the command line ("base", an adapter or a route)
    model: str  # the name sent as `model`
    mode: Mode
    metrics: TriageMetrics | VoiceMetrics
    outcomes: list[Outcome] | list[VoiceOutcome]
    calibration: CalibrationSummary | None = None  # constrained triage replies with probabilities only


class EvalReport(BaseModel):
    kind: Literal["triage", "voice"]
    command: str
    date: str  # UTC, ISO 8601
    url: str
    dataset: str
    dataset_sha256: str
    n: int
    base_model: str
    max_tokens: int
    concurrency: int
    style_source: str | None = None  # voice: where the brand constants came from
    definitions: dict[str, str]
    results: list[ModeResult]
    duration_s: float


def summarize_triage(outcomes: Sequence[Outcome]) -> TriageMetrics:
    n = len(outcomes)
    true_c = [o.true_category for o in outcomes]
    true_p = [o.true_priority for o in outcomes]
    pred_c = [o.category if o.schema_valid else None for o in outcomes]
    pred_p = [o.priority if o.schema_valid else None for o in outcomes]
    errors = [o.error for o in outcomes if o.error]
    over, under = metrics.escalations(true_p, pred_p)
    wrong_category = sum(t != p for t, p in zip(true_c, pred_c))
    latencies = [1000 * o.latency_s for o in outcomes if o.status is not None and o.latency_s is not None]
    return TriageMetrics(
        n=n,
        errors=len(errors),
        error_messages=dict(Counter(errors).most_common(10)),
        json_parse_rate=metrics.rate(sum(o.parsed_json for o in outcomes), n),
        schema_valid_rate=metrics.rate(sum(o.schema_valid for o in outcomes), n),
        category_accuracy=metrics.accuracy(true_c, pred_c),
        priority_accuracy=metrics.accuracy(true_p, pred_p),
        category_macro_f1=metrics.macro_f1(true_c, pred_c, CATEGORIES),
        priority_macro_f1=metrics.macro_f1(true_p, pred_p, PRIORITIES),
        category_f1=metrics.per_class_f1(true_c, pred_c, CATEGORIES),
        priority_f1=metrics.per_class_f1(true_p, pred_p, PRIORITIES),
        category_confusion=_confusion(true_c, pred_c, CATEGORIES),
        priority_confusion=_confusion(true_p, pred_p, PRIORITIES),
        misrouted=wrong_category,
        misrouted_per_1000=metrics.per_1000(wrong_category, n),
        urgent_tickets=sum(t == metrics.URGENT for t in true_p),
        urgent_recall=metrics.urgent_recall(true_p, pred_p),
        urgent_missed=metrics.urgent_missed(true_p, pred_p),
        over_escalations=over,
        over_escalations_per_1000=metrics.per_1000(over, n),
        under_escalations=under,
        under_escalations_per_1000=metrics.per_1000(under, n),
        latency_p50_ms=percentile(latencies, 50),
        latency_p95_ms=percentile(latencies, 95),
        mean_prompt_tokens=mean([o.prompt_tokens for o in outcomes if o.prompt_tokens is not None]),
        mean_completion_tokens=mean([o.completion_tokens for o in outcomes if o.completion_tokens is not None]),
        served_by=dict(Counter(o.served_by for o in outcomes if o.served_by)),
    )


def summarize_voice(outcomes: Sequence[VoiceOutcome], measures: dict[str, float | None],
                    delta: dict[str, float | None] | None) -> VoiceMetrics:
    errors = [o.error for o in outcomes if o.error]
    latencies = [1000 * o.latency_s for o in outcomes if o.status is not None and o.latency_s is not None]
    return VoiceMetrics(
        n=len(outcomes), errors=len(errors), error_messages=dict(Counter(errors).most_common(10)),
        measures=measures, delta_vs_base=delta,
        latency_p50_ms=percentile(latencies, 50), latency_p95_ms=percentile(latencies, 95),
        mean_prompt_tokens=mean([o.prompt_tokens for o in outcomes if o.prompt_tokens is not None]),
        mean_completion_tokens=mean([o.completion_tokens for o in outcomes if o.completion_tokens is not None]),
    )


def _confusion(true: list[str], pred: list[str | None], labels: Sequence[str]) -> Confusion:
    return Confusion(rows=list(labels), columns=[*labels, metrics.INVALID],
                     matrix=metrics.confusion_matrix(true, pred, labels))
