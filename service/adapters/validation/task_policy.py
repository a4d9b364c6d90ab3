"""A triage adapter's calibrated decision policy, shipped beside its weights as `triage_policy.json`:
the thresholds that turn its label probabilities into a triage (urgent escalation, review flag) and
the temperature per field that calibrates those probabilities. Checked on registration like the
rest of the folder; the same models check a request's `policy` override."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.numbers import StrictScalars

from service.adapters.validation.errors import fail

TRIAGE_POLICY_FILE = "triage_policy.json"
MAX_POLICY_FILE_BYTES = 16 * 1024


class TriageThresholds(StrictScalars):
    """The thresholds of the triage decision; unset ones keep the server's (or the adapter's)."""

    model_config = ConfigDict(extra="forbid")

    urgent_threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="Priority is `urgent` whenever P(urgent) is at least this.")
    review_threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="`needs_review` when the category's confidence is below this.")
    priority_review_threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="`needs_review` when the priority's confidence is below this.")


class LabelTemperatures(BaseModel):
    """Temperature scaling per field: p_i is proportional to p_i ** (1 / T) (1: as the model says)."""

    model_config = ConfigDict(extra="forbid")

    category: float = Field(1.0, gt=0.0, le=100.0)
    priority: float = Field(1.0, gt=0.0, le=100.0)


class TriagePolicyFile(TriageThresholds):
    """`triage_policy.json` in an adapter folder."""

    temperature: LabelTemperatures = Field(default_factory=LabelTemperatures)
    calibrated_on: dict[str, Any] | None = Field(None, description="Provenance: data set, date, figures.")


def read_triage_policy(folder: Path) -> TriagePolicyFile | None:
    """The folder's triage policy, None without one; a bad file is refused naming its field."""
    path = folder / TRIAGE_POLICY_FILE
    if not path.is_file():
        return None
    if path.stat().st_size > MAX_POLICY_FILE_BYTES:
        raise fail(f"{TRIAGE_POLICY_FILE} is larger than {MAX_POLICY_FILE_BYTES} bytes.", "invalid_triage_policy",
                   param=TRIAGE_POLICY_FILE)
    try:
        return TriagePolicyFile.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(the file)"
        raise fail(f"{TRIAGE_POLICY_FILE}: invalid '{where}': {first['msg']}.", "invalid_triage_policy",
                   param=f"{TRIAGE_POLICY_FILE}:{where}") from None
