"""Liveness (process up) and readiness (engine can serve) probes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from service.api.protocol import HealthStatus
from service.api.state import Services, get_services

router = APIRouter(tags=["health"])


@router.get("/health/live", response_model=HealthStatus)
async def live(services: Annotated[Services, Depends(get_services)]) -> HealthStatus:
    return HealthStatus(status="ok", engine=services.engine.state.value)


@router.get("/health/ready", response_model=HealthStatus, responses={503: {"model": HealthStatus}})
async def ready(services: Annotated[Services, Depends(get_services)]) -> JSONResponse:
    engine = services.engine
    healthy = await engine.check_health() if engine.is_ready else False
    services.metrics.engine_ready.set(1 if healthy else 0)
    body = HealthStatus(status="ready" if healthy else "unavailable", engine=engine.state.value)
    return JSONResponse(body.model_dump(), status_code=200 if healthy else 503)
