"""vLLM's per-step scheduler figures, as the engine's plain `SchedulerStep` (the figures vLLM's own
`PrometheusStatLogger` exports, vllm/v1/metrics/loggers.py, so they mean what vLLM's metrics mean)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from service.engine.types import SchedulerStep


def scheduler_step(stats: Any) -> SchedulerStep:
    """One step's figures from vLLM's `SchedulerStats`."""
    return SchedulerStep(
        running=stats.num_running_reqs,
        # vLLM's `vllm:num_requests_waiting`: queued plus deferred (LoRA budget, KV transfer, blocked).
        waiting=stats.num_waiting_reqs + getattr(stats, "num_skipped_waiting_reqs", 0),
        kv_cache_usage=float(stats.kv_cache_usage),
    )


def step_listener(callback: Callable[[SchedulerStep | None], None]) -> Any:
    """A vLLM stat logger class: vLLM instantiates it and calls `record` after every engine step;
    it hands `callback` the step's figures (None when the step carried no scheduler figures)."""
    from vllm.v1.metrics.loggers import StatLoggerBase

    class _Forwarder(StatLoggerBase):
        def __init__(self, vllm_config: Any, engine_index: int = 0) -> None:
            pass

        def record(self, scheduler_stats: Any, iteration_stats: Any, mm_cache_stats: Any = None,
                   engine_idx: int = 0) -> None:
            callback(None if scheduler_stats is None else scheduler_step(scheduler_stats))

        def log_engine_initialized(self) -> None:
            pass

    return _Forwarder
