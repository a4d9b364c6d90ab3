"""Triage's share of the settings."""

from __future__ import annotations

from pydantic import BaseModel, Field


class TriageSettings(BaseModel):
    """`Settings.triage`: the batch endpoint's size and how many of its tickets run at once."""

    batch_max: int = Field(32, ge=1, description="Most tickets in one /v1/tickets/triage/batch call.")
    batch_concurrency: int = Field(8, ge=1, description="Tickets of one batch generated at once.")
