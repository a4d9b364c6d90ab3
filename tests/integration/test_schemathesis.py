"""schemathesis's own runner (`loadtests.schemathesis_run`, i.e. `schemathesis run`) against a live,
keyed service of its own: every operation of the OpenAPI document (admin upload and DELETE
included), 100 examples per operation, every check, bounded in time, its reports kept.

A service of its own because the run registers, changes and deletes adapters and routes; DELETE
is pinned to the scratch adapter and route made here. Generation is capped at 16 tokens (the
document states the cap), so the run's length is examples x operations, not the model's.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from loadtests.schemathesis_run import main as schemathesis_run
from service.testing.adapters import make_peft_adapter
from service.testing.process import ServiceProcess
from tests.integration.conftest import service_env

ADMIN_KEY = "st-admin-key-0123456789abcdef"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
EXAMPLES = int(os.environ.get("LORAGATE_SCHEMATHESIS_EXAMPLES", "100"))
BOUND_S = 1500  # the whole run, seconds (a full run here takes a fraction of this)


@pytest.fixture(scope="module")
def fuzzed(logs_dir: Path, tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[ServiceProcess]:
    store, sources = tmp_path_factory.mktemp("st-store"), tmp_path_factory.mktemp("st-sources")
    make_peft_adapter(model_dir, sources / "served", seed=11)
    make_peft_adapter(model_dir, sources / "scratch", seed=12)
    env = service_env(store, [sources]) | {
        "LORAGATE_AUTH_DISABLED": "false",
        "LORAGATE_API_KEYS": json.dumps(["st-api-key-0123456789abcdef"]),
        "LORAGATE_ADMIN_KEYS": json.dumps([ADMIN_KEY]),
        "LORAGATE_MAX_TOKENS_LIMIT": "16",
        "LORAGATE_MAX_N": "2",
        "LORAGATE_MAX_CONCURRENT_REQUESTS": "4",
        "LORAGATE_MAX_QUEUED_REQUESTS": "32",
        "LORAGATE_REQUEST_TIMEOUT_S": "120",
    }
    proc = ServiceProcess(logs_dir / "schemathesis-service.log", env=env).start()
    try:
        proc.wait_ready()
        with httpx.Client(base_url=proc.base_url, headers=ADMIN, timeout=120) as http:
            for name in ("served", "scratch"):
                assert http.post("/admin/adapters", json={"name": f"st-{name}", "path": str(sources / name)}
                                 ).status_code == 201
            route = {"variants": [{"target": "st-served", "weight": 1}]}
            assert http.put("/admin/routes/st-scratch-route", json=route).status_code == 200
        yield proc
    finally:
        proc.stop()


def test_schemathesis_run_finds_no_server_error_and_nothing_the_document_contradicts(
        fuzzed: ServiceProcess, model: str, tmp_path: Path) -> None:
    report = Path(os.environ.get("LORAGATE_SCHEMATHESIS_REPORT_DIR", tmp_path / "schemathesis"))
    code = schemathesis_run([
        "--base-url", fuzzed.base_url, "--key", ADMIN_KEY, "--examples", str(EXAMPLES),
        "--models", f"{model},st-served", "--scratch-adapter", "st-scratch", "--scratch-route", "st-scratch-route",
        "--report-dir", str(report), "--timeout", str(BOUND_S),
    ])
    output = (report / "output.txt").read_text()
    assert code == 0, output[-8000:]
    suites = ET.parse(report / "junit.xml").getroot()
    cases = suites.findall(".//testcase")
    assert len(cases) >= 24, "every operation of the document was run"
    assert not suites.findall(".//failure") and not suites.findall(".//error"), output[-8000:]
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert phase in output
    with httpx.Client(base_url=fuzzed.base_url, headers=ADMIN, timeout=30) as http:
        assert http.get("/admin/adapters/st-served").status_code == 200  # DELETE never left the scratch names
