"""Calibration maths on synthetic outcomes whose figures are worked out by hand in the comments."""

from __future__ import annotations

import math

import pytest

from service.evaluation import calibration
from service.evaluation.calibration import GRID, ServedPolicy, decide, policy_of
from tests.unit.evaluation.calibration_data import POLICY, scored, the_set


def test_reliability_bins_and_ece() -> None:
    # bin 0.9-1.0: conf 0.95, 1 of 2 right -> |0.5 - 0.95| x 2 = 0.9
    # bin 0.8-0.9: conf 0.85, right -> 0.15; bin 0.5-0.6: conf 0.55, 1 of 2 -> 0.05 x 2 = 0.1
    # bin 0.1-0.2: conf 0.15, wrong -> 0.15.  ECE = (0.9 + 0.15 + 0.1 + 0.15) / 6 = 1.3 / 6
    result = calibration.reliability([0.95, 0.95, 0.85, 0.55, 0.55, 0.15], [True, False, True, True, False, False])
    assert result.n == 6 and result.ece == pytest.approx(1.3 / 6)
    assert [b.n for b in result.bins] == [0, 1, 0, 0, 0, 2, 0, 0, 1, 2]
    top = result.bins[9]
    assert (top.lower, top.upper, top.mean_confidence, top.accuracy) == (0.9, 1.0, pytest.approx(0.95), 0.5)
    assert result.bins[0].mean_confidence is None and result.bins[0].accuracy is None
    # 1.0 falls in the last bin, 0.0 in the first; no confidence at all: ECE undefined.
    edges = calibration.reliability([1.0, 0.0], [True, False])
    assert (edges.bins[9].n, edges.bins[0].n, edges.ece) == (1, 1, 0.0)
    assert calibration.reliability([], []).ece is None
    with pytest.raises(ValueError):
        calibration.reliability([0.5], [])


def test_served_ece_of_the_set() -> None:
    outcomes = the_set()
    # Category: 0.9-1 six at 0.955 right: 0.045 x 6 = 0.27; 0.8-0.9 four at 0.855, 3 right: 0.105 x 4 = 0.42;
    # 0.6-0.7 three at 0.655, 2 right: 2 - 1.965 = 0.035; 0.4-0.5 two at 0.455 wrong: 0.91. (1.635) / 15.
    assert calibration.served_reliability(outcomes, "category").ece == pytest.approx(1.635 / 15)
    # Priority at urgent threshold 0.35 (returned label, its probability, right?):
    #   0: urgent 0.9 yes; 1: urgent 0.6 yes; 2: urgent 0.405 yes; 3: high 0.6255 no; 4: high 0.8055 no;
    #   5: urgent 0.5 no; 6: low 0.6435 yes; 7-8: low 0.8055 yes; 9-14: low 0.8505 yes.
    # Bins: 0.9: |1 - 0.9| = 0.1; 0.8-0.9: nine, 8 right, conf sum 7.5195 -> 0.4805; 0.6-0.7: 0.6, 0.6255,
    # 0.6435 with 2 right -> 0.131; 0.5: 0.5; 0.4: 0.595. Total 1.8065 / 15.
    assert calibration.served_reliability(outcomes, "priority").ece == pytest.approx(1.8065 / 15)
    # A reply without `confidence` is read from its probabilities; an invalid one is left out.
    bare = scored(0, "billing", "low", {"category": {"billing": 0.7, "technical": 0.3},
                                        "priority": {"low": 1.0, "urgent": 0.0}}, confidence=None)
    failed = scored(1, "billing", "low", None)
    assert calibration.served_reliability([bare, failed], "category").model_dump()["n"] == 1
    assert calibration.served_reliability([bare, failed], "category").ece == pytest.approx(0.3)


def test_scale_is_a_power_then_renormalised() -> None:
    # T = 0.5 squares: 0.64 and 0.04, over 0.68.
    assert calibration.scale({"a": 0.8, "b": 0.2}, 0.5) == pytest.approx({"a": 0.64 / 0.68, "b": 0.04 / 0.68})
    # T = 2 takes square roots: sqrt(0.81) = 0.9 and sqrt(0.01) = 0.1.
    assert calibration.scale({"a": 0.81, "b": 0.01}, 2.0) == pytest.approx({"a": 0.9, "b": 0.1})
    assert calibration.scale({"a": 0.6, "b": 0.6}, 1.0) == {"a": 0.5, "b": 0.5}  # T = 1 only renormalises
    assert calibration.scale({"a": 0.0, "b": 1.0}, 3.0) == {"a": 0.0, "b": 1.0}  # a zero stays zero
    scaled = calibration.scale_all([None, {"category": {"a": 0.81, "b": 0.01}, "priority": {"low": 0.8, "high": 0.2}}],
                                   calibration.FieldTemperature(category=2.0, priority=0.5))
    assert scaled[0] is None
    assert calibration.scale_all([{"category": {"a": 0.6, "b": 0.6}}], calibration.FieldTemperature()) \
        == [{"category": {"a": 0.5, "b": 0.5}}]  # a field the reply lacks stays absent
    assert scaled[1] == {"category": pytest.approx({"a": 0.9, "b": 0.1}),
                         "priority": pytest.approx({"low": 0.64 / 0.68, "high": 0.04 / 0.68})}


