"""The Prometheus source's queries against a real Prometheus (Debian's `prometheus`, installed by
scripts/install_test_tools.sh): two tiny exporters on loopback stand for two replicas, each
recording into loragate's own Metrics as the service does; Prometheus scrapes them every second.

What must hold: counts are exact (a version's series are born with their first request, which
`increase()` would miss, and a restarted replica's counters start again from 0), another
version's requests are not counted, and the latency the guard reads agrees with Prometheus's own
`histogram_quantile` over the same counts. Skipped without the binary, except under CI.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from prometheus_client import CollectorRegistry, start_http_server

from service.observability import Metrics
from service.routing import ServingTarget
from service.routing.prometheus_source import PrometheusSampleSource, window_count
from service.testing.process import free_port
from tests.support.tools import required_tool

ROUTE, BASE = "ab", "base"
WAIT_S = 30.0


@pytest.fixture(scope="module")
def prometheus_bin() -> str:
    return required_tool("prometheus", "Debian package `prometheus`, scripts/install_test_tools.sh as root")


class Replica:
    """loragate's metrics on a loopback port, recorded as accounting.py records them."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.metrics = Metrics(CollectorRegistry())
        self.server, self.thread = start_http_server(self.port, addr="127.0.0.1", registry=self.metrics.registry)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def served(self, variant: str, version: int, n: int, status: str = "200", duration: float = 0.3,
               structured: str | None = None, tokens: int = 5) -> None:
        target = ServingTarget(base_model=BASE, model=variant, route=ROUTE, variant=variant, route_version=version)
        labels = target.labels
        for _ in range(n):
            self.metrics.requests.labels(**labels, endpoint="chat", status=status).inc()
            self.metrics.request_duration.labels(**labels, endpoint="chat").observe(duration)
            self.metrics.prompt_tokens.labels(**labels).inc(10)
            self.metrics.completion_tokens.labels(**labels).inc(tokens)
            self.metrics.time_to_first_token.labels(**labels).observe(duration / 3)
            if structured is not None:
                self.metrics.structured_outputs.labels(**labels, result=structured).inc()

    def decided(self, variant: str, version: int, n: int, flagged: int, confidence: float) -> None:
        labels = ServingTarget(base_model=BASE, model=variant, route=ROUTE, variant=variant,
                               route_version=version).labels
        for i in range(n):
            if i < flagged:
                self.metrics.triage_needs_review.labels(**labels).inc()
            for field in ("category", "priority"):
                self.metrics.triage_confidence.labels(**labels, field=field).observe(confidence)


