"""vLLM's per-step `SchedulerStats` -> the engine's `SchedulerStep` and `Engine.load()`, with vLLM's
own stats classes (no engine is started)."""

from __future__ import annotations

from service.api.bootstrap import engine_options
from service.config import load_settings
from service.engine import Engine, SchedulerStep
from service.engine.step_stats import scheduler_step, step_listener


def vllm_stats(**fields: object) -> object:
    from vllm.v1.metrics.stats import SchedulerStats

    return SchedulerStats(**fields)


def lora_states_after(events: list[tuple[str, str, str]]) -> object:
    """vLLM's per-adapter request states after `events` (request id, adapter, "waiting" | "running" |
    "finished"), written into a SchedulerStats as vLLM's output processor does each step."""
    from vllm.v1.metrics.stats import LoRARequestStates

    states = LoRARequestStates(log_stats=True)
    for request_id, adapter, event in events:
        getattr(states, f"request_{event}")(request_id, adapter)
    stats = vllm_stats(num_running_reqs=2, num_waiting_reqs=1, num_skipped_waiting_reqs=2, kv_cache_usage=0.5)
    states.update_scheduler_stats(stats)
    return stats


def test_figures_are_vllms() -> None:
    stats = lora_states_after([
        ("1", "support", "running"), ("2", "billing", "waiting"), ("3", "billing", "running"),
        ("4", "legal", "waiting"), ("5", "gone", "running"), ("5", "gone", "finished"),
    ])
    step = scheduler_step(stats, at=123.0)
    assert step == SchedulerStep(running=2, waiting=3, kv_cache_usage=0.5, running_adapters=("billing", "support"),
                                 waiting_adapters=("billing", "legal"), at=123.0)
    # vLLM lists "legal" under running too (both of its maps carry every adapter with a request);
    # the protocol's running list is the adapters serving requests.
    assert "legal" in stats.running_lora_adapters and "legal" not in step.running_adapters


def test_the_listener_is_a_vllm_stat_logger_that_forwards_each_step() -> None:
    from vllm.v1.metrics.loggers import StatLoggerBase

    seen: list[SchedulerStep | None] = []
    listener_class = step_listener(seen.append, clock=lambda: 7.0)
    assert issubclass(listener_class, StatLoggerBase)
    listener = listener_class(vllm_config=None)
    listener.record(scheduler_stats=None, iteration_stats=None)
    listener.record(scheduler_stats=vllm_stats(num_running_reqs=1, kv_cache_usage=0.1), iteration_stats=None)
    assert seen == [None, SchedulerStep(running=1, waiting=0, kv_cache_usage=0.1, at=7.0)]
    listener.log_engine_initialized()


def test_engine_load_keeps_the_latest_step() -> None:
    seen: list[SchedulerStep] = []
    engine = Engine(engine_options(load_settings(["--max-loras", "3"])), on_stats=seen.append)
    before = engine.load()
    assert (before.step, before.max_loras, before.block_size, before.num_gpu_blocks) == (None, 3, None, None)

    step = SchedulerStep(running=2, waiting=1, kv_cache_usage=0.3, running_adapters=("a",), at=5.0)
    listener = step_listener(engine._on_step)(vllm_config=None)  # noqa: SLF001 - what vLLM calls
    engine._on_step(step)  # noqa: SLF001
    listener.record(scheduler_stats=None, iteration_stats=None)  # a step without figures keeps the last
    assert engine.load().step == step and seen == [step]
    assert engine.progress._pending_after_step == 3  # noqa: SLF001 - the watchdog counts running + waiting
