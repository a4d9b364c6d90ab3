"""Calibration of served triage label probabilities (pure maths: outcomes in, figures out).

What a triage reply carries (issue 26): `meta.probabilities` per field over the schema's labels,
already temperature-scaled by the server (`meta.policy.temperature`), and the decision the server
took from them. This module reproduces that decision for any threshold, so a curve can show what
each threshold would have done on the same answers:
- category = the most probable category; its confidence is its probability;
- priority = `urgent` when P(urgent) >= urgent_threshold, otherwise the most probable priority;
- flagged for review when confidence.category < review_threshold, confidence.priority <
  priority_review_threshold, or for a reason no threshold changes (input_truncated, ...), and always
  when the reply has no probabilities (or no valid answer at all).
Rates are over every ticket sent (n), like the rest of the evaluation: a ticket with no answer is
never "covered".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.evaluation import metrics
from service.observability.stats import mean

FIELDS = ("category", "priority")
BINS = 10  # equal-width confidence bins of the ECE and the reliability diagram
GRID = tuple(i / 100 for i in range(101))  # the thresholds each curve is drawn over
LOW_CONFIDENCE = {"category": "low_category_confidence", "priority": "low_priority_confidence"}
T_MIN, T_MAX, T_GRID = 0.05, 10.0, 400  # temperature search: log-spaced grid, then golden section
PROB_FLOOR = 1e-12  # NLL of a true label served with probability 0: -log(PROB_FLOOR), whatever T

CALIBRATION_DEFINITIONS = {
    "ECE": f"expected calibration error: over {BINS} equal-width bins of the returned label's confidence, the "
           "bin-size-weighted mean of |accuracy - mean confidence| (replies with probabilities only)",
    "coverage": "tickets not flagged for review / n (no reply, no probabilities and input_truncated are always flagged)",
    "accuracy (not flagged)": "correct category among the tickets not flagged for review",
    "over-escalation": "non-urgent tickets predicted urgent / non-urgent tickets (invalid outputs are not urgent)",
    "temperature fit": "T minimising the mean negative log-likelihood of the true label of p_i proportional to "
                       "p_i^(1/T) over the served probabilities; the file stores served T x fitted T",
}


class Scored(Protocol):
    """What calibration reads of one evaluated ticket (results.Outcome has these fields)."""

    true_category: str
    true_priority: str
    schema_valid: bool
    category: str | None
    priority: str | None
    probabilities: dict[str, dict[str, float]] | None
    confidence: dict[str, float] | None
    needs_review: bool | None
    review_reasons: list[str] | None
    policy: dict[str, Any] | None


class FieldTemperature(BaseModel):
    model_config = ConfigDict(frozen=True)

    category: float = Field(1.0, gt=0)
    priority: float = Field(1.0, gt=0)


class ServedPolicy(BaseModel):
    """`meta.policy` of a reply: the thresholds and temperatures it was decided with."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    urgent_threshold: float
    review_threshold: float
    priority_review_threshold: float = 0.0
    temperature: FieldTemperature = FieldTemperature()


class ReliabilityBin(BaseModel):
    lower: float
    upper: float
    n: int
    mean_confidence: float | None
    accuracy: float | None


class FieldCalibration(BaseModel):
    n: int  # replies with a confidence for this field
    ece: float | None
    bins: list[ReliabilityBin]


class CoveragePoint(BaseModel):
    threshold: float  # review threshold on category confidence
    not_flagged: int
    coverage: float | None
    accuracy: float | None  # category accuracy among the tickets not flagged


class UrgentPoint(BaseModel):
    threshold: float  # urgent threshold on P(urgent)
    urgent_recall: float | None
    over_escalation: float | None


class Decision(NamedTuple):
    category: str | None
    priority: str | None
    category_confidence: float | None
    priority_confidence: float | None
    needs_review: bool


def policy_of(raw: Mapping[str, Any] | None) -> ServedPolicy | None:
    """The served policy, or None when the reply had none (or an unreadable one)."""
    if raw is None:
        return None
    try:
        return ServedPolicy.model_validate(raw)
    except ValidationError:
        return None


