from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.service_process import ServiceProcess

MODEL = os.environ.get("LORAGATE_TEST_MODEL_NAME", "SmolLM2-135M-Instruct")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("service-logs")


@pytest.fixture(scope="session")
def service(logs_dir: Path) -> Iterator[ServiceProcess]:
    """The shared service process: started once per test session."""
    proc = ServiceProcess(logs_dir / "service.log").start()
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
