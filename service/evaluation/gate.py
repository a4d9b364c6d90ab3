"""The evaluation gate of `loragate promote`: is a candidate adapter not worse than a route's control
on a labelled dataset? Pure functions of two constrained-triage runs of `loragate eval` (the same
tickets, in the same order, through the served API).

Measures (as `loragate eval` defines them, see results.DEFINITIONS): category and priority
accuracy and schema validity over every ticket, urgent recall over the urgent tickets; a ticket
with no valid reply counts as wrong. "Not worse" on a measure: the candidate's point estimate is
at least the control's minus the measure's tolerance. Each side's 95% Wilson interval and the
paired 95% interval of the difference (Newcombe's, the two sides answered the same tickets) are
reported with every decision, so a pass on a small dataset shows how little it proves; they are
not part of the rule, which would refuse every candidate on a dataset too small to exclude
anything. The gate refuses when a measure cannot be judged (no urgent tickets) and when the
control's own requests failed (its figures would not be a fair reference).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, get_args

from service.evaluation.metrics import URGENT
from service.evaluation.results import EvalReport, Outcome
from service.observability.comparison import paired_proportion_difference, wilson_interval
from service.routing.gate_reports import GateReport, MeasureVerdict, RateFigure

GateMeasure = Literal["category_accuracy", "priority_accuracy", "schema_valid_rate", "urgent_recall"]
GATE_MEASURES: tuple[GateMeasure, ...] = get_args(GateMeasure)
RULE = ("not worse: on every measure, the candidate's point estimate >= the control's minus the measure's "
        "tolerance, both measured on the same tickets through the served API (constrained triage); 95% Wilson "
        "intervals per side and Newcombe's paired 95% interval of the difference are reported with each decision")


def _success(measure: GateMeasure, outcome: Outcome) -> bool | None:
    """Whether the reply is right on `measure`; None when the ticket does not count for it."""
    if measure == "urgent_recall":
        return None if outcome.true_priority != URGENT else outcome.schema_valid and outcome.priority == URGENT
    if measure == "schema_valid_rate":
        return outcome.schema_valid
    if measure == "category_accuracy":
        return outcome.schema_valid and outcome.category == outcome.true_category
    return outcome.schema_valid and outcome.priority == outcome.true_priority


def _figure(successes: int, n: int) -> RateFigure:
    if n == 0:
        return RateFigure(successes=0, n=0)
    low, high = wilson_interval(successes, n)
    return RateFigure(successes=successes, n=n, rate=successes / n, low=low, high=high)


def compare(measure: GateMeasure, candidate: Sequence[Outcome], control: Sequence[Outcome],
            tolerance: float = 0.0) -> MeasureVerdict:
    """One measure's decision on paired outcomes (the same tickets in the same order)."""
    if [o.id for o in candidate] != [o.id for o in control]:
        raise ValueError("the candidate's and the control's outcomes must be for the same tickets, in order")
    pairs = [(mine, theirs) for mine, theirs in zip(candidate, control)
             if _success(measure, mine) is not None]
    won = [(bool(_success(measure, mine)), bool(_success(measure, theirs))) for mine, theirs in pairs]
    n = len(won)
    ours, theirs = _figure(sum(c for c, _ in won), n), _figure(sum(r for _, r in won), n)
    if n == 0:
        return MeasureVerdict(measure=measure, candidate=ours, control=theirs, tolerance=tolerance, passed=False,
                              statement=f"{measure}: cannot be judged, the dataset has no ticket it counts (drop it "
                              "with --measure, or use a dataset that has some)")
    interval = paired_proportion_difference(sum(c and r for c, r in won), sum(c and not r for c, r in won),
                                            sum(r and not c for c, r in won), n)
    assert interval is not None and ours.rate is not None and theirs.rate is not None
    passed = ours.rate >= theirs.rate - tolerance - 1e-12  # rounding of equal rates never refuses
    statement = (
        f"{measure}: candidate {ours.rate:.3f} ({ours.successes}/{n}, 95% CI {ours.low:.3f}-{ours.high:.3f}) vs "
        f"control {theirs.rate:.3f} ({theirs.successes}/{n}, 95% CI {theirs.low:.3f}-{theirs.high:.3f}); "
        f"difference {interval.estimate:+.3f} (paired 95% CI {interval.low:+.3f} to {interval.high:+.3f}): "
        f"{'not worse' if passed else 'worse'} (tolerance {tolerance:g})")
    return MeasureVerdict(measure=measure, candidate=ours, control=theirs, difference=interval.estimate,
                          difference_low=interval.low, difference_high=interval.high, tolerance=tolerance,
                          passed=passed, statement=statement)


def decide(report: EvalReport, route: str, candidate: str, control: str,
           measures: Mapping[GateMeasure, float], command: str = "loragate promote") -> GateReport:
    """The gate's report from one eval run holding both targets' constrained results."""
    results = {r.target: r for r in report.results if r.mode == "constrained"}
    missing = [name for name in (candidate, control) if name not in results]
    if missing:
        raise ValueError(f"the evaluation has no constrained results for {', '.join(missing)}")
    mine: list[Outcome] = list(results[candidate].outcomes)  # type: ignore[arg-type]
    theirs: list[Outcome] = list(results[control].outcomes)  # type: ignore[arg-type]
    verdicts = [compare(measure, mine, theirs, tolerance) for measure, tolerance in measures.items()]
    reasons = [v.statement for v in verdicts if not v.passed]
    failed = [o for o in theirs if o.error]
    if failed:
        reasons.append(f"the control {control} failed {len(failed)} of {len(theirs)} requests (e.g. "
                       f"{failed[0].error}): its figures are not a fair reference")
    return GateReport(route=route, candidate=candidate, control=control, dataset=report.dataset,
                      dataset_sha256=report.dataset_sha256, n=report.n, rule=RULE, measures=verdicts,
                      passed=not reasons, reasons=reasons, command=command)