# ------------------------------------------------------------------ reliability and ECE
def reliability(confidences: Sequence[float], correct: Sequence[bool], bins: int = BINS) -> FieldCalibration:
    """Equal-width bins [i/bins, (i+1)/bins), the last one closed at 1; ECE = sum_b n_b/n |acc_b - conf_b|."""
    if len(confidences) != len(correct):
        raise ValueError(f"{len(confidences)} confidences but {len(correct)} outcomes")
    members: list[list[int]] = [[] for _ in range(bins)]
    for i, confidence in enumerate(confidences):
        members[min(int(math.floor(confidence * bins)), bins - 1)].append(i)
    rows = []
    gap = 0.0
    for b, index in enumerate(members):
        conf = mean([confidences[i] for i in index])
        acc = mean([float(correct[i]) for i in index])
        rows.append(ReliabilityBin(lower=b / bins, upper=(b + 1) / bins, n=len(index), mean_confidence=conf, accuracy=acc))
        if index:
            gap += len(index) * abs(acc - conf)  # type: ignore[operator]
    n = len(confidences)
    return FieldCalibration(n=n, ece=gap / n if n else None, bins=rows)


def served_reliability(outcomes: Sequence[Scored], field: str) -> FieldCalibration:
    """Reliability of what was served: `meta.confidence` of the returned label vs the true label."""
    confidences, correct = [], []
    for o in outcomes:
        label = getattr(o, field) if o.schema_valid else None
        confidence = (o.confidence or {}).get(field)
        if confidence is None and o.probabilities and label is not None:
            confidence = o.probabilities.get(field, {}).get(label)
        if label is not None and confidence is not None:
            confidences.append(float(confidence))
            correct.append(label == getattr(o, f"true_{field}"))
    return reliability(confidences, correct)


def decided_reliability(outcomes: Sequence[Scored], decisions: Sequence[Decision], field: str) -> FieldCalibration:
    """Reliability of recomputed decisions (e.g. after a temperature fit)."""
    pairs = [(d.category_confidence if field == "category" else d.priority_confidence,
              (d.category if field == "category" else d.priority) == getattr(o, f"true_{field}"))
             for o, d in zip(outcomes, decisions)]
    kept = [(c, ok) for c, ok in pairs if c is not None]
    return reliability([c for c, _ in kept], [ok for _, ok in kept])


# ------------------------------------------------------------------ temperature
def scale(probabilities: Mapping[str, float], temperature: float) -> dict[str, float]:
    """p_i proportional to p_i^(1/T), renormalised (a zero stays zero); T = 1 only renormalises."""
    labels = list(probabilities)
    values = np.asarray([probabilities[label] for label in labels], dtype=float)
    if not values.sum() > 0:
        return dict(probabilities)  # nothing to renormalise
    with np.errstate(divide="ignore"):
        logs = np.log(values) / temperature
    weights = np.exp(logs - np.max(logs))
    return dict(zip(labels, (float(w) for w in weights / weights.sum())))


def scale_all(probabilities: Sequence[dict[str, dict[str, float]] | None],
              temperature: FieldTemperature) -> list[dict[str, dict[str, float]] | None]:
    return [None if p is None else {field: scale(values, getattr(temperature, field)) for field, values in p.items()
                                    if field in FIELDS} for p in probabilities]


def mean_nll(outcomes: Sequence[Scored], field: str, temperature: float) -> float | None:
    """Mean -log p_T(true label) over the replies with probabilities for `field`."""
    logs, truth = _log_matrix(outcomes, field)
    return float(_nll(logs, truth, 1.0 / temperature)) if len(truth) else None


def fit_temperature(outcomes: Sequence[Scored], field: str) -> float:
    """The T in [T_MIN, T_MAX] minimising the mean NLL of the true label: a log-spaced grid, then a
    golden-section search between the best point's neighbours (the NLL is convex in 1/T, so it has
    one minimum). 1.0 when no reply has probabilities."""
    logs, truth = _log_matrix(outcomes, field)
    if not len(truth):
        return 1.0
    grid = np.geomspace(T_MIN, T_MAX, T_GRID)
    best = int(np.argmin([_nll(logs, truth, 1.0 / t) for t in grid]))
    low, high = math.log(grid[max(best - 1, 0)]), math.log(grid[min(best + 1, T_GRID - 1)])
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(60):  # golden section on log T
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        if _nll(logs, truth, math.exp(-a)) <= _nll(logs, truth, math.exp(-b)):
            high = b
        else:
            low = a
    return math.exp((low + high) / 2)