def _binary(confidence: float, right: int, wrong: int) -> list:
    """Tickets whose category is billing with probability `confidence`; `right` of them are billing."""
    probabilities = {"category": {"billing": confidence, "technical": 1 - confidence},
                     "priority": {"low": 0.9, "urgent": 0.1}}
    return [scored(i, "billing" if i < right else "technical", "low", probabilities) for i in range(right + wrong)]


def test_temperature_fit_recovers_the_known_optimum() -> None:
    # Two labels, the same confidence p everywhere, a share q right: the NLL is least where p_T = q,
    # i.e. logit(p) / T = logit(q).  p = 0.9, q = 3/4: T = ln 9 / ln 3 = 2 (overconfident, softened).
    over = _binary(0.9, 3, 1)
    assert calibration.fit_temperature(over, "category") == pytest.approx(2.0, abs=1e-4)
    # p = 0.6, q = 9/10: T = ln 1.5 / ln 9 (underconfident, sharpened).
    under = _binary(0.6, 9, 1)
    assert calibration.fit_temperature(under, "category") == pytest.approx(math.log(1.5) / math.log(9), abs=1e-4)
    # The NLL at the fit: -(3/4 ln 3/4 + 1/4 ln 1/4), below the served one -(3/4 ln 0.9 + 1/4 ln 0.1).
    assert calibration.mean_nll(over, "category", 2.0) == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert calibration.mean_nll(over, "category", 1.0) == pytest.approx(-(0.75 * math.log(0.9) + 0.25 * math.log(0.1)))
    # Always right: sharpen as far as the search goes; no probabilities: 1.
    assert calibration.fit_temperature(_binary(0.9, 4, 0), "category") == pytest.approx(calibration.T_MIN, rel=1e-3)
    assert calibration.fit_temperature([scored(0, "billing", "low", None)], "category") == 1.0
    assert calibration.mean_nll([], "category", 1.0) is None


def test_a_true_label_served_at_zero_costs_a_constant() -> None:
    # Ticket 0: right at 0.9; ticket 1: the true label had probability 0. Its NLL is -ln 1e-12 at
    # every T, so the fit follows ticket 0 alone (sharpen to the bound) and the mean stays finite.
    zero = {"category": {"billing": 1.0, "technical": 0.0}, "priority": {"low": 1.0}}
    outcomes = _binary(0.9, 1, 0) + [scored(1, "technical", "low", zero)]
    assert calibration.mean_nll(outcomes, "category", 1.0) == pytest.approx((-math.log(0.9) - math.log(1e-12)) / 2)
    assert calibration.fit_temperature(outcomes, "category") == pytest.approx(calibration.T_MIN, rel=1e-3)


def test_decide_follows_the_served_policy() -> None:
    probabilities = {"category": {"billing": 0.5, "technical": 0.3, "account": 0.2},
                     "priority": {"urgent": 0.4, "high": 0.5, "medium": 0.1}}
    ticket = scored(0, "billing", "urgent", probabilities)
    # P(urgent) 0.4 >= 0.35: urgent, though high is more probable; confidence = P(urgent).
    assert decide(ticket, probabilities, 0.35, 0.5) == ("billing", "urgent", 0.5, 0.4, False)
    assert decide(ticket, probabilities, 0.4, 0.5).priority == "urgent"  # at the threshold: urgent
    assert decide(ticket, probabilities, 0.45, 0.5)[1:4] == ("high", 0.5, 0.5)  # below: the most probable
    assert decide(ticket, probabilities, 0.35, 0.51).needs_review  # category 0.5 < 0.51
    assert decide(ticket, probabilities, 0.35, 0.5, priority_review_threshold=0.45).needs_review  # 0.4 < 0.45
    assert not decide(ticket, probabilities, 0.45, 0.5, priority_review_threshold=0.45).needs_review  # high 0.5
    # A reason no threshold moves flags at any threshold; the low-confidence ones are recomputed.
    truncated = scored(1, "billing", "urgent", probabilities, reasons=("input_truncated",))
    assert decide(truncated, probabilities, 0.35, 0.0).needs_review
    assert truncated.review_reasons == ["low_category_confidence", "input_truncated"]  # served at 0.8
    assert not decide(scored(2, "billing", "urgent", probabilities), probabilities, 0.35, 0.0).needs_review
    # No probabilities: the served labels stand, flagged; no valid answer: no labels.
    plain = scored(3, "billing", "low", None, category="billing", priority="low", needs_review=True)
    assert decide(plain, None, 0.35, 0.0) == ("billing", "low", None, None, True)
    assert decide(scored(4, "billing", "low", None), None, 0.35, 0.0) == (None, None, None, None, True)


