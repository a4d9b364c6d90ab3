"""Request validation and error shapes, with a stand-in engine (fast; the real engine is
exercised in tests/integration)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
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
    stalled = False
    started_at = 0.0
    vocab_size = 1000

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


@contextmanager
def serving(engine: StubEngine, tmp_path: Path) -> Iterator[TestClient]:
    """The app on a stand-in engine: MODEL, a 256-token context, at most 64 tokens and 2 choices, no keys."""
    settings = Settings(model=tmp_path, served_model_name=MODEL, max_model_len=256, max_tokens_limit=64, max_n=2,
                        auth_disabled=True)  # keys: tests/unit/api/test_auth.py
    metrics = Metrics(CollectorRegistry())
    router = ModelRouter(MODEL)
    limits = GenerationLimits(max_model_len=256, max_tokens_limit=64, max_n=2)
    services = Services(  # type: ignore[arg-type]
        settings=settings, engine=engine, registry=None, router=router, metrics=metrics,
        generation=GenerationService(engine, router, metrics, limits),
    )
    with TestClient(create_app(settings, services)) as http:
        yield http


@pytest.fixture()
def client(engine: StubEngine, tmp_path: Path) -> Iterator[TestClient]:
    with serving(engine, tmp_path) as http:
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
    ({"model": MODEL, "messages": MSG, "tools": [{"type": "function", "function": {"name": "f"}}]}, 400, "tools", "unsupported_parameter"),
    ({"model": MODEL, "messages": MSG, "use_beam_search": True}, 400, "use_beam_search", "unsupported_parameter"),
    # OpenAI's answer to an argument it does not know (misspelt fields included): never a silent 200.
    ({"model": MODEL, "messages": MSG, "temprature": 0}, 400, "temprature", "unrecognized_argument"),
    ({"model": MODEL, "messages": MSG, "top_logprobs": 2}, 400, "top_logprobs", "invalid_value"),
    ({"model": MODEL, "messages": MSG, "top_logprobs": 21, "logprobs": True}, 400, "top_logprobs", "invalid_value"),
    # vLLM had an advisory for exactly this overflow; was a 500.
    ({"model": MODEL, "messages": MSG, "seed": 2**64}, 400, "seed", "invalid_value"),
    # Was silently clamped to max_tokens.
    ({"model": MODEL, "messages": MSG, "max_tokens": 5, "min_tokens": 6}, 400, "min_tokens", "invalid_value"),
    ({"model": MODEL, "messages": MSG, "logit_bias": {"abc": 1}}, 400, "logit_bias", "invalid_value"),
    ({"model": MODEL, "messages": MSG, "logit_bias": {"5": 101}}, 400, "logit_bias.5", "invalid_value"),
    ({"model": MODEL, "messages": MSG, "logit_bias": {"1000": 5}}, 400, "logit_bias", "invalid_value"),
    ({"model": MODEL, "messages": MSG, "stop_token_ids": [-1]}, 400, "stop_token_ids", "invalid_value"),
    ({"model": MODEL, "messages": MSG, "allowed_token_ids": [7, 99999]}, 400, "allowed_token_ids", "invalid_value"),
    ({"model": MODEL, "messages": MSG, "top_k": -2}, 400, "top_k", "invalid_value"),
    ({"model": MODEL, "messages": MSG, "min_p": 1.5}, 400, "min_p", "invalid_value"),
    ({"model": MODEL, "messages": MSG, "structured_outputs": {"json_object": True, "disable_any_whitespace": "no"}},
     400, "structured_outputs.disable_any_whitespace", "invalid_value"),
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


@pytest.mark.parametrize(("body", "param", "code"), [
    ({"model": MODEL, "prompt": "hi", "logprobs": 6, "echo": True}, "echo", "unsupported_parameter"),
    ({"model": MODEL, "prompt": "hi", "logprobs": 21}, "logprobs", "invalid_value"),
    ({"model": MODEL, "prompt": "hi", "suffix": "x"}, "suffix", "unsupported_parameter"),
    ({"model": MODEL, "prompt": "hi", "best_of": 2}, "best_of", "unrecognized_argument"),
])
def test_completion_rejections(client: TestClient, engine: StubEngine, body, param, code) -> None:
    response = post(client, body, "/v1/completions")
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param and response.json()["error"]["code"] == code
    assert engine.generate_calls == 0


def test_unrecognized_argument_message_matches_openai(client: TestClient) -> None:
    response = post(client, {"model": MODEL, "messages": MSG, "frobnicate": 1})
    assert response.json()["error"]["message"] == "Unrecognized request argument supplied: frobnicate"


def test_harmless_openai_fields_and_off_values_are_accepted(client: TestClient, engine: StubEngine) -> None:
    # Clients send these explicitly; they change nothing that is generated. The stub engine then
    # raises (a bug, not a client error): the unexpected exception is a 500, never a 400.
    body = {"model": MODEL, "messages": MSG, "store": False, "metadata": {"a": "b"}, "tools": [], "tool_choice": "none",
            "parallel_tool_calls": True, "use_beam_search": False}
    response = post(TestClient(client.app, raise_server_exceptions=False), body)
    assert engine.generate_calls == 1
    assert response.status_code == 500 and response.json()["error"]["code"] == "internal_error"
    assert response.headers["x-request-id"]  # answered inside the access log


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