def _log_matrix(outcomes: Sequence[Scored], field: str) -> tuple[np.ndarray, np.ndarray]:
    """log p of every label (rows: replies with probabilities whose true label is among them)."""
    rows, truth = [], []
    for o in outcomes:
        probabilities = (o.probabilities or {}).get(field)
        true = getattr(o, f"true_{field}")
        if probabilities and true in probabilities:
            labels = list(probabilities)
            rows.append([probabilities[label] for label in labels])
            truth.append(labels.index(true))
    width = max((len(r) for r in rows), default=0)
    matrix = np.zeros((len(rows), width))  # ragged rows (never in practice) pad with probability 0
    for i, row in enumerate(rows):
        matrix[i, :len(row)] = row
    with np.errstate(divide="ignore"):
        return np.log(matrix), np.asarray(truth, dtype=int)


def _nll(logs: np.ndarray, truth: np.ndarray, beta: float) -> float:
    scaled = logs * beta
    top = np.max(scaled, axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.sum(np.exp(scaled - top), axis=1))
    true = scaled[np.arange(len(truth)), truth]
    return float(np.mean(np.where(np.isfinite(true), lse - true, -math.log(PROB_FLOOR))))


# ------------------------------------------------------------------ decisions and curves
def decide(outcome: Scored, probabilities: dict[str, dict[str, float]] | None, urgent_threshold: float,
           review_threshold: float, priority_review_threshold: float = 0.0) -> Decision:
    """The served policy applied to `probabilities` (the served ones or rescaled ones). Without
    probabilities the served labels stand and the ticket is flagged."""
    if not probabilities or not all(probabilities.get(field) for field in FIELDS):
        served = outcome.schema_valid
        return Decision(outcome.category if served else None, outcome.priority if served else None, None, None, True)
    categories, priorities = probabilities["category"], probabilities["priority"]
    category = _argmax(categories)
    urgent = priorities.get(metrics.URGENT)
    priority = metrics.URGENT if urgent is not None and urgent >= urgent_threshold else _argmax(priorities)
    fixed = set(outcome.review_reasons or ()) - set(LOW_CONFIDENCE.values())  # reasons no threshold moves
    flagged = (categories[category] < review_threshold or priorities[priority] < priority_review_threshold
               or bool(fixed) or not outcome.schema_valid)
    return Decision(category, priority, categories[category], priorities[priority], flagged)


def coverage_point(outcomes: Sequence[Scored], decisions: Sequence[Decision], threshold: float) -> CoveragePoint:
    kept = [o.true_category == d.category for o, d in zip(outcomes, decisions) if not d.needs_review]
    return CoveragePoint(threshold=threshold, not_flagged=len(kept), coverage=metrics.rate(len(kept), len(outcomes)),
                         accuracy=metrics.rate(sum(kept), len(kept)))


def urgent_point(outcomes: Sequence[Scored], decisions: Sequence[Decision], threshold: float) -> UrgentPoint:
    true = [o.true_priority for o in outcomes]
    pred = [d.priority for d in decisions]
    return UrgentPoint(threshold=threshold, urgent_recall=metrics.urgent_recall(true, pred),
                       over_escalation=over_escalation(true, pred))


def over_escalation(true: Sequence[str], pred: Sequence[str | None]) -> float | None:
    """Non-urgent tickets predicted urgent / non-urgent tickets (None without non-urgent tickets)."""
    calm = [p for t, p in zip(true, pred, strict=True) if t != metrics.URGENT]
    return metrics.rate(sum(p == metrics.URGENT for p in calm), len(calm))


def coverage_curve(outcomes: Sequence[Scored], probabilities: Sequence[dict[str, dict[str, float]] | None],
                   urgent_threshold: float, priority_review_threshold: float = 0.0,
                   grid: Sequence[float] = GRID) -> list[CoveragePoint]:
    """Coverage and accuracy among the tickets not flagged, as the review threshold moves."""
    return [coverage_point(outcomes, [decide(o, p, urgent_threshold, t, priority_review_threshold)
                                      for o, p in zip(outcomes, probabilities)], t) for t in grid]


def urgent_curve(outcomes: Sequence[Scored], probabilities: Sequence[dict[str, dict[str, float]] | None],
                 grid: Sequence[float] = GRID) -> list[UrgentPoint]:
    """Urgent recall and over-escalation as the urgent threshold moves (the review threshold does
    not change a priority)."""
    return [urgent_point(outcomes, [decide(o, p, t, 0.0) for o, p in zip(outcomes, probabilities)], t) for t in grid]


def _argmax(probabilities: Mapping[str, float]) -> str:
    return max(probabilities, key=probabilities.__getitem__)  # ties: the first label listed