class Prometheus:
    def __init__(self, binary: str, workdir: Path, targets: list[str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [{"job_name": "loragate", "static_configs": [{"targets": targets}]}],
        }))
        self.log = (workdir / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            cwd=workdir, stdout=self.log, stderr=subprocess.STDOUT)

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5).json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def wait_for(self, what: str, check: Callable[[], bool]) -> None:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "prometheus exited"
            try:
                if check():
                    return
            except (httpx.HTTPError, AssertionError):
                pass
            time.sleep(0.25)
        raise AssertionError(f"timed out waiting for {what}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@pytest.fixture()
def fleet(prometheus_bin: str, tmp_path: Path) -> Iterator[tuple[Prometheus, list[Replica]]]:
    replicas = [Replica(), Replica()]
    prometheus = Prometheus(prometheus_bin, tmp_path, [f"127.0.0.1:{r.port}" for r in replicas])
    try:
        prometheus.wait_for("both replicas scraped",
                            lambda: sum(float(s["value"][1]) for s in prometheus.query('up{job="loragate"}')) == 2)
        yield prometheus, replicas
    finally:
        prometheus.stop()
        for replica in replicas:
            replica.stop()


def totals(samples: list, key: Callable) -> dict:
    counted: dict = {}
    for sample in samples:
        counted[key(sample)] = counted.get(key(sample), 0) + 1
    return counted


def test_the_queries_give_the_fleet_figures_of_one_version(fleet: tuple[Prometheus, list[Replica]]) -> None:
    prometheus, (a, b) = fleet
    source = PrometheusSampleSource(prometheus.url, window_s=300, timeout_s=5)
    # Version 1 first: its requests must not count for version 2.
    a.served("ctl", 1, 7, status="500")
    # Version 2's series are born with these requests (no zero sample before them).
    a.served("ctl", 2, 6, duration=0.2)
    b.served("ctl", 2, 4, duration=0.2)
    a.served("cand", 2, 3, duration=0.7, structured="valid")
    b.served("cand", 2, 2, status="502", duration=4.0, structured="invalid")
    b.decided("cand", 2, 4, flagged=1, confidence=0.8)
    time.sleep(1.5)  # at least one scrape in between
    a.served("cand", 2, 2, duration=0.7, structured="valid")  # increases of an existing series
    # Replica b restarts: its counters start again from 0 on the same port.
    b.stop()
    time.sleep(2.5)  # scrapes fail meanwhile: Prometheus marks b's series stale
    b = fleet[1][1] = Replica(port=b.port)
    b.served("cand", 2, 1, duration=0.7, structured="valid")
    b.served("ctl", 2, 1, duration=0.2)

    def counted() -> dict:
        samples, _ = source.route_window(ROUTE, 120, version=2)
        return totals(samples, lambda s: (s.variant, s.status))

    expected = {("ctl", 200): 11, ("cand", 200): 6, ("cand", 502): 2}
    prometheus.wait_for("every request counted", lambda: counted() == expected)
    samples, outcomes = source.route_window(ROUTE, 120, version=2)
    assert totals(samples, lambda s: (s.variant, s.structured_output)) == {
        ("ctl", None): 11, ("cand", "valid"): 6, ("cand", "invalid"): 2}
    assert {s.route_version for s in samples} == {2} and {s.model for s in samples} == {"ctl", "cand"}
    assert sum(s.completion_tokens for s in samples if s.variant == "cand") == 8 * 5  # all 8 requests' tokens
    assert len(outcomes) == 4 and sum(o.needs_review for o in outcomes) == 1
    assert dict(outcomes[0].confidence) == pytest.approx({"category": 0.8, "priority": 0.8})
    # Version 1 alone: the 7 errors of the control.
    v1, _ = source.route_window(ROUTE, 120, version=1)
    assert totals(v1, lambda s: (s.variant, s.status)) == {("ctl", 500): 7}
    # increase() would have missed the first scrape of every new series (and extrapolated).
    naive = prometheus.query(f'sum(increase(loragate_requests_total{{route="{ROUTE}",route_version="2"}}[120s]))')
    assert float(naive[0]["value"][1]) != 19

    # The latency the guard reads is Prometheus's own histogram_quantile over the same counts.
    buckets = window_count("loragate_request_duration_seconds_bucket", "variant, le", ROUTE, 2, 120)
    theirs = {r["metric"]["variant"]: float(r["value"][1]) for r in prometheus.query(
        f"histogram_quantile(0.95, {buckets})")}
    for variant in ("ctl", "cand"):
        durations = [s.duration_s for s in samples if s.variant == variant and s.status < 400]
        assert float(np.percentile(durations, 95)) == pytest.approx(theirs[variant], rel=0.1), variant
    # 0.2 s is in the (0.1, 0.25] bucket: exact only to the bucket's bounds. The candidate's
    # successful 0.7 s requests share their histogram with its two failed 4 s ones (no status label):
    # its latency reaches into their (2.5, 5] bucket.
    assert all(0.1 < s.duration_s <= 0.25 for s in samples if s.variant == "ctl")
    cand = [s.duration_s for s in samples if s.variant == "cand" and s.status < 400]
    assert all(0.5 < d <= 5.0 for d in cand) and max(cand) > 2.5
