"""The evaluation gate's decision (pure): each measure as `loragate eval` computes it, "not worse"
= the candidate's point estimate >= the control's minus the tolerance, every decision stated
with both sides' Wilson intervals and the paired interval of the difference."""

from __future__ import annotations

import pytest

from service.cli.promote import MEASURES
from service.evaluation.gate import GATE_MEASURES, compare, decide
from service.evaluation.results import EvalReport, ModeResult, Outcome, summarize_triage
from service.observability.comparison import paired_proportion_difference, proportion_difference, wilson_interval

TRUTH = [("billing", "low"), ("technical", "urgent"), ("account", "medium"), ("shipping", "urgent"),
         ("returns", "high"), ("general", "low")]


def outcome(i: int, category: str | None, priority: str | None, *, error: str | None = None) -> Outcome:
    true_category, true_priority = TRUTH[i]
    valid = category is not None
    return Outcome(id=str(i), true_category=true_category, true_priority=true_priority, status=200 if valid else 502,
                   parsed_json=valid, schema_valid=valid, category=category, priority=priority, error=error,
                   latency_s=0.1, prompt_tokens=None, completion_tokens=None, served_by=None, output=None)


PERFECT = [outcome(i, c, p) for i, (c, p) in enumerate(TRUTH)]
# Misses two categories, one urgent ticket (called high) and one reply is not schema-valid.
WORSE = [outcome(0, "billing", "low"), outcome(1, "technical", "high"), outcome(2, "general", "medium"),
         outcome(3, "shipping", "urgent"), outcome(4, None, None), outcome(5, "billing", "low")]


def report(candidate: list[Outcome], control: list[Outcome]) -> EvalReport:
    results = [ModeResult(target=name, model=name, mode="constrained", metrics=summarize_triage(outcomes),
                          outcomes=outcomes) for name, outcomes in (("control", control), ("cand", candidate))]
    return EvalReport(kind="triage", command="loragate eval", date="2025-01-01T00:00:00+00:00", url="http://test",
                      dataset="six.jsonl", dataset_sha256="0" * 64, n=len(control), base_model="base", max_tokens=256,
                      concurrency=4, definitions={}, results=results, duration_s=1.0)


def test_the_cli_offers_exactly_the_gates_measures() -> None:
    assert MEASURES == GATE_MEASURES


def test_each_measure_is_the_evals_figure() -> None:
    metrics = summarize_triage(WORSE)
    for measure in GATE_MEASURES:
        assert compare(measure, WORSE, PERFECT).candidate.rate == pytest.approx(getattr(metrics, measure)), measure
    urgent = compare("urgent_recall", WORSE, PERFECT)
    assert (urgent.candidate.successes, urgent.candidate.n, urgent.control.successes) == (1, 2, 2)


def test_a_worse_candidate_is_refused_with_its_figures_and_intervals() -> None:
    verdict = compare("category_accuracy", WORSE, PERFECT)
    low, high = wilson_interval(3, 6)
    interval = paired_proportion_difference(3, 0, 3, 6)
    assert not verdict.passed and verdict.difference == pytest.approx(-0.5)
    assert (verdict.candidate.low, verdict.candidate.high) == pytest.approx((low, high))
    assert (verdict.difference_low, verdict.difference_high) == pytest.approx((interval.low, interval.high))
    assert verdict.statement == (
        f"category_accuracy: candidate 0.500 (3/6, 95% CI {low:.3f}-{high:.3f}) vs control 1.000 (6/6, 95% CI "
        f"{wilson_interval(6, 6)[0]:.3f}-1.000); difference -0.500 (paired 95% CI {interval.low:+.3f} to "
        f"{interval.high:+.3f}): worse (tolerance 0)")
    assert compare("category_accuracy", WORSE, PERFECT, tolerance=0.5).passed  # 0.5 >= 1.0 - 0.5
    assert not compare("category_accuracy", WORSE, PERFECT, tolerance=0.49).passed
    assert compare("category_accuracy", PERFECT, PERFECT).passed  # equal is not worse


def test_the_gate_passes_only_when_every_measure_is_not_worse() -> None:
    measures = {m: 0.0 for m in GATE_MEASURES}
    refused = decide(report(WORSE, PERFECT), "triage", "cand", "control", measures)
    assert not refused.passed and [v.passed for v in refused.measures] == [False, False, False, False]
    assert refused.reasons == [v.statement for v in refused.measures]
    passed = decide(report(PERFECT, WORSE), "triage", "cand", "control", measures)
    assert passed.passed and passed.reasons == [] and passed.rule.startswith("not worse")
    # --measure priority_accuracy alone: 4/6 against 6/6 is 0.333 below, within a 0.34 tolerance only
    assert decide(report(WORSE, PERFECT), "triage", "cand", "control", {"priority_accuracy": 0.34}).passed
    assert not decide(report(WORSE, PERFECT), "triage", "cand", "control", {"priority_accuracy": 0.3}).passed


def test_a_measure_that_cannot_be_judged_and_a_failing_control_refuse() -> None:
    calm = [outcome(i, c, "low") for i, (c, _) in enumerate(TRUTH)]
    for o in calm:
        o.true_priority = "low"
    verdict = compare("urgent_recall", calm, calm)
    assert not verdict.passed and "cannot be judged" in verdict.statement
    failing = PERFECT[:5] + [outcome(5, None, None, error="503 engine_not_ready: starting")]
    refused = decide(report(PERFECT, failing), "triage", "cand", "control", {"schema_valid_rate": 0.0})
    assert not refused.passed and refused.reasons[-1].startswith("the control control failed 1 of 6 requests")
    with pytest.raises(ValueError, match="same tickets"):
        compare("category_accuracy", PERFECT[::-1], PERFECT)


def test_the_paired_interval() -> None:
    concordant = paired_proportion_difference(40, 2, 8, 60)
    unpaired = proportion_difference(48, 60, 42, 60)
    assert concordant.estimate == pytest.approx(unpaired.estimate) == pytest.approx(-0.1)
    assert concordant.low <= concordant.estimate <= concordant.high
    assert concordant.high - concordant.low < unpaired.high - unpaired.low  # pairs that agree narrow it
    swapped = paired_proportion_difference(40, 8, 2, 60)
    assert (swapped.low, swapped.high) == pytest.approx((-concordant.high, -concordant.low))
    assert paired_proportion_difference(0, 0, 6, 6).low == -1.0 and paired_proportion_difference(6, 0, 0, 6).estimate == 0
    assert paired_proportion_difference(0, 0, 0, 0) is None
    with pytest.raises(ValueError):
        paired_proportion_difference(5, 1, 1, 6)
