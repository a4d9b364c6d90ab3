from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.config import Settings
from service.testing.process import ServiceProcess
from tests.integration.pace import Pace, measure_pace

MODEL = os.environ.get("LORAGATE_TEST_MODEL_NAME", "SmolLM2-135M-Instruct")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("service-logs")


@pytest.fixture(scope="session")
def adapter_source_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The allowed root that tests register adapters from."""
    return tmp_path_factory.mktemp("adapter-sources")


def service_env(store: Path, roots: list[Path]) -> dict[str, str]:
    return {
        "LORAGATE_ADAPTER_STORE": str(store),
        "LORAGATE_ADAPTER_ROOTS": json.dumps([str(root) for root in roots]),
        "LORAGATE_ADAPTER_MAX_BYTES": str(100 * 2**20),
        "LORAGATE_MAX_LORA_RANK": "64",
    }


@pytest.fixture(scope="session")
def service_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared service's adapter store (a second replica may share it)."""
    return tmp_path_factory.mktemp("adapter-store")


@pytest.fixture(scope="session")
def service(logs_dir: Path, adapter_source_dir: Path, service_store: Path) -> Iterator[ServiceProcess]:
    """The shared service process: started once per test session."""
    proc = ServiceProcess(logs_dir / "service.log", env=service_env(service_store, [adapter_source_dir])).start()
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def base_url(service: ServiceProcess) -> str:
    return service.base_url


@pytest.fixture()
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=120) as http:
        yield http


@pytest.fixture(scope="session")
def model() -> str:
    return MODEL


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The served model folder (the same settings the service process reads)."""
    return Settings().model_dir


@pytest.fixture(scope="session")
def pace(base_url: str, model: str) -> Pace:
    """The engine's decoding speed on this machine, measured once on the shared service: size
    "long enough" requests and deadlines from it, not from constants (tests/integration/pace.py)."""
    return measure_pace(base_url, model)
