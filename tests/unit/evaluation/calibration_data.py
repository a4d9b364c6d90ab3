"""Synthetic triage outcomes with label probabilities, shared by the calibration tests.

THE_SET: 15 tickets whose figures are worked out by hand in the tests. Category confidence and
correctness (true category always billing):
  tickets 0-5 0.955 right, 6-8 0.855 right, 9 0.855 wrong, 10-11 0.655 right, 12 0.655 wrong,
  13-14 0.455 wrong.
P(urgent): tickets 0-4 are urgent with 0.9, 0.6, 0.405, 0.305, 0.105; tickets 5-14 are low with
0.5, 0.285, 0.105, 0.105 and 0.055 x 6. The rest of the priority mass: 90% on the ticket's usual
wrong-or-right label (high for urgent tickets, low for low ones), 10% on the other.
Served policy: urgent threshold 0.35, review threshold 0.80, temperature 1.
"""

from __future__ import annotations

from typing import Any

from service.evaluation.calibration import decide
from service.evaluation.results import Outcome

POLICY: dict[str, Any] = {"urgent_threshold": 0.35, "review_threshold": 0.8, "priority_review_threshold": 0.0,
                          "temperature": {"category": 1.0, "priority": 1.0}}
CATEGORY = [(0.955, True)] * 6 + [(0.855, True)] * 3 + [(0.855, False)] + [(0.655, True)] * 2 + [(0.655, False)] \
    + [(0.455, False)] * 2
URGENT = [0.9, 0.6, 0.405, 0.305, 0.105, 0.5, 0.285, 0.105, 0.105] + [0.055] * 6


def category_probabilities(confidence: float, right: bool) -> dict[str, float]:
    top, rest = ("billing", "technical") if right else ("technical", "billing")
    return {top: confidence, rest: (1 - confidence) / 2, "account": (1 - confidence) / 2}


def priority_probabilities(urgent: float, true: str) -> dict[str, float]:
    usual, other = ("high", "low") if true == "urgent" else ("low", "high")
    return {"urgent": urgent, usual: 0.9 * (1 - urgent), other: 0.1 * (1 - urgent)}


def scored(i: int, true_category: str, true_priority: str, probabilities: dict[str, dict[str, float]] | None,
           policy: dict[str, Any] | None = POLICY, reasons: tuple[str, ...] = (), **served: Any) -> Outcome:
    """One constrained outcome; unless given in `served`, its labels, confidence and review flag
    are what the policy decides from `probabilities` (as the server does)."""
    fields: dict[str, Any] = {"category": None, "priority": None, "confidence": None, "needs_review": None,
                              "review_reasons": None}
    if probabilities is not None:
        p = policy or POLICY
        d = decide(Outcome.model_construct(schema_valid=True, review_reasons=list(reasons)), probabilities,
                   p["urgent_threshold"], p["review_threshold"], p["priority_review_threshold"])
        low = [name for name, below in (("low_category_confidence", d.category_confidence < p["review_threshold"]),
                                        ("low_priority_confidence",
                                         d.priority_confidence < p["priority_review_threshold"])) if below]
        fields = {"category": d.category, "priority": d.priority, "needs_review": d.needs_review,
                  "confidence": {"category": d.category_confidence, "priority": d.priority_confidence},
                  "review_reasons": low + list(reasons)}
    fields |= served
    valid = fields["category"] is not None
    return Outcome(id=str(i), true_category=true_category, true_priority=true_priority, status=200 if valid else 502,
                   parsed_json=valid, schema_valid=valid, error=None, latency_s=0.1, prompt_tokens=None,
                   completion_tokens=None, served_by=None, output=None, probabilities=probabilities,
                   policy=policy if probabilities is not None else None, **fields)


def the_set(policy: dict[str, Any] = POLICY) -> list[Outcome]:
    outcomes = []
    for i, ((confidence, right), urgent) in enumerate(zip(CATEGORY, URGENT)):
        true_priority = "urgent" if i < 5 else "low"
        outcomes.append(scored(i, "billing", true_priority,
                               {"category": category_probabilities(confidence, right),
                                "priority": priority_probabilities(urgent, true_priority)}, policy))
    return outcomes
