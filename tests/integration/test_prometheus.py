"""A real Prometheus server scrapes the running service with the repository's rule files loaded.

Needs the `prometheus` binary (Debian package `prometheus`, installed by scripts/install.sh when it
runs as root). Without it the module is skipped, except under CI (CI set) where that is a failure.
"""

from __future__ import annotations

import math
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from service.testing.process import ServiceProcess, free_port
from tests.integration.metrics_scrape import scrape_value
from tests.integration.traffic import Sent, chat, register_adapter, stream_chat
from tests.support.tools import required_tool

REPO_ROOT = Path(__file__).resolve().parents[2]

RULE_FILES = sorted((REPO_ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
WAIT_S = 60.0


@pytest.fixture(scope="module")
def prometheus_bin() -> str:
    return required_tool("prometheus", "Debian package `prometheus`, scripts/install_test_tools.sh as root")


class Prometheus:
    """One Prometheus process on a free port, scraping `target` (one or several) every second."""

    def __init__(self, binary: str, workdir: Path, target: str | list[str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = workdir / "prometheus.yml"
        self.config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "rule_files": [str(path) for path in RULE_FILES],
            # job "loragate", as in deploy/prometheus/prometheus.yml (the alerts select on it).
            "scrape_configs": [{"job_name": "loragate", "static_configs": [{"targets": [target] if isinstance(target, str) else target}]}],
        }))
        self.log_path = workdir / "prometheus.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [binary, f"--config.file={self.config}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            cwd=workdir, stdout=self._log, stderr=subprocess.STDOUT,
        )

    def query(self, expr: str) -> list[dict]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def values_by(self, expr: str, label: str) -> dict[str, float]:
        return {series["metric"].get(label, ""): float(series["value"][1]) for series in self.query(expr)}

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float = WAIT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if check():
                    return
            except httpx.HTTPError:
                pass  # not listening yet
            time.sleep(0.5)
        raise TimeoutError(f"prometheus: {what} not seen within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-40:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


@pytest.fixture(scope="module")
def prometheus(prometheus_bin: str, service: ServiceProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    server = Prometheus(prometheus_bin, tmp_path_factory.mktemp("prometheus"), f"127.0.0.1:{service.port}")
    try:
        server.wait_for("the service target up", lambda: server.values_by('up{job="loragate"}', "job") == {"loragate": 1.0})
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def traffic(prometheus: Prometheus, base_url: str, model: str, model_dir: Path, adapter_source_dir: Path) -> Iterator[dict[str, float]]:
    """Requests to the base model and a new adapter; returns the expected requests_total per model."""
    with httpx.Client(base_url=base_url, timeout=120) as http:
        adapter = register_adapter(http, model_dir, adapter_source_dir, "prom-tuned", seed=21)
        base, tuned = Sent(), Sent()
        # One request each first, scraped before the rest, so that rate() over the new adapter's
        # series sees an increase (a series' first sample has no rate).
        chat(http, model, base)
        chat(http, adapter, tuned)
        prometheus.wait_for("the adapter's first request", lambda: prometheus.values_by(
            f'loragate_requests_total{{model="{adapter}"}}', "model").get(adapter) == 1.0)
        chat(http, model, base)
        stream_chat(http, model, base)
        for _ in range(3):
            chat(http, adapter, tuned)
        stream_chat(http, adapter, tuned)
        assert tuned.requests == 5
        # The base model also served the rest of the session, so its expected value is what the
        # service itself exports now (no traffic runs in between).
        yield {model: scrape_value(http, "loragate_requests_total", {"model": model}),
               adapter: float(tuned.requests)}
        http.delete(f"/admin/adapters/{adapter}")


def test_prometheus_sees_base_and_adapter_series(prometheus: Prometheus, traffic: dict[str, float], model: str) -> None:
    query = "sum by (model) (loragate_requests_total)"
    seen: dict[str, float] = {}

    def settled() -> bool:
        seen.clear()
        seen.update(prometheus.values_by(query, "model"))
        return all(seen.get(name) == value for name, value in traffic.items())

    prometheus.wait_for(f"{query} == {traffic}", settled)
    assert {name: seen[name] for name in traffic} == traffic
    assert len(traffic) == 2 and traffic[model] >= 3


def test_recording_rules_per_model(prometheus: Prometheus, traffic: dict[str, float], model: str) -> None:
    adapter = next(name for name in traffic if name != model)
    p95: dict[str, float] = {}

    def evaluated() -> bool:
        p95.clear()
        p95.update(prometheus.values_by("loragate_model:request_duration_seconds:p95_5m", "model"))
        return all(name in p95 and math.isfinite(p95[name]) for name in traffic)

    prometheus.wait_for("loragate_model:request_duration_seconds:p95_5m for base and adapter", evaluated)
    assert p95[model] > 0 and p95[adapter] > 0
    kinds = prometheus.values_by("loragate_model:kind:info", "model")
    assert kinds.get(model) == 1 and kinds.get(adapter) == 1
    kind_of = {s["metric"]["model"]: s["metric"]["kind"] for s in prometheus.query("loragate_model:kind:info")}
    assert (kind_of[model], kind_of[adapter]) == ("base", "adapter")
    alerts = httpx.get(f"{prometheus.url}/api/v1/rules", params={"type": "alert"}, timeout=10).json()
    names = {rule["name"] for group in alerts["data"]["groups"] for rule in group["rules"]}
    assert "LoragateAdapterLatencyAboveBase" in names  # the alert rules loaded too
