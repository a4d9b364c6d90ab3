"""/metrics and /v1/stats against the real service: exact counter deltas for base and adapter."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from service.config import Settings
from tests.integration.metrics_scrape import scrape
from tests.integration.test_gateway import assert_openai_error
from tests.integration.traffic import MESSAGES, Sent, chat, completion, register_adapter, stream_chat

Samples = list[tuple[str, dict[str, str], float]]


def total(samples: Samples, name: str, **labels: str) -> float:
    return sum(v for n, sample_labels, v in samples
               if n == name and all(sample_labels.get(k) == want for k, want in labels.items()))


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return total(after, name, **labels) - total(before, name, **labels)


@pytest.fixture(scope="module")
def adapter(base_url: str, model_dir: Path, adapter_source_dir: Path) -> Iterator[str]:
    with httpx.Client(base_url=base_url, timeout=120) as http:
        name = register_adapter(http, model_dir, adapter_source_dir, "metrics-tuned", seed=11)
        yield name
        http.delete(f"/admin/adapters/{name}")


def test_counters_and_histograms_match_usage(client: httpx.Client, model: str, adapter: str) -> None:
    before = scrape(client)
    base, tuned = Sent(), Sent()
    chat(client, model, base)
    completion(client, model, base)
    stream_chat(client, model, base)
    chat(client, adapter, tuned)
    stream_chat(client, adapter, tuned)
    after = scrape(client)

    for name, sent in ((model, base), (adapter, tuned)):
        assert delta(before, after, "loragate_requests_total", model=name, status="200") == sent.requests
        assert delta(before, after, "loragate_requests_total", model=name) == sent.requests  # nothing else
        assert delta(before, after, "loragate_prompt_tokens_total", model=name) == sent.prompt_tokens
        assert delta(before, after, "loragate_completion_tokens_total", model=name) == sent.completion_tokens
        assert delta(before, after, "loragate_request_duration_seconds_count", model=name) == sent.requests
        assert delta(before, after, "loragate_time_to_first_token_seconds_count", model=name) == sent.requests
        assert (delta(before, after, "loragate_time_per_output_token_seconds_count", model=name)
                == sent.multi_token_replies)
        assert delta(before, after, "loragate_request_duration_seconds_sum", model=name) > 0
        assert total(after, "loragate_requests_in_flight", model=name) == 0

    # Every label set names what served the request: the base model for both, direct requests.
    adapter_series = [labels for n, labels, _ in after if n == "loragate_requests_total" and labels["model"] == adapter]
    assert adapter_series and all(
        labels["base_model"] == model and labels["route"] == "none" and labels["variant"] == "none"
        for labels in adapter_series
    )
    assert delta(before, after, "loragate_requests_total", model=model, endpoint="completions") == 1
    assert delta(before, after, "loragate_requests_total", model=adapter, endpoint="chat") == 2


def model_label_values(samples: Samples) -> set[tuple[str, str]]:
    return {
        (label, value) for name, labels, _ in samples if name.startswith("loragate_")
        for label, value in labels.items() if label in ("model", "base_model", "adapter")
    }


def test_unknown_model_adds_no_label_values(client: httpx.Client, model: str) -> None:
    before = scrape(client)
    for name in ("no-such-adapter-7f3a", "SmolLM2-135M-Instruct-typo"):
        response = client.post("/v1/chat/completions", json={"model": name, "messages": MESSAGES, "max_tokens": 4})
        assert_openai_error(response, 404, code="model_not_found")
    after = scrape(client)
    assert model_label_values(after) == model_label_values(before)
    assert delta(before, after, "loragate_rejected_requests_total", reason="model_not_found") == 2


def test_stats_separates_base_and_adapter(client: httpx.Client, model: str, adapter: str) -> None:
    # A window that starts just before this test's traffic, so the counts are exact whatever ran
    # earlier in the session (the previous requests finished well over 1 s before `start`).
    time.sleep(2)
    start = time.time()
    base, tuned = Sent(), Sent()
    chat(client, model, base)
    stream_chat(client, model, base)
    chat(client, adapter, tuned)
    chat(client, adapter, tuned)
    stream_chat(client, adapter, tuned)
    too_long = client.post("/v1/chat/completions", json={"model": adapter, "messages": MESSAGES, "max_tokens": 10**6})
    assert_openai_error(too_long, 400, param="max_tokens")  # refused before the engine: an error in stats

    window = max(1.0, time.time() - start + 0.5)
    response = client.get("/v1/stats", params={"window_seconds": window})
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["window_seconds"] == pytest.approx(window)
    models = {entry["model"]: entry for entry in report["models"]}
    assert set(models) == {model, adapter}, report
    assert report["variants"] == []  # direct requests only

    base_entry, tuned_entry = models[model], models[adapter]
    assert (base_entry["kind"], base_entry["base_model"]) == ("base", model)
    assert (tuned_entry["kind"], tuned_entry["base_model"]) == ("adapter", model)
    assert (base_entry["requests"], base_entry["errors"], base_entry["error_rate"]) == (2, 0, 0.0)
    assert (tuned_entry["requests"], tuned_entry["errors"]) == (4, 1)
    assert tuned_entry["error_rate"] == pytest.approx(0.25)
    for entry, sent in ((base_entry, base), (tuned_entry, tuned)):
        assert entry["mean_completion_tokens"] == pytest.approx(sent.completion_tokens / sent.requests)
        assert entry["mean_prompt_tokens"] == pytest.approx(sent.prompt_tokens / sent.requests)
        assert 0 < entry["latency_p50_s"] <= entry["latency_p95_s"]
        assert 0 < entry["ttft_p50_s"] <= entry["ttft_p95_s"] <= entry["latency_p95_s"]
        assert entry["tokens_per_second"] > 0
        assert entry["structured_requests"] == 0 and entry["structured_valid_rate"] is None
    assert tuned_entry["latency_p95_ratio_vs_base"] == pytest.approx(
        tuned_entry["latency_p95_s"] / base_entry["latency_p95_s"]
    )
    assert base_entry["latency_p95_ratio_vs_base"] is None


@pytest.mark.parametrize("window", ["0", "abc", str(10**9)])
def test_stats_rejects_bad_windows(client: httpx.Client, window: str) -> None:
    assert_openai_error(client.get("/v1/stats", params={"window_seconds": window}), 400, code="invalid_value")


def test_openmetrics_on_request(client: httpx.Client) -> None:
    response = client.get("/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert response.text.endswith("# EOF\n")
    assert "# TYPE loragate_requests counter" in response.text
    plain = client.get("/metrics")
    assert plain.headers["content-type"].startswith("text/plain")
    assert "# EOF" not in plain.text


# ------------------------------------------------- inference-gateway protocol (vLLM's names)
def gateway_reading(client: httpx.Client) -> dict[str, dict[str, str] | float]:
    """What an endpoint picker reads from one scrape: the three gauges (with their labels checked
    below), and the labels and value of the newest `vllm:lora_requests_info` series."""
    samples = scrape(client)
    reading: dict[str, dict[str, str] | float] = {}
    for name in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"):
        (value,) = [v for n, _, v in samples if n == name]  # one engine: one series
        reading[name] = value
        reading[f"{name} labels"] = next(labels for n, labels, _ in samples if n == name)
    lora = [(v, labels) for n, labels, v in samples if n == "vllm:lora_requests_info"]
    assert lora, "no vllm:lora_requests_info series"
    reading["lora time"], reading["lora"] = max(lora, key=lambda series: series[0])
    (reading["cache"],) = [labels for n, labels, _ in samples if n == "vllm:cache_config_info"]
    return reading


def adapters(label: str) -> set[str]:
    return {name.strip() for name in label.split(",") if name.strip()}


def test_gateway_protocol_metrics_under_adapter_traffic(base_url: str, client: httpx.Client, model: str,
                                                        adapter: str) -> None:
    """While requests to an adapter run, a gateway scraping /metrics sees it in running_lora_adapters,
    with max_lora the engine's setting and the load gauges as numbers; once they end, it is gone."""
    body = {"model": adapter, "messages": MESSAGES, "max_tokens": 64, "min_tokens": 64, "ignore_eos": True,
            "temperature": 0}
    concurrent = 4
    start = threading.Barrier(concurrent)

    def one(_: int) -> httpx.Response:
        with httpx.Client(base_url=base_url, timeout=300) as http:
            start.wait()
            return http.post("/v1/chat/completions", json=body)

    in_flight = None
    with ThreadPoolExecutor(concurrent) as pool:
        replies = [pool.submit(one, i) for i in range(concurrent)]
        while not all(reply.done() for reply in replies):
            reading = gateway_reading(client)
            if adapter in adapters(reading["lora"]["running_lora_adapters"]):
                in_flight = reading
                break
            time.sleep(0.05)
        statuses = [reply.result().status_code for reply in replies]
    assert statuses == [200] * concurrent, statuses
    assert in_flight is not None, "the adapter never appeared in running_lora_adapters while its requests ran"

    lora = in_flight["lora"]
    assert set(lora) == {"max_lora", "running_lora_adapters", "waiting_lora_adapters"}
    assert lora["max_lora"] == str(Settings().engine.max_loras)  # the service's setting, same environment
    assert adapters(lora["waiting_lora_adapters"]) <= {adapter}  # served names only, no other traffic
    assert abs(in_flight["lora time"] - time.time()) < 120  # the step's wall-clock time
    assert in_flight["vllm:num_requests_running"] >= 1
    assert in_flight["vllm:num_requests_waiting"] >= 0
    assert 0 < in_flight["vllm:kv_cache_usage_perc"] <= 1  # the running requests hold KV blocks
    for name in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"):
        assert in_flight[f"{name} labels"] == {"model_name": model, "engine": "0"}
    cache = in_flight["cache"]
    assert int(cache["block_size"]) > 0 and int(cache["num_gpu_blocks"]) > 0

    # The step that finished the last request reported it: nothing runs any more.
    deadline = time.monotonic() + 30
    while (reading := gateway_reading(client))["vllm:num_requests_running"] or adapters(
            reading["lora"]["running_lora_adapters"]):
        assert time.monotonic() < deadline, reading
        time.sleep(0.2)
    assert reading["lora time"] >= in_flight["lora time"]
