"""A/B routes: create or replace (PUT), merge (PATCH), list, inspect, delete, report on live traffic,
and drive a route's progressive rollout (start, pause, resume, abort)."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Body, Response
from pydantic import BaseModel

from service.api.auth import CallerDep
from service.api.deps import ServicesDep
from service.api.errors import failures
from service.errors import ConflictError, InvalidRequestError, ModelNotFoundError, NotFoundError
from service.api.observability import StatsWindow
from service.observability.route_report import RouteReport, build_route_report
from service.routing import Route, RouteSpec
from service.routing.progression import RolloutSpec

router = APIRouter(prefix="/routes", tags=["admin"])  # under the admin router (admin key)
WRITE = failures(InvalidRequestError, NotFoundError, ModelNotFoundError, ConflictError)
READ = failures(NotFoundError)
RolloutAction = Literal["pause", "resume", "abort"]
MERGE_PATCH = Body(
    description="JSON merge patch (RFC 7396) of the route spec: null deletes a member, objects merge, "
    "anything else (variants included) replaces. The merged route is validated as a whole.",
    media_type="application/merge-patch+json",
    examples=[{"guard": {"min_samples": 50}}, {"variants": [{"target": "base", "weight": 1}], "guard": None}],
)


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
async def start_rollout(name: str, body: RolloutSpec, services: ServicesDep, caller: CallerDep) -> Route:
    """(Re)start a progressive rollout of `candidate` against the route's control, at its first step."""
    return await services.routes.start_rollout(name, body, caller=caller)


@router.post("/{name}/rollout/{action}", response_model=Route, responses=WRITE)
async def rollout_action(name: str, action: RolloutAction, services: ServicesDep, caller: CallerDep) -> Route:
    """pause: hold the current step (the guard still watches); resume: progress again; abort: all
    traffic back to the control (status `rolled_back`, reason "aborted by CALLER")."""
    return await services.routes.rollout_action(name, action, caller=caller)


@router.get("/{name}/report", response_model=RouteReport, responses=READ)
async def route_report(name: str, services: ServicesDep, window_seconds: StatsWindow) -> RouteReport:
    route = services.routes.route(name)
    window = window_seconds or services.stats.window_s
    # The current version only: samples routed before the last change of the weights drop out.
    samples, outcomes = services.stats.route_window(name, window, version=route.version)
    order = [v.target for v in route.spec.variants]
    # Bootstrap intervals over many samples take a while: off the event loop.
    return await asyncio.to_thread(build_route_report, name, samples, outcomes, window, order,
                                   rollbacks=route.rollbacks, version=route.version,
                                   source=services.stats.description)
