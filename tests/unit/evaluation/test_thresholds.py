"""Choosing thresholds and the calibration summary, on the hand-worked set of calibration_data."""

from __future__ import annotations

import pytest

from service.evaluation import thresholds
from service.evaluation.calibration import CoveragePoint, FieldTemperature, ServedPolicy, UrgentPoint
from tests.unit.evaluation.calibration_data import POLICY, scored, the_set

SERVED = ServedPolicy(urgent_threshold=0.35, review_threshold=0.8)


def _urgent(*rows: tuple[float, float | None, float | None]) -> list[UrgentPoint]:
    return [UrgentPoint(threshold=t, urgent_recall=r, over_escalation=o) for t, r, o in rows]


def _coverage(*rows: tuple[float, int, float | None, float | None]) -> list[CoveragePoint]:
    return [CoveragePoint(threshold=t, not_flagged=k, coverage=c, accuracy=a) for t, k, c, a in rows]


def test_urgent_threshold_largest_meeting_both_targets() -> None:
    points = _urgent((0.1, 1.0, 0.4), (0.2, 0.9, 0.15), (0.3, 0.8, 0.1), (0.4, 0.6, 0.05))
    assert thresholds.choose_urgent_threshold(points) == (0.3, [])
    # None over-escalation (no non-urgent ticket) counts as none escalated.
    assert thresholds.choose_urgent_threshold(_urgent((0.2, 1.0, None), (0.5, 0.5, None))) == (0.2, [])


def test_urgent_threshold_falls_back_and_says_so() -> None:
    # Recall >= 80% only up to 0.2, where over-escalation is 30% and 20%: the least is at 0.2.
    chosen, notes = thresholds.choose_urgent_threshold(_urgent((0.1, 1.0, 0.3), (0.2, 0.8, 0.2), (0.3, 0.6, 0.1)))
    assert chosen == 0.2 and "escalates least (20.0%)" in notes[0]
    # No threshold reaches 80%: the best recall, with the least over-escalation.
    chosen, notes = thresholds.choose_urgent_threshold(_urgent((0.1, 0.7, 0.3), (0.2, 0.7, 0.2), (0.3, 0.5, 0.1)))
    assert chosen == 0.2 and "reaches urgent recall 80%" in notes[0]
    # No urgent ticket: nothing to choose from.
    chosen, notes = thresholds.choose_urgent_threshold(_urgent((0.1, None, 0.3)))
    assert chosen is None and "no urgent ticket" in notes[0]


def test_review_threshold_smallest_accurate_enough() -> None:
    points = _coverage((0.0, 10, 1.0, 0.9), (0.5, 8, 0.8, 0.95), (0.6, 7, 0.7, 0.97), (0.9, 0, 0.0, None))
    assert thresholds.choose_review_threshold(points) == (0.5, [])
    # None reaches 95%: the most accurate (then the larger coverage), and a note.
    chosen, notes = thresholds.choose_review_threshold(
        _coverage((0.0, 10, 1.0, 0.8), (0.5, 8, 0.8, 0.9), (0.6, 6, 0.6, 0.9), (0.9, 0, 0.0, None)))
    assert chosen == 0.5 and "the most accurate (90.0%, coverage 80.0%)" in notes[0]
    chosen, notes = thresholds.choose_review_threshold(_coverage((0.0, 0, 0.0, None), (1.0, 0, 0.0, None)))
    assert chosen == 1.0 and "review everything" in notes[0]


def test_propose_on_the_set_at_temperature_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(thresholds, "fit_temperature", lambda outcomes, field: 1.0)
    choice = thresholds.propose(the_set(), SERVED)
    # Urgent curve (test_calibration): recall >= 0.8 up to 0.30, over-escalation <= 0.15 from 0.29.
    assert (choice.urgent_threshold, choice.urgent_recall, choice.over_escalation) == (0.3, 0.8, 0.1)
    # Coverage curve: 95% first reached at 0.86 (the six tickets at 0.955, all right).
    assert (choice.review_threshold, choice.not_flagged, choice.coverage, choice.accuracy_not_flagged) \
        == (0.86, 6, 0.4, 1.0)
    assert choice.priority_review_threshold == 0.0 and choice.notes == []
    assert choice.temperature == FieldTemperature() and choice.temperature_fit == FieldTemperature()
    # Category ECE as served (1.635 / 15). Priority at urgent threshold 0.30: ticket 3 becomes urgent at
    # 0.305 (right), ticket 6 stays low: bins 0.9: 0.1; 0.8-0.9: 0.4805; 0.6-0.7: 0.6 and 0.6435, both
    # right -> 0.7565; 0.5: 0.5; 0.4: 0.595; 0.3: 0.695. Total 3.127 / 15.
    assert choice.ece == {"category": pytest.approx(1.635 / 15), "priority": pytest.approx(3.127 / 15)}
    assert choice.nll["category"]["served"] == choice.nll["category"]["fitted"]
    assert len(choice.coverage_curve) == len(choice.urgent_curve) == 101


