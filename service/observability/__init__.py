"""Prometheus metrics and rolling request statistics (no HTTP, no vLLM)."""

from service.observability.metrics import NO_ROUTE, Metrics
from service.observability.stats import (
    FiguresFrom,
    OutcomeSample,
    RequestSample,
    RequestStats,
    RouteSampleSource,
    StatsReport,
    figures_unavailable,
)

__all__ = ["NO_ROUTE", "FiguresFrom", "Metrics", "OutcomeSample", "RequestSample", "RequestStats", "RouteSampleSource",
           "StatsReport", "figures_unavailable"]
