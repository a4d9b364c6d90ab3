"""Prometheus metrics and rolling request statistics (no HTTP, no vLLM)."""

from service.observability.metrics import NO_ROUTE, Metrics
from service.observability.stats import (
    OutcomeSample,
    RequestSample,
    RequestStats,
    RouteSampleSource,
    StatsReport,
)

__all__ = ["NO_ROUTE", "Metrics", "OutcomeSample", "RequestSample", "RequestStats", "RouteSampleSource",
           "StatsReport"]
