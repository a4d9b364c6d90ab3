"""The plain objects the HTTP layer talks to, built once per process in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from service.completions import CompletionService
from service.config import Settings
from service.engine import Engine
from service.metrics import Metrics
from service.registry import AdapterRegistry
from service.routing import ModelRouter
from service.stats import RequestStats
from service.structured import StructuredGuard
from service.triage import TriageService


@dataclass
class Services:
    settings: Settings
    engine: Engine
    registry: AdapterRegistry
    router: ModelRouter
    metrics: Metrics
    completions: CompletionService
    # Defaulted so that Services built by hand (unit tests) need not name it.
    stats: RequestStats = field(default_factory=RequestStats)
    guard: StructuredGuard | None = None
    triage: TriageService | None = None


def get_services(request: Request) -> Services:
    return request.app.state.services
