"""The inference-gateway protocol's metrics: an engine snapshot -> the exposition an endpoint picker
parses (the Gateway API Inference Extension's model-server protocol, under vLLM's names)."""

from __future__ import annotations

import re

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from service.engine.types import EngineLoad, SchedulerStep
from service.observability.gateway_protocol import PROTOCOL_METRICS
from service.observability.metrics import Metrics
from tests.unit.test_deploy_assets import EXPECTED_METRICS

STEP = SchedulerStep(running=3, waiting=2, kv_cache_usage=0.25, running_adapters=("billing", "support"),
                     waiting_adapters=("legal",), at=1754000000.5)


class FakeEngine:
    """Stands in for `Engine.load()`: returns whatever the test set last."""

    def __init__(self, load: EngineLoad) -> None:
        self.current = load
        self.reads = 0

    def load(self) -> EngineLoad:
        self.reads += 1
        return self.current


def exported(load: EngineLoad) -> tuple[Metrics, FakeEngine]:
    metrics = Metrics(CollectorRegistry())
    engine = FakeEngine(load)
    metrics.export_engine_load("SmolLM2-135M-Instruct", engine.load)
    return metrics, engine


def text(metrics: Metrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_exposition_lines_are_what_vllm_writes() -> None:
    metrics, _ = exported(EngineLoad(step=STEP, max_loras=4, block_size=16, num_gpu_blocks=2048))
    lines = text(metrics).splitlines()
    engine = 'engine="0",model_name="SmolLM2-135M-Instruct"'
    for line in (
        "# TYPE vllm:num_requests_running gauge",
        f"vllm:num_requests_running{{{engine}}} 3.0",
        f"vllm:num_requests_waiting{{{engine}}} 2.0",
        f"vllm:kv_cache_usage_perc{{{engine}}} 0.25",
        "# TYPE vllm:lora_requests_info gauge",
        'vllm:lora_requests_info{max_lora="4",running_lora_adapters="billing,support",'
        'waiting_lora_adapters="legal"} 1.7540000005e+09',
        'vllm:cache_config_info{block_size="16",engine="0",num_gpu_blocks="2048"} 1.0',
    ):
        assert line in lines, f"{line!r} not in:\n" + "\n".join(lines)


def endpoint_picker_reading(exposition: str) -> dict[str, object]:
    """What llm-d-router's core-metrics-extractor takes from a scrape (extractor.go, loraspec.go): the
    first series of each gauge, the lora_requests_info series with the highest value (its time), its
    adapter lists split on commas, max_lora and the cache labels as integers."""
    families = {family.name: family for family in text_string_to_metric_families(exposition)}
    gauge = {name: families[name].samples[0].value for name in
             ("vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc")}
    lora = max(families["vllm:lora_requests_info"].samples, key=lambda sample: sample.value).labels
    cache = families["vllm:cache_config_info"].samples[0].labels
    return {
        "WaitingQueueSize": int(gauge["vllm:num_requests_waiting"]),
        "RunningRequestsSize": int(gauge["vllm:num_requests_running"]),
        "KVCacheUsagePercent": gauge["vllm:kv_cache_usage_perc"],
        "ActiveModels": {name.strip() for name in lora["running_lora_adapters"].split(",") if name.strip()},
        "WaitingModels": {name.strip() for name in lora["waiting_lora_adapters"].split(",") if name.strip()},
        "MaxActiveModels": int(lora["max_lora"]),
        "CacheBlockSize": int(cache["block_size"]),
        "CacheNumBlocks": int(cache["num_gpu_blocks"]),
    }


def test_an_endpoint_picker_reads_the_snapshot_back() -> None:
    metrics, _ = exported(EngineLoad(step=STEP, max_loras=4, block_size=16, num_gpu_blocks=2048))
    assert endpoint_picker_reading(text(metrics)) == {
        "WaitingQueueSize": 2, "RunningRequestsSize": 3, "KVCacheUsagePercent": 0.25,
        "ActiveModels": {"billing", "support"}, "WaitingModels": {"legal"}, "MaxActiveModels": 4,
        "CacheBlockSize": 16, "CacheNumBlocks": 2048,
    }


def test_values_are_read_from_the_engine_at_each_scrape() -> None:
    metrics, engine = exported(EngineLoad(step=STEP, max_loras=4, block_size=16, num_gpu_blocks=2048))
    text(metrics)
    later = SchedulerStep(running=0, waiting=0, kv_cache_usage=0.0, at=STEP.at + 1)
    engine.current = engine.current.model_copy(update={"step": later})
    reading = endpoint_picker_reading(text(metrics))
    assert engine.reads == 2
    assert (reading["RunningRequestsSize"], reading["ActiveModels"], reading["WaitingModels"]) == (0, set(), set())
    lora = [line for line in text(metrics).splitlines() if line.startswith("vllm:lora_requests_info{")]
    assert lora == ['vllm:lora_requests_info{max_lora="4",running_lora_adapters="",waiting_lora_adapters=""} '
                    "1.7540000015e+09"]  # one series, at the newest step's time


def test_before_the_engine_started() -> None:
    metrics, _ = exported(EngineLoad(step=None, max_loras=2))
    families = {family.name: family for family in text_string_to_metric_families(text(metrics))}
    for name in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"):
        assert [sample.value for sample in families[name].samples] == [0]
    (lora,) = families["vllm:lora_requests_info"].samples
    assert lora.labels == {"max_lora": "2", "running_lora_adapters": "", "waiting_lora_adapters": ""}
    assert lora.value == 0  # older than any step
    assert "vllm:cache_config_info" not in families  # the KV cache is not sized yet


def test_openmetrics_exposition_carries_them_too() -> None:
    """The endpoint picker parses the Prometheus text format (expfmt.NewTextParser); a Prometheus
    server may negotiate OpenMetrics, where prometheus-client 0.26 writes the sample names with `_`
    for `:` while HELP/TYPE keep the colon (prometheus/client_python#1177): either spelling passes."""
    metrics, _ = exported(EngineLoad(step=STEP, max_loras=4, block_size=16, num_gpu_blocks=2048))
    openmetrics = generate_openmetrics(metrics.registry).decode()
    assert "# TYPE vllm:lora_requests_info gauge" in openmetrics
    assert re.search(r'^vllm[:_]num_requests_waiting\{engine="0",model_name="[^"]+"\} 2\.0$', openmetrics, re.M)
    assert openmetrics.endswith("# EOF\n")


def test_the_vllm_names_are_the_one_exception_to_the_prefix() -> None:
    metrics, _ = exported(EngineLoad(step=STEP, max_loras=4, block_size=16, num_gpu_blocks=2048))
    names = {f"{family.name}_total" if family.type == "counter" else family.name
             for family in metrics.registry.collect()}
    assert names == EXPECTED_METRICS | set(PROTOCOL_METRICS)
    assert all(name.startswith("vllm:") for name in PROTOCOL_METRICS)
    assert {family.type for family in metrics.registry.collect() if family.name in PROTOCOL_METRICS} == {"gauge"}


def test_a_second_export_clashes_instead_of_doubling_series() -> None:
    metrics, engine = exported(EngineLoad(step=None, max_loras=4))
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        metrics.export_engine_load("other", engine.load)


def test_engine_steps_also_set_loragates_own_gauges() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.record_engine_stats(STEP)
    families = {family.name: family.samples[0].value for family in text_string_to_metric_families(text(metrics))
                if family.name.startswith("loragate_engine_") and family.samples}
    assert families["loragate_engine_requests_running"] == 3
    assert families["loragate_engine_requests_waiting"] == 2
    assert families["loragate_engine_kv_cache_usage_ratio"] == 0.25
