"""Every Prometheus metric loragate exports, in one place.

Label values come only from names the service itself resolved (the base model, registered
adapters, configured routes), never from raw request fields, so an unknown `model` cannot
create new series.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

# Milliseconds to minutes: small CPU models answer in ~0.1-10 s, queues can add minutes.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
TOKEN_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

NO_ROUTE = "none"  # route/variant label of a request that named a model directly

TARGET_LABELS = ("base_model", "model", "route", "variant")


class Metrics:
    """Holds the metric objects; the service records through the helper methods below."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self.requests = Counter(
            "loragate_requests", "Requests finished, by what served them and HTTP status.",
            (*TARGET_LABELS, "endpoint", "status"), registry=registry,
        )
        self.request_duration = Histogram(
            "loragate_request_duration_seconds", "End-to-end request duration.",
            (*TARGET_LABELS, "endpoint"), buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.time_to_first_token = Histogram(
            "loragate_time_to_first_token_seconds", "Time from arrival to the first output token.",
            TARGET_LABELS, buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.time_per_output_token = Histogram(
            "loragate_time_per_output_token_seconds", "Mean time per output token after the first.",
            TARGET_LABELS, buckets=TOKEN_LATENCY_BUCKETS, registry=registry,
        )
        self.queue_time = Histogram(
            "loragate_queue_time_seconds", "Time a request waited in the engine queue.",
            ("base_model", "model"), buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.prompt_tokens = Counter(
            "loragate_prompt_tokens", "Prompt tokens processed.", TARGET_LABELS, registry=registry,
        )
        self.completion_tokens = Counter(
            "loragate_completion_tokens", "Completion tokens generated.", TARGET_LABELS, registry=registry,
        )
        self.structured_outputs = Counter(
            "loragate_structured_output", "Structured-output replies by validation result.",
            (*TARGET_LABELS, "result"), registry=registry,
        )
        self.in_flight = Gauge(
            "loragate_requests_in_flight", "Requests being generated now.",
            ("base_model", "model"), registry=registry,
        )
        self.rejected = Counter(
            "loragate_rejected_requests", "Requests refused before generation, by reason.",
            ("reason",), registry=registry,
        )
        self.adapter_registrations = Counter(
            "loragate_adapter_registrations", "Adapter registration attempts by result.",
            ("result",), registry=registry,
        )
        self.adapter_loads = Counter(
            "loragate_adapter_loads", "Adapter loads into the engine by result.",
            ("adapter", "result"), registry=registry,
        )
        self.adapter_load_duration = Histogram(
            "loragate_adapter_load_duration_seconds", "Time to load an adapter into the engine.",
            buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.adapters_registered = Gauge(
            "loragate_adapters_registered", "Adapters in the registry.", registry=registry,
        )
        self.adapters_resident = Gauge(
            "loragate_adapters_resident", "Adapters loaded in the engine.", registry=registry,
        )
        self.route_assignments = Counter(
            "loragate_route_assignments", "Requests assigned to a route variant.",
            ("route", "variant"), registry=registry,
        )
        self.route_variant_weight = Gauge(
            "loragate_route_variant_weight", "Configured weight of each route variant (0 after a rollback).",
            ("route", "variant"), registry=registry,
        )
        self.route_rollbacks = Counter(
            "loragate_route_rollbacks", "Route variants rolled back to zero weight by a guard, by reason.",
            ("route", "variant", "reason"), registry=registry,
        )
        self.shadow_requests = Counter(
            "loragate_shadow_requests", "Mirrored requests sent to a route's shadow target, by status.",
            ("route", "variant", "status"), registry=registry,
        )
        self.engine_ready = Gauge(
            "loragate_engine_ready", "1 when the engine can serve, else 0.", registry=registry,
        )
        self.engine_running = Gauge(
            "loragate_engine_requests_running", "Requests the engine is running.", registry=registry,
        )
        self.engine_waiting = Gauge(
            "loragate_engine_requests_waiting", "Requests waiting in the engine queue.", registry=registry,
        )
        self.engine_unfinished = Gauge(
            "loragate_engine_requests_unfinished",
            "Requests the engine holds (running, waiting or finishing); read at scrape time.",
            registry=registry,
        )
        self.kv_cache_usage = Gauge(
            "loragate_engine_kv_cache_usage_ratio", "Fraction of the KV cache in use (0-1).", registry=registry,
        )

    def record_engine_stats(self, running: int, waiting: int, kv_cache_usage: float) -> None:
        self.engine_running.set(running)
        self.engine_waiting.set(waiting)
        self.kv_cache_usage.set(kv_cache_usage)
