"""Request validation and error shapes, with a stand-in engine (fast; the real engine is
exercised in tests/integration)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from service.api.app import create_app
from service.api.deps import Services
from service.generation import GenerationLimits, GenerationService
from service.config import Settings
from service.engine import EngineState
from service.observability.metrics import Metrics
from service.routing import ModelRouter

MODEL = "base-model"


class StubEngine:
    """Tokenizes by words; refuses to generate, so any request reaching it fails the test."""

    state = EngineState.READY
    is_ready = True
    started_at = 0.0

    def __init__(self) -> None:
        self.generate_calls = 0

    def render_chat(self, messages: list[dict[str, str]]) -> list[int]:
        return [1] * sum(len(m["content"].split()) + 3 for m in messages)

    def tokenize(self, text: str) -> list[int]:
        return [1] * len(text.split())

    async def generate(self, *args, **kwargs):  # noqa: ANN002, ANN003
        self.generate_calls += 1
        raise AssertionError("a rejected request reached the engine")
        yield  # pragma: no cover

    async def check_health(self) -> bool:
        return True

    def begin_drain(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    def unfinished_requests(self) -> int:
        return 0


@pytest.fixture()
def engine() -> StubEngine:
    return StubEngine()


@pytest.fixture()
def client(engine: StubEngine, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(model=tmp_path, served_model_name=MODEL, max_model_len=256, max_tokens_limit=64, max_n=2)
    metrics = Metrics(CollectorRegistry())
    router = ModelRouter(MODEL)
    limits = GenerationLimits(max_model_len=256, max_tokens_limit=64, max_n=2)
    services = Services(  # type: ignore[arg-type]
        settings=settings, engine=engine, registry=None, router=router, metrics=metrics,
        generation=GenerationService(engine, router, metrics, limits),
    )
    with TestClient(create_app(settings, services)) as http:
        yield http


def post(client: TestClient, body: object, path: str = "/v1/chat/completions"):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(path, content=content, headers={"content-type": "application/json"})


MSG = [{"role": "user", "content": "hello there"}]


@pytest.mark.parametrize(("body", "status", "param", "code"), [
    (b"{", 400, None, "invalid_value"),
    (b"[]", 400, None, "invalid_value"),
    (b"null", 400, None, "invalid_value"),
    ({"model": MODEL}, 400, "messages", "invalid_value"),
    ({"model": MODEL, "messages": []}, 400, "messages", "invalid_value"),
    ({"model": MODEL, "messages": [{"role": "robot", "content": "x"}]}, 400, "messages.0.role", "invalid_value"),
    ({"model": MODEL, "messages": MSG, "max_tokens": 0}, 400, "max_tokens", "invalid_value"),
    ({"model": MODEL, "messages": MSG, "max_tokens": 65}, 400, "max_tokens", "invalid_value"),
    ({"model": MODEL, "messages": MSG, "max_completion_tokens": 65}, 400, "max_tokens", "invalid_value"),
    ({"model": MODEL, "messages": MSG, "temperature": 3}, 400, "temperature", "invalid_value"),
    ({"model": MODEL, "messages": MSG, "top_p": -1}, 400, "top_p", "invalid_value"),
    ({"model": MODEL, "messages": MSG, "n": 3}, 400, "n", "invalid_value"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "w " * 250}], "max_tokens": 10}, 400, "messages", "context_length_exceeded"),
    ({"model": "other", "messages": MSG}, 404, "model", "model_not_found"),
    ({"model": MODEL, "messages": MSG, "tools": [{"type": "function", "function": {"name": "f"}}]}, 400, None, "invalid_value"),
    ({"model": MODEL, "messages": MSG, "logprobs": True}, 400, None, "invalid_value"),
    ({"model": MODEL, "messages": MSG, "n": 2, "temperature": 0}, 400, "n", "invalid_value"),
    ({"model": MODEL, "messages": MSG, "response_format": {"type": "json_schema"}}, 400, "response_format", "invalid_value"),
    ({"model": MODEL, "messages": MSG, "response_format": {"type": "xml"}}, 400, "response_format.type", "invalid_value"),
])
def test_rejections_use_openai_error_shape(client: TestClient, engine: StubEngine, body, status, param, code) -> None:
    response = post(client, body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param and error["code"] == code
    assert error["type"] == "invalid_request_error"
    assert engine.generate_calls == 0


def test_context_message_names_the_limit(client: TestClient) -> None:
    response = post(client, {"model": MODEL, "messages": [{"role": "user", "content": "w " * 200}], "max_tokens": 64})
    assert "maximum context length is 256 tokens" in response.json()["error"]["message"]


def test_unknown_model_creates_no_metric_series(client: TestClient) -> None:
    post(client, {"model": "made-up-name-123", "messages": MSG})
    assert "made-up-name-123" not in client.get("/metrics").text


def test_not_ready_engine_is_503(client: TestClient, engine: StubEngine) -> None:
    engine.is_ready = False
    engine.state = EngineState.STARTING
    response = post(client, {"model": MODEL, "messages": MSG})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "engine_unavailable"
    assert client.get("/health/ready").status_code == 503
    assert client.get("/health/live").status_code == 200