def test_urgent_curve_of_the_set() -> None:
    outcomes = the_set()
    curve = {p.threshold: p for p in calibration.urgent_curve(outcomes, [o.probabilities for o in outcomes])}
    assert list(curve) == list(GRID)
    # Urgent tickets: 0.9 and 0.6 are the most probable priority (always urgent); 0.405, 0.305, 0.105
    # are urgent while the threshold is at most their P(urgent).
    # Low tickets: 0.5 is most probable (always urgent); 0.285, 0.105 x 2, 0.055 x 6 likewise.
    expected = {0.0: (1.0, 1.0), 0.05: (1.0, 1.0), 0.06: (1.0, 0.4), 0.1: (1.0, 0.4), 0.11: (0.8, 0.2),
                0.28: (0.8, 0.2), 0.29: (0.8, 0.1), 0.3: (0.8, 0.1), 0.31: (0.6, 0.1), 0.4: (0.6, 0.1),
                0.41: (0.4, 0.1), 1.0: (0.4, 0.1)}
    assert {t: (curve[t].urgent_recall, curve[t].over_escalation) for t in expected} == expected


def test_coverage_curve_of_the_set() -> None:
    outcomes = the_set()
    curve = {p.threshold: p for p in calibration.coverage_curve(outcomes, [o.probabilities for o in outcomes], 0.35)}
    # Not flagged while confidence >= threshold: all 15 (11 right) up to 0.45; 13 (11 right) up to 0.65;
    # 10 (9 right) up to 0.85; 6 (all right) up to 0.95; none above.
    expected = {0.0: (15, 11 / 15), 0.45: (15, 11 / 15), 0.46: (13, 11 / 13), 0.65: (13, 11 / 13),
                0.66: (10, 0.9), 0.8: (10, 0.9), 0.85: (10, 0.9), 0.86: (6, 1.0), 0.95: (6, 1.0), 0.96: (0, None)}
    assert {t: (curve[t].not_flagged, curve[t].accuracy) for t in expected} == expected
    assert curve[0.86].coverage == pytest.approx(0.4) and curve[0.96].coverage == 0.0
    # A ticket with no valid answer is never covered (counted in n); the priority threshold flags too.
    failed = [*outcomes, scored(15, "billing", "low", None)]
    assert calibration.coverage_curve(failed, [o.probabilities for o in failed], 0.35, grid=[0.0])[0].coverage \
        == pytest.approx(15 / 16)
    # At urgent threshold 0.35 ticket 2's priority is urgent at 0.405 and ticket 5's at 0.5: a priority
    # review threshold of 0.45 flags ticket 2; of 0.55, ticket 5 too (and tickets 1 (0.6) stay).
    strict = calibration.coverage_curve(outcomes, [o.probabilities for o in outcomes], 0.35, 0.45, grid=[0.0])
    assert strict[0].not_flagged == 14
    assert calibration.coverage_curve(outcomes, [o.probabilities for o in outcomes], 0.35, 0.55,
                                      grid=[0.0])[0].not_flagged == 13


def test_over_escalation_counts_non_urgent_tickets_only() -> None:
    # Non-urgent: low->urgent (yes), high->high, medium->None (invalid: not urgent). 1 of 3.
    assert calibration.over_escalation(["low", "high", "medium", "urgent"], ["urgent", "high", None, "urgent"]) \
        == pytest.approx(1 / 3)
    assert calibration.over_escalation(["urgent"], ["low"]) is None


def test_policy_of_reads_the_served_policy() -> None:
    assert policy_of(POLICY) == ServedPolicy(urgent_threshold=0.35, review_threshold=0.8)
    assert policy_of({**POLICY, "source": "adapter"}).urgent_threshold == 0.35  # extra fields ignored
    assert policy_of({"urgent_threshold": "high"}) is None and policy_of(None) is None
