"""Evaluation gate reports: what `loragate promote` measured before a rollout, kept in the store.

A report is one JSON file under `gate-reports/ROUTE/` in the shared store, with an audit entry
(`route_gate`) naming it; a rollout started on the strength of a report names it in its own audit
entry (`POST /admin/routes/NAME/rollout?gate_report=ID`), so "why did this candidate get traffic"
is answered from the audit log. The gate itself (the evaluation and the decision) runs in the
CLI, through the served API; the server checks the report is consistent before storing it.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, Field

from service.adapters import AdapterStore
from service.adapters.store import AuditEvent
from service.errors import InvalidRequestError, NotFoundError
from service.numbers import StrictScalars

GATE_DIR = "gate-reports"
_ID_RE = re.compile(r"^[0-9]{8}T[0-9]{12}Z-[a-z0-9._-]{1,64}$")


class RateFigure(StrictScalars):
    """One side's share of successes on the gate's items, with its 95% Wilson interval."""

    successes: int = Field(ge=0)
    n: int = Field(ge=0)
    rate: float | None = Field(None, ge=0, le=1)
    low: float | None = Field(None, ge=0, le=1)
    high: float | None = Field(None, ge=0, le=1)


class MeasureVerdict(StrictScalars):
    measure: str
    candidate: RateFigure
    control: RateFigure
    difference: float | None = Field(None, description="candidate - control (point estimates).")
    difference_low: float | None = Field(None, description="95% paired interval (Newcombe), lower bound.")
    difference_high: float | None = Field(None, description="95% paired interval (Newcombe), upper bound.")
    tolerance: float = Field(ge=0, le=1)
    passed: bool
    statement: str = Field(description="The decision in words, with the figures and the interval.")


class GateReport(StrictScalars):
    """The gate's decision: the candidate against the route's control on one dataset."""

    route: str
    candidate: str
    control: str
    dataset: str
    dataset_sha256: str
    n: int = Field(ge=0, description="Tickets sent to each side.")
    rule: str = Field(description="What `not worse` means for this decision.")
    measures: list[MeasureVerdict] = Field(min_length=1)
    passed: bool
    reasons: list[str] = Field(default_factory=list, description="Why it was refused (empty when passed).")
    command: str = "loragate promote"
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))


class StoredGateReport(BaseModel):
    id: str = Field(description="Pass it as `gate_report` when starting the rollout.")
    path: str = Field(description="The report's file, relative to the store's root.")
    report: GateReport


class GateReportStore:
    def __init__(self, store: AdapterStore) -> None:
        self.store = store

    def _path(self, route: str, report_id: str) -> Path:
        return self.store.root / GATE_DIR / route / f"{report_id}.json"

    def save(self, route: str, report: GateReport, caller: str | None) -> StoredGateReport:
        """Store a report of `route` and audit it (400 naming the field when it is inconsistent)."""
        if report.route != route:
            raise InvalidRequestError(f"The report is for route {report.route!r}, not {route!r}.", param="route",
                                      code="invalid_gate_report")
        passed = all(m.passed for m in report.measures) and not report.reasons
        if report.passed != passed or (not report.passed and not report.reasons):
            raise InvalidRequestError("The report's `passed` does not follow from it (passed only when every measure "
                                      "passed and nothing is against it; a refusal states its reasons).",
                                      param="passed", code="invalid_gate_report")
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        report_id = f"{stamp}-{re.sub(r'[^a-z0-9._-]', '-', report.candidate.lower())[:64]}"
        path = self._path(route, report_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.store.write_atomically(path, report.model_dump_json(indent=2))
        relative = str(path.relative_to(self.store.root))
        verdict = "passed" if report.passed else "refused: " + "; ".join(report.reasons)
        self.store.audit(AuditEvent(action="route_gate", route=route, adapter=report.candidate, caller=caller,
                                    source=f"{report.candidate} vs {report.control} on {report.dataset} "
                                    f"(n={report.n}) {verdict}; report {relative}"))
        return StoredGateReport(id=report_id, path=relative, report=report)

    def load(self, route: str, report_id: str) -> StoredGateReport:
        path = self._path(route, report_id)
        if not _ID_RE.fullmatch(report_id) or not path.is_file():
            raise NotFoundError(f"Route {route} has no gate report {report_id!r}.", param="gate_report",
                                code="gate_report_not_found")
        report = GateReport.model_validate_json(path.read_text())
        return StoredGateReport(id=report_id, path=str(path.relative_to(self.store.root)), report=report)

    def check_passed(self, route: str, report_id: str, candidate: str) -> StoredGateReport:
        """The report a rollout start names: it exists, and passed for this candidate (else 400)."""
        try:
            stored = self.load(route, report_id)
        except NotFoundError as exc:
            raise InvalidRequestError(exc.message, param="gate_report", code="invalid_gate_report") from None
        if stored.report.candidate != candidate or not stored.report.passed:
            raise InvalidRequestError(
                f"Gate report {report_id} {'refused' if not stored.report.passed else 'is for'} "
                f"{stored.report.candidate}: it cannot start a rollout of {candidate}.", param="gate_report",
                code="invalid_gate_report")
        return stored
