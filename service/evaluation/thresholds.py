"""The calibration section of one target's constrained evaluation, and the policy it proposes.

The proposal (issue 26, "Calibration is measured, not assumed") is fitted on one evaluation's
outcomes, in this order:
1. a temperature per field, minimising the NLL of the true label over the served probabilities;
   the served temperature composes with it (p^(1/T_served) then ^(1/T_fit) is p^(1/(T_served*T_fit)));
2. on the recalibrated probabilities, urgent_threshold = the largest threshold whose urgent recall is
   >= 80% among those that escalate <= 15% of non-urgent tickets (if none does both: recall >= 80%
   with the least over-escalation, and a note says so);
3. review_threshold = the smallest threshold whose tickets not flagged are >= 95% right on category;
4. priority_review_threshold as given (0.0 unless told otherwise).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from pydantic import BaseModel, Field

from service.evaluation import metrics
from service.evaluation.calibration import (
    FIELDS,
    T_MAX,
    T_MIN,
    CoveragePoint,
    FieldCalibration,
    FieldTemperature,
    Scored,
    ServedPolicy,
    UrgentPoint,
    coverage_curve,
    coverage_point,
    decide,
    decided_reliability,
    fit_temperature,
    mean_nll,
    over_escalation,
    policy_of,
    scale_all,
    served_reliability,
    urgent_curve,
    urgent_point,
)

MIN_URGENT_RECALL = 0.80
MAX_OVER_ESCALATION = 0.15
MIN_ACCURACY = 0.95
# Assumed when replies carry probabilities but no meta.policy: argmax labels, nothing flagged by confidence.
FALLBACK_POLICY = ServedPolicy(urgent_threshold=1.0, review_threshold=0.0)


class ServedFigures(BaseModel):
    """The figures of the decisions as served (labels and flags from the replies, not recomputed)."""

    policy: ServedPolicy | None  # the most common meta.policy
    policies: int  # distinct policies among the replies (more than one: a route's variants)
    not_flagged: int
    coverage: float | None
    accuracy_not_flagged: float | None
    urgent_recall: float | None
    over_escalation: float | None
    ece: dict[str, float | None]
    review_reasons: dict[str, int]  # reason -> tickets; "(no review flag)" for replies without one
    decisions_reproduced: float | None = Field(
        description="Replies with probabilities and a policy whose category, priority and flag the policy "
                    "recomputed from their probabilities gives back (1.0 when served and evaluated agree).")


class ThresholdChoice(BaseModel):
    urgent_threshold: float
    review_threshold: float
    priority_review_threshold: float
    temperature: FieldTemperature  # to serve: served temperature x fitted one
    temperature_fit: FieldTemperature  # applied on top of the served probabilities
    nll: dict[str, dict[str, float | None]]  # field -> {"served", "fitted"}: mean NLL of the true label
    urgent_recall: float | None  # at the chosen thresholds, on the recalibrated probabilities
    over_escalation: float | None
    not_flagged: int
    coverage: float | None
    accuracy_not_flagged: float | None
    ece: dict[str, float | None]
    coverage_curve: list[CoveragePoint]  # recalibrated, at the chosen urgent threshold
    urgent_curve: list[UrgentPoint]  # recalibrated
    notes: list[str]


class CalibrationSummary(BaseModel):
    n: int
    with_probabilities: int
    category: FieldCalibration  # reliability as served
    priority: FieldCalibration
    served: ServedFigures
    coverage_curve: list[CoveragePoint]  # served probabilities, at the served urgent threshold
    urgent_curve: list[UrgentPoint]  # served probabilities
    choice: ThresholdChoice | None
    notes: list[str]


class CalibratedOn(BaseModel):
    dataset: str
    sha256: str
    n: int  # tickets whose replies carried probabilities (what the fit saw)
    date: str  # the evaluation's date (UTC, ISO 8601)
    target: str


class CalibrationFile(BaseModel):
    """What `loragate eval --calibrate-out` writes: an adapter's thresholds file."""

    urgent_threshold: float = Field(ge=0, le=1)
    review_threshold: float = Field(ge=0, le=1)
    priority_review_threshold: float = Field(ge=0, le=1)
    temperature: FieldTemperature
    calibrated_on: CalibratedOn


