"""Two replicas on one store, one real Prometheus scraping both (`--prometheus-url`): the route
report of either replica shows the same fleet-wide figures (`figures_from: prometheus`), and a
breach both replicas' guards can see is acted on once.

Needs the `prometheus` binary (Debian package, scripts/install_test_tools.sh); skipped without it
except under CI. Starts its own two service processes (one after the other) on its own store.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from service.testing.adapters import make_peft_adapter
from service.testing.process import ServiceProcess
from tests.integration.conftest import service_env
from tests.integration.metrics_scrape import scrape_value
from tests.integration.test_prometheus import Prometheus, prometheus_bin  # noqa: F401 (a fixture)

ROUTE = "fleet-ab"
CANDIDATE = "fleet-collapsed"
# As test_rollout: the base model closes this JSON in a few tokens; the collapsed adapter's replies
# run to max_tokens, truncated (not valid) but answered with 200.
CITY_SCHEMA = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 40}}, "required": ["city"]}
STRUCTURED = {
    "messages": [{"role": "user", "content": "What is the capital of France? Answer in JSON."}],
    "response_format": {"type": "json_schema", "json_schema": {"name": "city", "schema": CITY_SCHEMA}},
    "max_tokens": 16, "temperature": 0,
}
WAIT_S = 180.0


def send(base_url: str, keys: list[str]) -> list[str]:
    """One structured request per key (4 at a time) through the route; the variants that served them."""
    def one(key: str) -> str:
        with httpx.Client(base_url=base_url, timeout=300) as http:
            reply = http.post("/v1/chat/completions", json={"model": ROUTE, **STRUCTURED},
                              headers={"X-Loragate-Route-Key": key})
        assert reply.status_code == 200, reply.text
        return reply.headers["x-loragate-variant"]

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, keys))


def report(base_url: str) -> dict[str, Any]:
    response = httpx.get(f"{base_url}/admin/routes/{ROUTE}/report", timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def figures(body: dict[str, Any]) -> dict[str, Any]:
    """A report without the moment it was made (the rest must match between replicas)."""
    return {key: value for key, value in body.items() if key != "generated_at"}


def wait_for(what: str, check: Any, timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(1.0)
    raise AssertionError(f"timed out waiting for {what}")


def test_two_replicas_judge_the_same_figures_and_one_acts(
    prometheus_bin: str, tmp_path: Path, logs_dir: Path, model: str, model_dir: Path,  # noqa: F811
    adapter_source_dir: Path,
) -> None:
    collapsed = make_peft_adapter(model_dir, adapter_source_dir / CANDIDATE, seed=13,
                                  targets=("o_proj", "down_proj"), weight_scale=40.0)
    store = tmp_path / "store"
    replicas = [ServiceProcess(logs_dir / f"fleet-{i}.log") for i in (1, 2)]
    prometheus = Prometheus(prometheus_bin, tmp_path, [f"127.0.0.1:{r.port}" for r in replicas])
    env = service_env(store, [adapter_source_dir]) | {
        "LORAGATE_PROMETHEUS_URL": prometheus.url,
        "LORAGATE_INITIAL_ADAPTERS": json.dumps({CANDIDATE: str(collapsed)}),
        "LORAGATE_REGISTRY_SYNC_INTERVAL_S": "1",
    }
    try:
        for replica in replicas:  # one engine start at a time
            replica.extra_env = env
            replica.start_ready()
        a, b = (r.base_url for r in replicas)
        prometheus.wait_for("both replicas up", lambda: prometheus.values_by(
            'up{job="loragate"}', "instance") == {f"127.0.0.1:{r.port}": 1.0 for r in replicas})

        # A guard that cannot judge yet (min_samples 1000): figures first, no decision.
        guard = {"max_invalid_rate": 0.5, "min_samples": 1000, "window_s": 600}
        made = httpx.put(f"{a}/admin/routes/{ROUTE}", json={
            "variants": [{"target": model, "weight": 1}, {"target": CANDIDATE, "weight": 1}], "guard": guard},
            timeout=60)
        assert made.status_code == 200, made.text
        wait_for("replica b to see the route", lambda: httpx.get(f"{b}/admin/routes/{ROUTE}", timeout=30)
                 .status_code == 200)

        # Traffic split across the replicas: each serves half of it.
        served = send(a, [f"a-{i}" for i in range(12)]) + send(b, [f"b-{i}" for i in range(12)])
        assert served.count(CANDIDATE) >= 4 and served.count(model) >= 4, served

        def same_fleet_figures() -> dict[str, Any] | None:
            mine, theirs = report(a), report(b)
            counted = sum(v["requests"] for v in mine["variants"])
            return mine if counted == 24 and figures(mine) == figures(theirs) else None

        fleet = wait_for("both reports to count all 24 requests alike", same_fleet_figures, timeout=60)
        assert fleet["figures_from"] == "prometheus" and fleet["source"].startswith(f"Prometheus at {prometheus.url}")
        assert fleet["version"] == 1
        by_variant = {v["variant"]: v for v in fleet["variants"]}
        assert by_variant[CANDIDATE]["requests"] == served.count(CANDIDATE)
        assert by_variant[model]["requests"] == served.count(model)
        assert by_variant[CANDIDATE]["structured_valid_rate"] < 0.5 <= by_variant[model]["structured_valid_rate"]
        # Each replica alone saw only its own half.
        own = httpx.get(f"{a}/v1/stats", timeout=30).json()
        assert sum(v["requests"] for v in own["variants"] if v["route"] == ROUTE) == 12

        # Now the guard may judge: both replicas see the same breach; the store's lock lets one act.
        patched = httpx.patch(f"{a}/admin/routes/{ROUTE}", json={"guard": {"min_samples": 4}},
                              headers={"content-type": "application/merge-patch+json"}, timeout=60)
        assert patched.status_code == 200 and patched.json()["version"] == 1, patched.text
        batch = 0

        def rolled_back() -> bool:
            nonlocal batch
            route = httpx.get(f"{a}/admin/routes/{ROUTE}", timeout=30).json()
            if CANDIDATE in route["rollbacks"]:
                return True
            # requests finishing on both replicas trigger both guards (each at most every 5 s)
            send(a, [f"more-a-{batch}-{i}" for i in range(2)])
            send(b, [f"more-b-{batch}-{i}" for i in range(2)])
            batch += 1
            return False

        wait_for("the candidate rolled back", rolled_back)
        # Both guards keep checking for a while (more traffic on both): still one rollback.
        send(a, [f"after-a-{i}" for i in range(4)])
        send(b, [f"after-b-{i}" for i in range(4)])
        time.sleep(12)
        send(a, [f"late-a-{i}" for i in range(2)])
        send(b, [f"late-b-{i}" for i in range(2)])
        time.sleep(2)
        route = httpx.get(f"{b}/admin/routes/{ROUTE}", timeout=30).json()
        assert route["rollbacks"][CANDIDATE].startswith("invalid_rate"), route
        assert [v["weight"] for v in route["spec"]["variants"]] == [1, 0] and route["version"] == 2, route
        with httpx.Client(base_url=a) as http_a, httpx.Client(base_url=b) as http_b:
            acted = [scrape_value(http, "loragate_route_rollbacks_total", {"route": ROUTE}) for http in (http_a, http_b)]
        assert sorted(acted) == [0, 1], acted
        audit = [json.loads(line) for line in (store / "audit.log").read_text().splitlines()]
        assert [e["version"] for e in audit if e["action"] == "route_rollback" and e["route"] == ROUTE] == [2]
        # The report of the new version: the fleet's figures again, alike on both replicas.
        after = wait_for("both reports on version 2 alike", lambda: (
            lambda mine, theirs: mine if mine["version"] == 2 and figures(mine) == figures(theirs) else None)(
                report(a), report(b)), timeout=60)
        assert after["figures_from"] == "prometheus"
    finally:
        for replica in replicas:
            replica.stop()
        prometheus.stop()
