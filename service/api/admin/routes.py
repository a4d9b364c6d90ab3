"""A/B routes: create or replace (PUT), merge (PATCH), list, inspect, delete, report on live traffic,
and drive a route's progressive rollout (start, pause, resume, abort)."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Body, Query, Response
from pydantic import BaseModel

from service.api.auth import CallerDep
from service.api.deps import ServicesDep
from service.api.errors import failures
from service.api.observability import StatsWindow
from service.errors import ConflictError, DependencyFailedError, InvalidRequestError, ModelNotFoundError, NotFoundError
from service.observability.route_report import RouteReport, build_route_report
from service.routing import Route, RouteSpec
from service.routing.gate_reports import GateReport, StoredGateReport
from service.routing.progression import RolloutSpec

router = APIRouter(prefix="/routes", tags=["admin"])  # under the admin router (admin key)
WRITE = failures(InvalidRequestError, NotFoundError, ModelNotFoundError, ConflictError)
READ = failures(NotFoundError)
# With --prometheus-url the figures come from Prometheus: 424 when it cannot answer.
REPORT = failures(NotFoundError, DependencyFailedError)
RolloutAction = Literal["pause", "resume", "abort"]
MERGE_PATCH = Body(
    description="JSON merge patch (RFC 7396) of the route spec: null deletes a member, objects merge, "
    "anything else (variants included) replaces. The merged route is validated as a whole.",
    media_type="application/merge-patch+json",
    examples=[{"guard": {"min_samples": 50}}, {"variants": [{"target": "base", "weight": 1}], "guard": None}],
)

GATE_REPORT = Query(None, description="The id of a stored evaluation gate report that passed for this candidate "
                    "(`loragate promote`): named in the rollout's audit entry.")


class RouteList(BaseModel):
    object: str = "list"
    data: list[Route]


@router.get("", response_model=RouteList)
async def list_routes(services: ServicesDep) -> RouteList:
    return RouteList(data=services.routes.routes())


@router.put("/{name}", response_model=Route, responses=WRITE)
async def put_route(name: str, body: RouteSpec, services: ServicesDep, caller: CallerDep) -> Route:
    return await services.routes.put(name, body, caller=caller)


@router.patch("/{name}", response_model=Route, responses=WRITE)
async def patch_route(name: str, services: ServicesDep, caller: CallerDep,
                      body: dict[str, Any] = MERGE_PATCH) -> Route:
    return await services.routes.patch(name, body, caller=caller)


@router.get("/{name}", response_model=Route, responses=READ)
async def get_route(name: str, services: ServicesDep) -> Route:
    return services.routes.route(name)


@router.delete("/{name}", status_code=204, responses=failures(NotFoundError, ConflictError))
async def delete_route(name: str, services: ServicesDep, caller: CallerDep) -> Response:
    await services.routes.delete(name, caller=caller)
    return Response(status_code=204)


@router.post("/{name}/rollout", response_model=Route, responses=WRITE)
async def start_rollout(name: str, body: RolloutSpec, services: ServicesDep, caller: CallerDep,
                        gate_report: str | None = GATE_REPORT) -> Route:
    """(Re)start a progressive rollout of `candidate` against the route's control, at its first step."""
    source = "api"
    if gate_report is not None:
        services.routes.route(name)  # 404 first for an unknown route
        stored = await asyncio.to_thread(services.routes.gate_reports.check_passed, name, gate_report, body.candidate)
        source = f"api, evaluation gate passed: {stored.path}"
    return await services.routes.start_rollout(name, body, caller=caller, source=source)


@router.post("/{name}/gate-reports", response_model=StoredGateReport, status_code=201, responses=WRITE)
async def store_gate_report(name: str, body: GateReport, services: ServicesDep, caller: CallerDep) -> StoredGateReport:
    """Keep an evaluation gate's report (`loragate promote`) in the store, audited as `route_gate`."""
    services.routes.route(name)
    return await asyncio.to_thread(services.routes.gate_reports.save, name, body, caller)


@router.get("/{name}/gate-reports/{report_id}", response_model=StoredGateReport, responses=READ)
async def get_gate_report(name: str, report_id: str, services: ServicesDep) -> StoredGateReport:
    services.routes.route(name)
    return await asyncio.to_thread(services.routes.gate_reports.load, name, report_id)


@router.post("/{name}/rollout/{action}", response_model=Route, responses=WRITE)
async def rollout_action(name: str, action: RolloutAction, services: ServicesDep, caller: CallerDep) -> Route:
    """pause: hold the current step (the guard still watches); resume: progress again; abort: all
    traffic back to the control (status `rolled_back`, reason "aborted by CALLER")."""
    return await services.routes.rollout_action(name, action, caller=caller)


@router.get("/{name}/report", response_model=RouteReport, responses=REPORT)
async def route_report(name: str, services: ServicesDep, window_seconds: StatsWindow) -> RouteReport:
    route = services.routes.route(name)
    window = window_seconds or services.stats.window_s
    source = services.route_source or services.stats  # the fleet's from Prometheus, or this replica's
    # The current version only: samples routed before the last change of the weights drop out.
    # Off the event loop: Prometheus is a blocking HTTP call (unreachable: 424), the bootstrap takes a while.
    samples, outcomes = await asyncio.to_thread(source.route_window, name, window, version=route.version)
    order = [v.target for v in route.spec.variants]
    return await asyncio.to_thread(build_route_report, name, samples, outcomes, window, order,
                                   rollbacks=route.rollbacks, version=route.version,
                                   source=source.description, figures_from=source.figures_from)
