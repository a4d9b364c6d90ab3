"""What the test suite and the load tests share, installed with the package so `loragate bench`
runs without a source checkout: real server processes (`process`), throwaway PEFT adapters
(`adapters`) and sample tickets (`TICKETS_FILE`). The service itself never imports this package."""

from __future__ import annotations

from pathlib import Path

# 60 hand-labelled support tickets (`expected_category` / `expected_priority`): triage tests,
# the structured-output benchmark and the locustfile's triage users.
TICKETS_FILE = Path(__file__).resolve().parent / "tickets.jsonl"
