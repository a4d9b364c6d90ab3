"""vLLM's per-step `SchedulerStats` -> the engine's `SchedulerStep`, with vLLM's own stats classes
(no engine is started)."""

from __future__ import annotations

from service.api.bootstrap import engine_options
from service.config import load_settings
from service.engine import Engine, SchedulerStep
from service.engine.step_stats import scheduler_step, step_listener


def vllm_stats(**fields: object) -> object:
    from vllm.v1.metrics.stats import SchedulerStats

    return SchedulerStats(**fields)


def test_figures_are_vllms_with_deferred_requests_waiting() -> None:
    stats = vllm_stats(num_running_reqs=2, num_waiting_reqs=1, num_skipped_waiting_reqs=2, kv_cache_usage=0.5)
    assert scheduler_step(stats) == SchedulerStep(running=2, waiting=3, kv_cache_usage=0.5)


def test_the_listener_is_a_vllm_stat_logger_that_forwards_each_step() -> None:
    from vllm.v1.metrics.loggers import StatLoggerBase

    seen: list[SchedulerStep | None] = []
    listener_class = step_listener(seen.append)
    assert issubclass(listener_class, StatLoggerBase)
    listener = listener_class(vllm_config=None)
    listener.record(scheduler_stats=None, iteration_stats=None)
    listener.record(scheduler_stats=vllm_stats(num_running_reqs=1, kv_cache_usage=0.1), iteration_stats=None)
    assert seen == [None, SchedulerStep(running=1, waiting=0, kv_cache_usage=0.1)]
    listener.log_engine_initialized()


def test_each_step_reaches_the_stats_callback_and_the_watchdog() -> None:
    seen: list[SchedulerStep] = []
    engine = Engine(engine_options(load_settings([])), on_stats=seen.append)
    step = SchedulerStep(running=2, waiting=1, kv_cache_usage=0.3)
    listener = step_listener(engine._on_step)(vllm_config=None)  # noqa: SLF001 - what vLLM calls
    engine._on_step(step)  # noqa: SLF001
    listener.record(scheduler_stats=None, iteration_stats=None)  # a step without figures is not a stat
    assert seen == [step]
    assert engine.progress._pending_after_step == 3  # noqa: SLF001 - the watchdog counts running + waiting
