"""GET /v1/stats: recent per-model/adapter and per-route-variant figures as JSON."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.exceptions import RequestValidationError

from service.api.protocol import ErrorResponse
from service.api.state import Services, get_services
from service.stats import RequestStats, StatsReport

router = APIRouter(prefix="/v1", tags=["observability"])


def get_stats(services: Annotated[Services, Depends(get_services)]) -> RequestStats:
    return services.stats


@router.get("/stats", response_model=StatsReport, responses={400: {"model": ErrorResponse}})
async def stats(
    request_stats: Annotated[RequestStats, Depends(get_stats)],
    window_seconds: Annotated[float | None, Query(ge=1, description="Window in seconds (default and "
                                                  "maximum: the configured stats_window_s).")] = None,
) -> StatsReport:
    # The upper bound is configuration, not a constant, so it cannot sit in Query(le=...); raising
    # the same validation error keeps the 400 identical to the lower-bound one.
    if window_seconds is not None and window_seconds > request_stats.window_s:
        raise RequestValidationError([{
            "type": "less_than_equal", "loc": ("query", "window_seconds"),
            "msg": f"Input should be less than or equal to {request_stats.window_s:g}",
            "input": window_seconds, "ctx": {"le": request_stats.window_s},
        }])
    return request_stats.report(window_seconds)
