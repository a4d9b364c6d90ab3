"""GET /metrics (Prometheus text, or OpenMetrics on request) and GET /v1/stats (recent figures)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from prometheus_client.exposition import choose_encoder

from service.api.auth import require_api_key, require_metrics_key
from service.api.deps import ServicesDep
from service.api.errors import failures
from service.errors import InvalidRequestError
from service.observability import StatsReport

router = APIRouter(tags=["observability"])
METRICS_PATH = "/metrics"


@router.get(METRICS_PATH, response_class=Response, dependencies=[Depends(require_metrics_key)])
async def metrics(request: Request, services: ServicesDep) -> Response:
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encoder(services.metrics.registry), media_type=content_type)


def stats_window(
    services: ServicesDep,
    window_seconds: Annotated[float | None, Query(ge=1, description="Window in seconds (default and "
                                                  "maximum: the configured stats_window_s).")] = None,
) -> float | None:
    # The upper bound is configuration, not a constant, so it cannot sit in Query(le=...); raising
    # the same validation error keeps the 400 identical to the lower-bound one.
    limit = services.stats.window_s
    if window_seconds is not None and window_seconds > limit:
        raise RequestValidationError([{
            "type": "less_than_equal", "loc": ("query", "window_seconds"),
            "msg": f"Input should be less than or equal to {limit:g}", "input": window_seconds, "ctx": {"le": limit},
        }])
    return window_seconds


StatsWindow = Annotated[float | None, Depends(stats_window)]


@router.get("/v1/stats", response_model=StatsReport, responses=failures(InvalidRequestError),
            dependencies=[Depends(require_api_key)])
async def stats(services: ServicesDep, window_seconds: StatsWindow) -> StatsReport:
    return services.stats.report(window_seconds)
