"""Every row of `FAILURE_TABLE` provoked through the real app (a fake engine where generation must
fail): status, type, code, headers and `loragate_error_responses_total` come from the row, whoever
wrote the response (a route, authentication, admission, the body cap, the drain, validation or
Starlette itself)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from service.api.app import create_app
from service.api.deps import Services
from service.config import Settings
from service.engine import EngineState
from service.engine.types import EngineRequestError, EngineUnavailableError, GenerationFailedError
from service.errors import (
    FAILURE_TABLE,
    AuthenticationError,
    ConflictError,
    ContextLengthExceededError,
    DependencyFailedError,
    EngineNotReadyError,
    Failure,
    InvalidRequestError,
    MethodNotAllowedError,
    ModelNotFoundError,
    NotFoundError,
    OverloadedError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    RequestTimeoutError,
    ServiceError,
    ShuttingDownError,
    UnrecognizedArgumentError,
    UnsupportedMediaTypeError,
    UpstreamGenerationError,
    table_row,
)
from service.generation import GenerationLimits, GenerationService
from service.observability.metrics import Metrics
from service.routing import ModelRouter
from tests.unit.api.test_validation import MODEL, MSG, StubEngine

API_KEY, ADMIN_KEY = "api-key-0123456789abcdef", "admin-key-0123456789abcdef"
CHAT = "/v1/chat/completions"
KEY = {"authorization": f"Bearer {API_KEY}"}

# Rows no unit test can provoke as a response, why, and the integration test that covers them.
NOT_PROVOKED = {
    asyncio.CancelledError: "the client went away: nothing is sent, only loragate_requests_total{status='499'} "
                            "counts it (tests/integration/test_gateway.py::test_client_disconnect_aborts_generation)",
}


class FailingEngine(StubEngine):
    """Generation raises `fail` (or, with `stall`, never answers)."""

    def __init__(self) -> None:
        super().__init__()
        self.fail: BaseException | None = None
        self.stall = False

    async def generate(self, *args, **kwargs) -> AsyncIterator[object]:  # noqa: ANN002, ANN003
        self.generate_calls += 1
        if self.stall:
            await asyncio.sleep(60)
        assert self.fail is not None, "this case does not reach the engine"
        raise self.fail
        yield  # pragma: no cover


@dataclass
class Harness:
    http: TestClient
    engine: FailingEngine
    metrics: Metrics

    def errors_counted(self, status: int, code: str | None) -> float:
        value = self.metrics.registry.get_sample_value("loragate_error_responses_total",
                                                       {"status": str(status), "code": code or ""})
        return value or 0.0


@pytest.fixture()
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    for name in ("API_KEYS", "API_KEYS_FILE", "ADMIN_KEYS", "ADMIN_KEYS_FILE", "AUTH_DISABLED"):
        monkeypatch.delenv(f"LORAGATE_{name}", raising=False)
    settings = Settings(model=tmp_path, served_model_name=MODEL, max_model_len=256, max_tokens_limit=64, max_n=2,
                        api_keys=[API_KEY], admin_keys=[ADMIN_KEY], max_body_bytes=4096, rate_limit_rpm=2,
                        request_timeout_s=0.2)  # type: ignore[call-arg]
    engine, metrics, router = FailingEngine(), Metrics(CollectorRegistry()), ModelRouter(MODEL)
    generation = GenerationService(engine, router, metrics,  # type: ignore[arg-type]
                                   GenerationLimits(max_model_len=256, max_tokens_limit=64, max_n=2))
    services = Services(settings=settings, engine=engine, registry=None, router=router,  # type: ignore[arg-type]
                        metrics=metrics, generation=generation)
    with TestClient(create_app(settings, services), raise_server_exceptions=False) as http:
        yield Harness(http, engine, metrics)


def chat(h: Harness, **body: object) -> httpx.Response:
    return h.http.post(CHAT, json={"model": MODEL, "messages": MSG, **body}, headers=KEY)


def engine_raises(exc: BaseException) -> Callable[[Harness], httpx.Response]:
    """A failure raised while generating, as the engine (or what it calls) raises it."""
    def provoke(h: Harness) -> httpx.Response:
        h.engine.fail = exc
        response = chat(h)
        assert h.engine.generate_calls == 1  # it came from generation, not from an earlier check
        return response
    return provoke


def rate_limited(h: Harness) -> httpx.Response:
    for _ in range(2):  # rate_limit_rpm=2: the third request within the minute is refused
        h.http.post(CHAT, json={"model": "nope", "messages": MSG}, headers=KEY)
    return chat(h)


def not_ready(h: Harness) -> httpx.Response:
    h.engine.is_ready, h.engine.state = False, EngineState.STARTING
    return chat(h)


def draining(h: Harness) -> httpx.Response:
    h.http.app.state.lifecycle.draining = True
    return h.http.get("/v1/models", headers=KEY)


def timed_out(h: Harness) -> httpx.Response:
    h.engine.stall = True  # request_timeout_s=0.2
    return chat(h)


PROVOKE: dict[type[BaseException], Callable[[Harness], httpx.Response]] = {
    UnrecognizedArgumentError: lambda h: chat(h, temprature=0),
    ContextLengthExceededError: lambda h: chat(h, messages=[{"role": "user", "content": "w " * 250}], max_tokens=10),
    InvalidRequestError: lambda h: chat(h, temperature=3),  # request validation (FastAPI's, mapped)
    AuthenticationError: lambda h: h.http.get("/v1/models"),
    PermissionDeniedError: lambda h: h.http.get("/admin/adapters", headers=KEY),
    ModelNotFoundError: lambda h: chat(h, model="made-up"),
    NotFoundError: lambda h: h.http.get("/v1/nothing-here", headers=KEY),  # Starlette's own 404
    MethodNotAllowedError: lambda h: h.http.delete("/v1/models", headers=KEY),  # Starlette's own 405
    ConflictError: engine_raises(ConflictError("The adapter changed while in use.")),
    PayloadTooLargeError: lambda h: h.http.post(CHAT, content=b"x" * 5000, headers={**KEY, "content-type": "application/json"}),
    UnsupportedMediaTypeError: lambda h: h.http.put("/admin/adapters/a", content=b"x",
                                                    headers={"authorization": f"Bearer {ADMIN_KEY}",
                                                             "content-type": "text/plain"}),
    RateLimitedError: rate_limited,
    DependencyFailedError: engine_raises(DependencyFailedError("The adapter store is unreachable.")),
    UpstreamGenerationError: engine_raises(UpstreamGenerationError("No schema-valid output.")),
    EngineNotReadyError: not_ready,
    OverloadedError: engine_raises(OverloadedError("The constraint compiler is saturated.")),
    ShuttingDownError: draining,
    RequestTimeoutError: timed_out,
    ServiceError: engine_raises(ServiceError("A bare service error.")),
    EngineUnavailableError: engine_raises(EngineUnavailableError("engine is dead")),
    EngineRequestError: engine_raises(EngineRequestError("vLLM refused the parameters")),
    GenerationFailedError: engine_raises(GenerationFailedError("generation failed")),
    TimeoutError: engine_raises(TimeoutError()),
    BaseException: engine_raises(RuntimeError("a bug")),
}


def test_every_row_is_provoked_or_listed_with_its_reason() -> None:
    kinds = [kind for kind, _ in FAILURE_TABLE]
    assert set(PROVOKE) | set(NOT_PROVOKED) == set(kinds) and not set(PROVOKE) & set(NOT_PROVOKED)
    # No row hides behind an earlier, broader one.
    for i, kind in enumerate(kinds):
        assert table_row(kind) is FAILURE_TABLE[i][1], f"{kind.__name__} is shadowed by an earlier row"
    # Every ServiceError the service defines has a row of its own.
    def subclasses(kind: type) -> set[type]:
        return {kind, *(c for sub in kind.__subclasses__() for c in subclasses(sub))}
    assert {k for k in subclasses(ServiceError) if k.__module__.startswith("service.")} <= set(kinds)


@pytest.mark.parametrize("kind", [kind for kind, _ in FAILURE_TABLE if kind not in NOT_PROVOKED],
                         ids=lambda kind: kind.__name__)
def test_each_row_is_what_the_client_gets(harness: Harness, kind: type[BaseException]) -> None:
    row: Failure = dict(FAILURE_TABLE)[kind]
    response = PROVOKE[kind](harness)
    assert response.status_code == row.status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert (error["type"], error["code"]) == (row.type, row.code)
    if row.message is not None:
        assert error["message"] == row.message
    for name, value in row.headers:
        assert response.headers[name] == value or (name == "www-authenticate" and response.headers[name].startswith(value))
    if row.retry_after is not None:
        assert int(response.headers["retry-after"]) >= 1
    else:
        assert "retry-after" not in response.headers
    if row.status == 405:
        assert response.headers["allow"] == "GET"
    assert harness.errors_counted(row.status, row.code) == 1


def test_401_is_the_same_everywhere(harness: Harness) -> None:
    """Refused by the key middleware (a route, a path no route serves) and by a route's own key
    requirement: one row, one type."""
    answers = [harness.http.get("/v1/models"), harness.http.get("/v1/nothing-here"),
               harness.http.post(CHAT, json={}, headers={"authorization": "Bearer wrong-key"})]
    for response in answers:
        assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer")
        assert (response.json()["error"]["type"], response.json()["error"]["code"]) == (
            "invalid_request_error", "invalid_api_key")
    assert harness.errors_counted(401, "invalid_api_key") == 3