def test_propose_with_a_priority_review_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(thresholds, "fit_temperature", lambda outcomes, field: 1.0)
    choice = thresholds.propose(the_set(), SERVED, priority_review_threshold=0.45)
    # At urgent threshold 0.30 tickets 2 (urgent 0.405) and 3 (urgent 0.305) are flagged on priority.
    # Review 0.66-0.85 leaves tickets 0-9 but 2 and 3: 7 of 8 right; from 0.86, tickets 0, 1, 4, 5: all right.
    assert (choice.urgent_threshold, choice.priority_review_threshold) == (0.3, 0.45)
    assert (choice.review_threshold, choice.not_flagged, choice.accuracy_not_flagged) == (0.86, 4, 1.0)
    at_080 = next(p for p in choice.coverage_curve if p.threshold == 0.8)
    assert (at_080.not_flagged, at_080.accuracy) == (8, 7 / 8)


def test_propose_composes_the_fitted_temperature_with_the_served_one() -> None:
    # Served at category temperature 2; the served probabilities fit T = 2 again (0.9 right 3 times
    # in 4, see test_calibration): serve 2 x 2 = 4.
    policy = {**POLICY, "temperature": {"category": 2.0, "priority": 1.0}}
    probabilities = {"category": {"billing": 0.9, "technical": 0.1}, "priority": {"low": 0.9, "urgent": 0.1}}
    outcomes = [scored(i, "billing" if i < 3 else "technical", "low", probabilities, policy) for i in range(4)]
    choice = thresholds.propose(outcomes, ServedPolicy.model_validate(policy))
    assert choice.temperature_fit.category == pytest.approx(2.0, abs=1e-4)
    assert choice.temperature.category == pytest.approx(4.0, abs=2e-4)
    assert choice.nll["category"]["fitted"] < choice.nll["category"]["served"]
    # No urgent ticket: the served urgent threshold is kept, with notes saying so.
    assert choice.urgent_threshold == 0.35 and any("kept the served urgent threshold" in n for n in choice.notes)
    # After the fit billing is at 0.75 (3 right of 4): 75% < 95% at any threshold up to 0.75; above, none.
    assert choice.review_threshold == 0.0 and "the most accurate (75.0%" in choice.notes[-1]


def test_summary_of_the_set() -> None:
    outcomes = [*the_set(), scored(15, "billing", "low", None)]  # one ticket with no valid answer
    summary = thresholds.summarize_calibration(outcomes)
    assert summary is not None and (summary.n, summary.with_probabilities) == (16, 15)
    served = summary.served
    assert served.policy == SERVED and served.policies == 1 and served.decisions_reproduced == 1.0
    # Served at review 0.8: tickets 0-9 not flagged, 9 right; urgent at 0.35: 3 of 5 urgent, 1 of 11 calm.
    assert (served.not_flagged, served.coverage, served.accuracy_not_flagged) == (10, 10 / 16, 0.9)
    assert (served.urgent_recall, served.over_escalation) == (0.6, 1 / 11)
    assert served.ece == {"category": pytest.approx(1.635 / 15), "priority": pytest.approx(1.8065 / 15)}
    assert served.review_reasons == {"low_category_confidence": 5, "(no review flag)": 1}
    assert summary.category.ece == served.ece["category"] and summary.notes == []
    # The curves are drawn at the served policy: at 0.80 they give the served figures back.
    at_served = next(p for p in summary.coverage_curve if p.threshold == 0.8)
    assert (at_served.not_flagged, at_served.accuracy) == (10, 0.9)
    assert summary.choice is not None and summary.choice.urgent_recall == pytest.approx(0.8)
    assert thresholds.summarize_calibration([scored(0, "billing", "low", None)]) is None


def test_summary_flags_what_it_cannot_reproduce() -> None:
    outcomes = the_set()
    # A reply whose served category disagrees with its probabilities (1 of 15 not reproduced).
    outcomes[0] = outcomes[0].model_copy(update={"category": "account"})
    # Another variant's policy: curves at the most common, no proposal.
    outcomes[1] = outcomes[1].model_copy(update={"policy": {**POLICY, "urgent_threshold": 0.5}})
    summary = thresholds.summarize_calibration(outcomes)
    assert summary.served.decisions_reproduced == pytest.approx(14 / 15)
    assert summary.served.policies == 2 and summary.served.policy == SERVED
    assert summary.choice is None and "2 different policies" in summary.notes[0]
    # No policy at all: argmax assumed, and said.
    bare = [o.model_copy(update={"policy": None}) for o in the_set()]
    summary = thresholds.summarize_calibration(bare)
    assert summary.served.policy is None and summary.served.decisions_reproduced is None
    assert "no meta.policy" in summary.notes[0] and summary.choice is not None


def test_calibration_file_has_the_adapter_schema() -> None:
    choice = thresholds.propose(the_set(), SERVED)
    saved = thresholds.calibration_file(choice, dataset="val.jsonl", sha256="ab" * 32, n=15,
                                        date="2025-01-01T00:00:00+00:00", target="ticket-triage").model_dump()
    assert set(saved) == {"urgent_threshold", "review_threshold", "priority_review_threshold", "temperature",
                          "calibrated_on"}
    assert set(saved["temperature"]) == {"category", "priority"}
    assert saved["calibrated_on"] == {"dataset": "val.jsonl", "sha256": "ab" * 32, "n": 15,
                                      "date": "2025-01-01T00:00:00+00:00", "target": "ticket-triage"}
    assert saved["urgent_threshold"] == choice.urgent_threshold and saved["temperature"] == choice.temperature.model_dump()
