"""The plain objects the HTTP layer talks to (built once per process), as FastAPI dependencies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Header, Request

from service.adapters import AdapterRegistry
from service.config import Settings
from service.engine import Engine
from service.generation import GenerationService
from service.observability import Metrics, RequestStats, RouteSampleSource
from service.routing import ModelRouter, RolloutGuard, RouteRegistry
from service.structured import StructuredGuard
from service.tasks.triage import TriageService


@dataclass
class Services:
    settings: Settings
    engine: Engine
    registry: AdapterRegistry
    router: ModelRouter
    metrics: Metrics
    generation: GenerationService
    # Defaulted so that Services built by hand (unit tests) need not name it.
    stats: RequestStats = field(default_factory=RequestStats)
    guard: StructuredGuard | None = None
    triage: TriageService | None = None
    routes: RouteRegistry | None = None
    # Where route guards and reports get their figures: `stats` unless --prometheus-url is set.
    route_source: RouteSampleSource | None = None
    # Judges route guards and advances rollouts; ticked by run_services for steps due without traffic.
    rollout: RolloutGuard | None = None


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]

# A/B routes: keeps one client on one variant (else the OpenAI `user` field, or a ticket's customer_id).
RouteKeyHeader = Annotated[str | None, Header(alias="X-Loragate-Route-Key", max_length=256,
                                               description="Routing key for A/B routes.")]
