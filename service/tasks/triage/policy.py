"""The triage decision: from label probabilities to the labels returned, their confidence and
whether a person should look at the ticket.

- `category` is the most probable category.
- `priority` is `urgent` whenever P(urgent) >= `urgent_threshold` (a missed urgent ticket costs more
  than a false alarm), otherwise the most probable priority.
- `needs_review` when the category's confidence is below `review_threshold`, the priority's below
  `priority_review_threshold`, the body was cut to fit, or no probabilities could be read.
Probabilities are first calibrated per field by temperature: p_i proportional to p_i ** (1 / T).
The server's policy applies unless the adapter ships its own (`triage_policy.json`, validated on
registration) and the request may override the thresholds (`policy`).
"""

from __future__ import annotations

from pydantic import BaseModel

from service.tasks.triage.schema import LabelConfidence, LabelProbabilities, ReviewReason, TriagePolicy

URGENT = "urgent"


class Decision(BaseModel):
    category: str
    priority: str
    probabilities: LabelProbabilities | None
    confidence: LabelConfidence | None
    needs_review: bool
    review_reasons: list[ReviewReason]


def decide(policy: TriagePolicy, raw: LabelProbabilities | None, generated: tuple[str, str],
           input_truncated: bool) -> Decision:
    """Apply `policy` to the probabilities read from the reply; without them the generated labels
    stand and the ticket is flagged for review."""
    truncated: list[ReviewReason] = ["input_truncated"] if input_truncated else []
    if raw is None:
        return Decision(category=generated[0], priority=generated[1], probabilities=None, confidence=None,
                        needs_review=True, review_reasons=[*truncated, "probabilities_unavailable"])
    probabilities = LabelProbabilities(category=scaled(raw.category, policy.temperature.category),
                                       priority=scaled(raw.priority, policy.temperature.priority))
    category = max(probabilities.category, key=probabilities.category.__getitem__)
    if probabilities.priority.get(URGENT, 0.0) >= policy.urgent_threshold:
        priority = URGENT
    else:
        priority = max(probabilities.priority, key=probabilities.priority.__getitem__)
    confidence = LabelConfidence(category=probabilities.category[category], priority=probabilities.priority[priority])
    reasons: list[ReviewReason] = []
    if confidence.category < policy.review_threshold:
        reasons.append("low_category_confidence")
    if confidence.priority < policy.priority_review_threshold:
        reasons.append("low_priority_confidence")
    reasons += truncated
    return Decision(category=category, priority=priority, probabilities=probabilities, confidence=confidence,
                    needs_review=bool(reasons), review_reasons=reasons)


def scaled(probabilities: dict[str, float], temperature: float) -> dict[str, float]:
    """Temperature scaling, renormalised (labels with probability 0 stay at 0)."""
    powered = {label: p ** (1.0 / temperature) if p > 0 else 0.0 for label, p in probabilities.items()}
    total = sum(powered.values())
    return {label: p / total for label, p in powered.items()} if total > 0 else dict(probabilities)
