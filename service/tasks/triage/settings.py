"""Triage's share of the settings."""

from __future__ import annotations

from pydantic import BaseModel, Field

from service.tasks.triage.schema import TriagePolicy


class TriageSettings(BaseModel):
    """`Settings.triage`: the batch endpoint's size, how many of its tickets run at once, and the
    decision policy for targets whose adapter ships none (`triage_policy.json`)."""

    batch_max: int = Field(32, ge=1, description="Most tickets in one /v1/tickets/triage/batch call.")
    batch_concurrency: int = Field(8, ge=1, description="Tickets of one batch generated at once.")
    # Defaults: the shipped ticket-triage adapter's calibration on its validation set (README, "Ticket triage").
    urgent_threshold: float = Field(0.31, ge=0.0, le=1.0, description="Priority is urgent whenever P(urgent) is at "
                                    "least this (an adapter's triage_policy.json and a request's policy override it).")
    review_threshold: float = Field(0.79, ge=0.0, le=1.0, description="A triage needs review when its category's "
                                    "confidence is below this.")
    priority_review_threshold: float = Field(0.0, ge=0.0, le=1.0, description="A triage needs review when its "
                                             "priority's confidence is below this (0: never for priority).")

    @property
    def policy(self) -> TriagePolicy:
        return TriagePolicy(urgent_threshold=self.urgent_threshold, review_threshold=self.review_threshold,
                            priority_review_threshold=self.priority_review_threshold)