def choose_urgent_threshold(points: Sequence[UrgentPoint], min_recall: float = MIN_URGENT_RECALL,
                            max_over: float = MAX_OVER_ESCALATION) -> tuple[float | None, list[str]]:
    """The largest threshold with recall >= min_recall and over-escalation <= max_over; else the
    one with recall >= min_recall and the least over-escalation; else the best recall. None (and
    a note) when there is no urgent ticket to measure recall on."""
    measured = [p for p in points if p.urgent_recall is not None]
    if not measured:
        return None, ["no urgent ticket in the data: the urgent threshold cannot be chosen"]
    over = {p.threshold: p.over_escalation or 0.0 for p in measured}  # None: no non-urgent ticket to escalate
    recalled = [p for p in measured if p.urgent_recall >= min_recall]  # type: ignore[operator]
    both = [p for p in recalled if over[p.threshold] <= max_over]
    if both:
        return max(p.threshold for p in both), []
    if recalled:
        best = min(recalled, key=lambda p: (over[p.threshold], -p.threshold))
        return best.threshold, [f"no urgent threshold reaches urgent recall >= {min_recall:.0%} with over-escalation "
                                f"<= {max_over:.0%}: chose {best.threshold:.2f}, the one with recall >= "
                                f"{min_recall:.0%} that escalates least ({over[best.threshold]:.1%})"]
    best = max(measured, key=lambda p: (p.urgent_recall, -over[p.threshold], p.threshold))
    return best.threshold, [f"no urgent threshold reaches urgent recall {min_recall:.0%}: chose {best.threshold:.2f}, "
                            f"the best recall ({best.urgent_recall:.1%})"]


def choose_review_threshold(points: Sequence[CoveragePoint],
                            min_accuracy: float = MIN_ACCURACY) -> tuple[float, list[str]]:
    """The smallest threshold whose tickets not flagged are >= min_accuracy right on category;
    else the most accurate threshold (the larger coverage, then the smaller threshold, on ties)."""
    measured = [p for p in points if p.accuracy is not None]
    accurate = [p for p in measured if p.accuracy >= min_accuracy]  # type: ignore[operator]
    if accurate:
        return min(p.threshold for p in accurate), []
    if not measured:
        top = max(p.threshold for p in points)
        return top, [f"no threshold leaves a ticket unflagged: review threshold set to {top:.2f} (review everything)"]
    best = max(measured, key=lambda p: (p.accuracy, p.coverage or 0.0, -p.threshold))
    return best.threshold, [f"no review threshold gives {min_accuracy:.0%} category accuracy among the tickets not "
                            f"flagged: chose {best.threshold:.2f}, the most accurate ({best.accuracy:.1%}, "
                            f"coverage {best.coverage:.1%})"]


def propose(outcomes: Sequence[Scored], served: ServedPolicy,
            priority_review_threshold: float = 0.0) -> ThresholdChoice:
    fit = FieldTemperature(**{field: round(fit_temperature(outcomes, field), 4) for field in FIELDS})
    notes = [f"the {field} temperature fit stopped at the search bound {value:g} (searched {T_MIN:g}..{T_MAX:g})"
             for field, value in fit.model_dump().items() if min(abs(value - T_MIN), abs(value - T_MAX)) < 1e-3]
    fitted = scale_all([o.probabilities for o in outcomes], fit)
    urgent = urgent_curve(outcomes, fitted)
    urgent_threshold, found = choose_urgent_threshold(urgent)
    notes += found
    if urgent_threshold is None:
        urgent_threshold = served.urgent_threshold
        notes.append(f"kept the served urgent threshold {urgent_threshold:.2f}")
    coverage = coverage_curve(outcomes, fitted, urgent_threshold, priority_review_threshold)
    review_threshold, found = choose_review_threshold(coverage)
    notes += found
    decisions = [decide(o, p, urgent_threshold, review_threshold, priority_review_threshold)
                 for o, p in zip(outcomes, fitted)]
    at_review = coverage_point(outcomes, decisions, review_threshold)
    at_urgent = urgent_point(outcomes, decisions, urgent_threshold)
    return ThresholdChoice(
        urgent_threshold=urgent_threshold, review_threshold=review_threshold,
        priority_review_threshold=priority_review_threshold,
        temperature=FieldTemperature(**{field: round(getattr(served.temperature, field) * getattr(fit, field), 4)
                                        for field in FIELDS}),
        temperature_fit=fit,
        nll={field: {"served": mean_nll(outcomes, field, 1.0), "fitted": mean_nll(outcomes, field, getattr(fit, field))}
             for field in FIELDS},
        urgent_recall=at_urgent.urgent_recall, over_escalation=at_urgent.over_escalation,
        not_flagged=at_review.not_flagged, coverage=at_review.coverage, accuracy_not_flagged=at_review.accuracy,
        ece={field: decided_reliability(outcomes, decisions, field).ece for field in FIELDS},
        coverage_curve=coverage, urgent_curve=urgent, notes=notes,
    )


