"""vLLM's per-step scheduler figures, as the engine's plain `SchedulerStep`.

vLLM calls its stat loggers once per engine step, after its output processor has filled in the
per-adapter request counts (`SchedulerStats.running_lora_adapters` / `waiting_lora_adapters`, keyed
by `LoRARequest.lora_name`: the adapter's served name). The figures are those vLLM's own
`PrometheusStatLogger` exports (vllm/v1/metrics/loggers.py), so they mean what vLLM's metrics mean.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from service.engine.types import SchedulerStep


def scheduler_step(stats: Any, at: float) -> SchedulerStep:
    """One step's figures from vLLM's `SchedulerStats`."""
    return SchedulerStep(
        running=stats.num_running_reqs,
        # vLLM's `vllm:num_requests_waiting`: queued plus deferred (LoRA budget, KV transfer, blocked).
        waiting=stats.num_waiting_reqs + getattr(stats, "num_skipped_waiting_reqs", 0),
        kv_cache_usage=float(stats.kv_cache_usage),
        running_adapters=_with_requests(stats.running_lora_adapters),
        waiting_adapters=_with_requests(stats.waiting_lora_adapters),
        at=at,
    )


def _with_requests(counts: Mapping[str, int]) -> tuple[str, ...]:
    # vLLM fills both maps with every adapter that has a request (a waiting-only adapter has running
    # count 0) and its logger lists all keys; the gateway protocol lists an adapter as running only
    # when it serves requests, so the adapters are those with a count. Sorted: a stable label value.
    return tuple(sorted(name for name, count in counts.items() if count > 0))


def step_listener(callback: Callable[[SchedulerStep | None], None],
                  clock: Callable[[], float] = time.time) -> Any:
    """A vLLM stat logger class: vLLM instantiates it and calls `record` after every engine step;
    it hands `callback` the step's figures (None when the step carried no scheduler figures)."""
    from vllm.v1.metrics.loggers import StatLoggerBase

    class _Forwarder(StatLoggerBase):
        def __init__(self, vllm_config: Any, engine_index: int = 0) -> None:
            pass

        def record(self, scheduler_stats: Any, iteration_stats: Any, mm_cache_stats: Any = None,
                   engine_idx: int = 0) -> None:
            callback(None if scheduler_stats is None else scheduler_step(scheduler_stats, clock()))

        def log_engine_initialized(self) -> None:
            pass

    return _Forwarder
