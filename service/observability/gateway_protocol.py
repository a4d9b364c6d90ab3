"""The metrics an inference gateway's endpoint picker reads from a model server.

The Gateway API Inference Extension's model-server protocol (its
docs/proposals/003-model-server-protocol; llm-d-router's docs/plugin-metric-protocol.md) has the
endpoint picker (EPP) scrape each pod's /metrics for queue length, running requests, KV cache use
and the LoRA adapters each pod serves, and its LoRA-affinity scorer sends a request to a pod that
already runs its adapter. The picker reads vLLM's metric names by default, so these are exported
under vLLM's names and label semantics: the one exception to the `loragate_` prefix.

Computed when scraped from the engine's latest scheduler step (`Engine.load()`), so every scrape
(the picker's default is every 50 ms) sees the newest step; one `vllm:lora_requests_info` series,
valued at that step's time (vLLM keeps one series per label set it ever saw, and the picker takes
the one with the newest time: the same reading).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from service.engine.types import EngineLoad

RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
KV_CACHE_USAGE = "vllm:kv_cache_usage_perc"
LORA_INFO = "vllm:lora_requests_info"
CACHE_CONFIG_INFO = "vllm:cache_config_info"
PROTOCOL_METRICS = (RUNNING, WAITING, KV_CACHE_USAGE, LORA_INFO, CACHE_CONFIG_INFO)

# vLLM's label names: its gauges carry the served model and the engine index (one engine here).
ENGINE_LABELS = ("model_name", "engine")
LORA_LABELS = ("max_lora", "waiting_lora_adapters", "running_lora_adapters")
CACHE_LABELS = ("block_size", "num_gpu_blocks", "engine")


class GatewayProtocolCollector(Collector):
    """Yields the protocol's metrics from `load()` at each collection."""

    def __init__(self, model_name: str, load: Callable[[], EngineLoad]) -> None:
        self._model_name = model_name
        self._load = load

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Names only (no samples): the registry checks them for clashes without reading the engine.
        yield from self._families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        load = self._load()
        running, waiting, kv_cache, lora_info, cache_info = self._families()
        engine = [self._model_name, "0"]
        step = load.step
        running.add_metric(engine, step.running if step else 0)
        waiting.add_metric(engine, step.waiting if step else 0)
        kv_cache.add_metric(engine, step.kv_cache_usage if step else 0.0)
        yield from (running, waiting, kv_cache)
        # Before the first step: no adapter runs or waits; 0 is older than any step's time.
        lora_info.add_metric([str(load.max_loras), ",".join(step.waiting_adapters) if step else "",
                              ",".join(step.running_adapters) if step else ""], step.at if step else 0.0)
        yield lora_info
        if load.block_size is not None and load.num_gpu_blocks is not None:
            cache_info.add_metric([str(load.block_size), str(load.num_gpu_blocks), "0"], 1)
            yield cache_info

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(RUNNING, "Number of requests in model execution batches.", labels=ENGINE_LABELS),
            GaugeMetricFamily(WAITING, "Number of requests waiting to be processed.", labels=ENGINE_LABELS),
            GaugeMetricFamily(KV_CACHE_USAGE, "KV-cache usage. 1 means 100 percent usage.", labels=ENGINE_LABELS),
            GaugeMetricFamily(LORA_INFO, "Running stats on lora requests (value: time of the engine step they "
                              "were read at, seconds since the epoch).", labels=LORA_LABELS),
            GaugeMetricFamily(CACHE_CONFIG_INFO, "Information of the LLMEngine CacheConfig.", labels=CACHE_LABELS),
        )