def served_figures(outcomes: Sequence[Scored]) -> ServedFigures:
    policies = Counter(p for p in (policy_of(o.policy) for o in outcomes if o.probabilities) if p is not None)
    kept = [o for o in outcomes if o.needs_review is False]
    true_p = [o.true_priority for o in outcomes]
    pred_p = [o.priority if o.schema_valid else None for o in outcomes]
    reasons: Counter[str] = Counter()
    for o in outcomes:
        reasons.update((o.review_reasons or []) if o.needs_review is not None else ["(no review flag)"])
    checked = agreed = 0
    for o in outcomes:
        policy = policy_of(o.policy)
        if o.probabilities and policy is not None and o.schema_valid:
            d = decide(o, o.probabilities, policy.urgent_threshold, policy.review_threshold,
                       policy.priority_review_threshold)
            checked += 1
            agreed += (d.category, d.priority, d.needs_review) == (o.category, o.priority, o.needs_review)
    return ServedFigures(
        policy=policies.most_common(1)[0][0] if policies else None, policies=len(policies),
        not_flagged=len(kept), coverage=metrics.rate(len(kept), len(outcomes)),
        accuracy_not_flagged=metrics.rate(sum(o.schema_valid and o.category == o.true_category for o in kept),
                                          len(kept)),
        urgent_recall=metrics.urgent_recall(true_p, pred_p), over_escalation=over_escalation(true_p, pred_p),
        ece={field: served_reliability(outcomes, field).ece for field in FIELDS},
        review_reasons=dict(reasons.most_common()), decisions_reproduced=metrics.rate(agreed, checked),
    )


def summarize_calibration(outcomes: Sequence[Scored], priority_review_threshold: float = 0.0,
                          ) -> CalibrationSummary | None:
    """The calibration section of one target's constrained outcomes; None when no reply carried
    probabilities (an older service, or `"probabilities": false`)."""
    with_probabilities = sum(bool(o.probabilities) for o in outcomes)
    if not with_probabilities:
        return None
    served = served_figures(outcomes)
    policy, notes = served.policy, []
    if policy is None:
        policy = FALLBACK_POLICY
        notes.append("the replies carry no meta.policy: curves assume temperature 1 and plain argmax labels")
    probabilities = [o.probabilities for o in outcomes]
    choice = None
    if served.policies > 1:
        notes.append(f"the replies were decided under {served.policies} different policies (a route's variants?): "
                     "the curves use the most common one and no thresholds are proposed; calibrate each adapter")
    else:
        choice = propose(outcomes, policy, priority_review_threshold)
    return CalibrationSummary(
        n=len(outcomes), with_probabilities=with_probabilities,
        category=served_reliability(outcomes, "category"), priority=served_reliability(outcomes, "priority"),
        served=served,
        coverage_curve=coverage_curve(outcomes, probabilities, policy.urgent_threshold, policy.priority_review_threshold),
        urgent_curve=urgent_curve(outcomes, probabilities), choice=choice, notes=notes,
    )


def calibration_file(choice: ThresholdChoice, *, dataset: str, sha256: str, n: int, date: str,
                     target: str) -> CalibrationFile:
    return CalibrationFile(
        urgent_threshold=choice.urgent_threshold, review_threshold=choice.review_threshold,
        priority_review_threshold=choice.priority_review_threshold, temperature=choice.temperature,
        calibrated_on=CalibratedOn(dataset=dataset, sha256=sha256, n=n, date=date, target=target),
    )
