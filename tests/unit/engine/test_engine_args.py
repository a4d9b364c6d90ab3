"""Settings reach vLLM's engine arguments: parallelism for one model on several GPUs or nodes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.api.bootstrap import engine_options
from service.config import load_settings
from service.engine import Engine


def test_one_worker_runs_in_the_engine_core_process_by_default() -> None:
    args = Engine(engine_options(load_settings([]))).engine_args()
    assert (args.tensor_parallel_size, args.pipeline_parallel_size) == (1, 1)
    assert args.distributed_executor_backend == "uni"


def test_several_workers_leave_the_backend_to_vllm() -> None:
    args = Engine(engine_options(load_settings(["--tensor-parallel-size", "2"]))).engine_args()
    assert args.distributed_executor_backend is None
    assert args.enable_lora and args.scheduling_policy == "priority"


def test_two_nodes_with_ray_from_flags() -> None:
    settings = load_settings(["--tensor-parallel-size", "8", "--pipeline-parallel-size", "2",
                              "--distributed-executor-backend", "ray"])
    args = Engine(engine_options(settings)).engine_args()
    assert (args.tensor_parallel_size, args.pipeline_parallel_size) == (8, 2)
    assert args.distributed_executor_backend == "ray"


def test_parallelism_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORAGATE_PIPELINE_PARALLEL_SIZE", "4")
    monkeypatch.setenv("LORAGATE_DISTRIBUTED_EXECUTOR_BACKEND", "mp")
    args = Engine(engine_options(load_settings())).engine_args()
    assert (args.pipeline_parallel_size, args.distributed_executor_backend) == (4, "mp")


def test_worker_processes_on_request() -> None:
    args = Engine(engine_options(load_settings(["--distributed-executor-backend", "mp"]))).engine_args()
    assert args.distributed_executor_backend == "mp"


@pytest.mark.parametrize("flags", [
    ["--pipeline-parallel-size", "0"], ["--distributed-executor-backend", "slurm"],
    ["--distributed-executor-backend", "uni", "--tensor-parallel-size", "2"],
])
def test_bad_parallelism_is_refused(flags: list[str]) -> None:
    with pytest.raises((ValidationError, SystemExit)):
        load_settings(flags)


def test_pinning_goes_to_vllms_pin_lora() -> None:
    import asyncio
    import inspect

    from vllm.v1.engine.async_llm import AsyncLLM

    assert "lora_id" in inspect.signature(AsyncLLM.pin_lora).parameters  # the vLLM API the engine calls
    pinned: list[int] = []

    class FakeLLM:
        async def pin_lora(self, lora_id: int) -> bool:
            pinned.append(lora_id)
            return True

    engine = Engine(engine_options(load_settings([])))
    engine._llm = FakeLLM()
    asyncio.run(engine.pin_adapter(7))
    assert pinned == [7]


def test_pins_leave_one_engine_slot_free_and_the_resolver_is_wired(tiny_model_dir, tmp_path) -> None:  # noqa: ANN001
    from prometheus_client import CollectorRegistry

    from service.api.bootstrap import build_services
    from service.observability.metrics import Metrics

    flags = ["--model", str(tiny_model_dir), "--adapter-store", str(tmp_path / "store"), "--max-loras", "3",
             "--max-cpu-loras", "5"]
    for extra, resolver_uri in (([], None), (["--adapter-resolver-uri", "s3://team/adapters/"], "s3://team/adapters/")):
        services = build_services(load_settings([*flags, *extra]), Metrics(CollectorRegistry()))
        try:
            assert services.registry.limits.max_pinned == 2
            resolver = services.generation.resolver
            assert getattr(resolver, "base_uri", None) == resolver_uri
        finally:
            services.registry.replicas.close()
