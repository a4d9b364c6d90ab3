"""Liveness (process up) and readiness (engine can serve) probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from service.api.deps import ServicesDep
from service.engine import EngineState

router = APIRouter(tags=["health"])  # open: probes need no key
LIVE_PATH, READY_PATH = "/health/live", "/health/ready"
PROBE_PATHS = (LIVE_PATH, READY_PATH)


class HealthStatus(BaseModel):
    status: str
    engine: str


@router.get(LIVE_PATH, response_model=HealthStatus, responses={503: {"model": HealthStatus}})
async def live(services: ServicesDep) -> JSONResponse:
    """503 once the engine is dead (the watchdog also stops the process): restart me."""
    dead = services.engine.state == EngineState.DEAD
    body = HealthStatus(status="dead" if dead else "ok", engine=services.engine.state.value)
    return JSONResponse(body.model_dump(), status_code=503 if dead else 200)


@router.get(READY_PATH, response_model=HealthStatus, responses={503: {"model": HealthStatus}})
async def ready(services: ServicesDep) -> JSONResponse:
    engine = services.engine
    stalled = engine.stalled  # hung, not dead: the watchdog ends the process if it lasts
    healthy = await engine.check_health() if engine.is_ready and not stalled else False
    services.metrics.engine_ready.set(1 if healthy else 0)
    body = HealthStatus(status="ready" if healthy else "unavailable", engine="stalled" if stalled else engine.state.value)
    return JSONResponse(body.model_dump(), status_code=200 if healthy else 503)
