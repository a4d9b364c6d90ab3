"""A/B routes: create or replace, list, inspect, delete, and report on live traffic."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from pydantic import BaseModel

from service.api.deps import ServicesDep
from service.api.errors import ERROR_RESPONSES
from service.api.observability import StatsWindow
from service.observability.route_report import RouteReport, build_route_report
from service.routing import Route, RouteSpec

router = APIRouter(prefix="/routes", tags=["admin"])  # under the admin router (admin key)
ERRORS = {code: ERROR_RESPONSES[code] for code in (400, 404, 409)}


class RouteList(BaseModel):
    object: str = "list"
    data: list[Route]


@router.get("", response_model=RouteList)
async def list_routes(services: ServicesDep) -> RouteList:
    return RouteList(data=services.routes.routes())


@router.put("/{name}", response_model=Route, responses=ERRORS)
async def put_route(name: str, body: RouteSpec, services: ServicesDep) -> Route:
    return await services.routes.put(name, body)


@router.get("/{name}", response_model=Route, responses=ERRORS)
async def get_route(name: str, services: ServicesDep) -> Route:
    return services.routes.route(name)


@router.delete("/{name}", status_code=204, responses=ERRORS)
async def delete_route(name: str, services: ServicesDep) -> Response:
    await services.routes.delete(name)
    return Response(status_code=204)


@router.get("/{name}/report", response_model=RouteReport, responses=ERRORS)
async def route_report(name: str, services: ServicesDep, window_seconds: StatsWindow) -> RouteReport:
    route = services.routes.route(name)
    window = window_seconds or services.stats.window_s
    samples, outcomes = services.stats.route_window(name, window)
    order = [v.target for v in route.spec.variants]
    # Bootstrap intervals over many samples take a while: off the event loop.
    return await asyncio.to_thread(build_route_report, name, samples, outcomes, window, order,
                                   rollbacks=route.rollbacks)
