"""Admission control (service/api/admission.py, service/api/body_limit.py) on a small app whose
generation endpoints take their typed, admitted bodies as the real routes do, and block on an Event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from starlette.middleware import Middleware

from service.api.admission import Admission, AdmittedRoute
from service.api.body_limit import BodyLimitMiddleware
from service.api.errors import install_error_handlers
from service.api.openai.protocol import ChatCompletionRequest
from service.api.openai.routes import AdmittedChat, AdmittedCompletion
from service.api.tasks import AdmittedTicket
from service.config import Settings
from service.observability.metrics import Metrics
from tests.support.waiting import eventually

pytestmark = pytest.mark.anyio

CHAT = "/v1/chat/completions"
MSG = [{"role": "user", "content": "hi"}]



class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Harness:
    """The app, its gate (closed: generation endpoints block), and what reached the endpoints."""

    def __init__(self, **overrides: object) -> None:
        options = {"max_concurrent_requests": 1, "max_queued_requests": 1, "queue_timeout_s": 5.0, **overrides}
        self.settings = settings = Settings(**options)  # type: ignore[arg-type]
        self.metrics = Metrics(CollectorRegistry())
        self.clock = Clock()
        self.gate = asyncio.Event()
        self.started: list[str] = []
        self.streamed_first_chunk = False
        self.upload_bytes = 0
        self.app = app = FastAPI(middleware=[  # as create_app orders them: keys, then the body cap
            Middleware(FakeAuth),
            Middleware(BodyLimitMiddleware, max_bytes=settings.limits.max_body_bytes, upload_prefix="/admin/adapters/",
                       upload_max_bytes=settings.adapters.max_adapter_bytes),
        ])
        install_error_handlers(app)
        app.state.admission = self.admission = Admission(settings, clock=self.clock)
        app.state.services = SimpleNamespace(metrics=self.metrics)
        generation = APIRouter(route_class=AdmittedRoute)

        @generation.post(CHAT)
        async def chat(body: AdmittedChat) -> JSONResponse:
            self.started.append(body.user or "")
            await self.gate.wait()
            return JSONResponse({"ok": True, "user": body.user or ""})

        @generation.post("/v1/completions")
        async def completions(body: AdmittedCompletion) -> StreamingResponse:
            async def chunks() -> AsyncIterator[bytes]:
                yield b"data: first\n\n"
                self.streamed_first_chunk = True
                await self.gate.wait()
                yield b"data: [DONE]\n\n"

            return StreamingResponse(chunks(), media_type="text/event-stream")

        @generation.post("/v1/tickets/triage")
        async def triage(body: AdmittedTicket) -> dict:
            return {"ticket": body.body}

        app.include_router(generation)

        @app.get("/health/live")
        async def live() -> dict:
            return {"status": "ok"}

        @app.put("/admin/routes/{name}")
        async def put_route(name: str, request: Request) -> dict:
            return {"bytes": len(await request.body())}

        @app.put("/admin/adapters/{name}")
        async def upload(name: str, request: Request) -> dict:
            async for chunk in request.stream():
                self.upload_bytes += len(chunk)
            return {"bytes": self.upload_bytes}

    def client(self, ip: str = "10.0.0.1") -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(self.app, client=(ip, 1234)), base_url="http://t")

    def rejected(self, reason: str) -> float | None:
        return self.metrics.registry.get_sample_value("loragate_rejected_requests_total", {"reason": reason})


class FakeAuth:
    """Stands in for the key middleware: `request.state.key_id` from the x-key header."""

    def __init__(self, app) -> None:  # noqa: ANN001
        self.app = app

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        key = dict(scope.get("headers", ())).get(b"x-key")
        if scope["type"] == "http" and key:
            scope.setdefault("state", {})["key_id"] = key.decode()
        await self.app(scope, receive, send)


def chat(user: str = "", **fields: object) -> dict:
    return {"model": "m", "messages": MSG, "user": user, **fields}


def assert_openai_error(response: httpx.Response, status: int, code: str, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == (code, param)
    assert set(error) == {"message", "type", "param", "code"}
    return error


# ------------------------------------------------------------ concurrency
async def test_full_slots_and_queue_refuse_with_429_and_a_queued_request_proceeds() -> None:
    h = Harness()
    async with h.client() as client:
        first = asyncio.create_task(client.post(CHAT, json=chat("a")))
        await eventually(lambda: h.started == ["a"])
        second = asyncio.create_task(client.post(CHAT, json=chat("b")))
        await eventually(lambda: h.admission.slots.waiting == 1)

        refused = await client.post(CHAT, json=chat("c"))
        error = assert_openai_error(refused, 429, "rate_limit_exceeded")
        assert error["type"] == "rate_limit_error" and refused.headers["retry-after"] == "1"
        assert h.rejected("queue_full") == 1
        assert h.started == ["a"]  # b waits, c never ran

        h.gate.set()
        assert [(await t).json()["user"] for t in (first, second)] == ["a", "b"]
        assert h.started == ["a", "b"]
        assert (h.admission.slots.running, h.admission.slots.waiting) == (0, 0)


async def test_a_request_waits_at_most_queue_timeout() -> None:
    h = Harness(queue_timeout_s=0.05)
    async with h.client() as client:
        first = asyncio.create_task(client.post(CHAT, json=chat("a")))
        await eventually(lambda: h.started == ["a"])
        assert_openai_error(await client.post(CHAT, json=chat("b")), 429, "rate_limit_exceeded")
        assert h.rejected("queue_timeout") == 1 and h.admission.slots.waiting == 0
        h.gate.set()
        assert (await first).status_code == 200
        assert (await client.post(CHAT, json=chat("c"))).status_code == 200  # the slot came back


async def test_a_stream_holds_its_slot_until_its_last_chunk() -> None:
    h = Harness(max_queued_requests=0)
    async with h.client() as client:
        stream = asyncio.create_task(client.post("/v1/completions", json={"model": "m", "prompt": "x"}))
        await eventually(lambda: h.streamed_first_chunk)  # the handler returned; the stream is open
        assert h.admission.slots.running == 1  # the dependency still holds the slot
        assert_openai_error(await client.post(CHAT, json=chat("b")), 429, "rate_limit_exceeded")
        h.gate.set()
        assert (await stream).text.endswith("data: [DONE]\n\n")
        assert h.admission.slots.running == 0
        assert (await client.post(CHAT, json=chat("c"))).status_code == 200


async def test_health_and_admin_are_never_limited() -> None:
    h = Harness(max_queued_requests=0, rate_limit_rpm=1)
    async with h.client() as client:
        first = asyncio.create_task(client.post(CHAT, json=chat("a")))
        await eventually(lambda: h.started == ["a"])
        for _ in range(3):
            assert (await client.get("/health/live")).status_code == 200
            assert (await client.put("/admin/routes/r", json={"variants": []})).status_code == 200
        h.gate.set()
        await first


# ------------------------------------------------------------ rate limits
async def test_requests_per_minute_per_key_with_openai_headers() -> None:
    h = Harness(max_concurrent_requests=8, rate_limit_rpm=2)
    h.gate.set()
    async with h.client() as client:
        a = {"x-key": "key-a"}
        ok = [await client.post(CHAT, json=chat(), headers=a) for _ in range(2)]
        assert [r.headers["x-ratelimit-remaining-requests"] for r in ok] == ["1", "0"]
        assert ok[0].headers["x-ratelimit-limit-requests"] == "2" and "x-ratelimit-limit-tokens" not in ok[0].headers

        refused = await client.post(CHAT, json=chat(), headers=a)
        assert_openai_error(refused, 429, "rate_limit_exceeded")
        assert refused.headers["retry-after"] == "30"  # one request refills in 60 s / 2
        assert refused.headers["x-ratelimit-remaining-requests"] == "0"
        assert h.rejected("rate_limited") == 1

        # Another key, and the client IP when no key is set, have their own buckets.
        assert (await client.post(CHAT, json=chat(), headers={"x-key": "key-b"})).status_code == 200
        assert (await client.post(CHAT, json=chat())).status_code == 200
        h.clock.now += 30
        assert (await client.post(CHAT, json=chat(), headers=a)).status_code == 200


async def test_tokens_per_minute_per_key_estimated_at_admission() -> None:
    h = Harness(max_concurrent_requests=8, rate_limit_tpm=100)
    h.gate.set()
    async with h.client() as client:
        a = {"x-key": "key-a"}
        body = chat(max_tokens=40)  # 40 + "hi" (2 bytes / 4, rounded up: 1) = 41 tokens
        ok = [await client.post(CHAT, json=body, headers=a) for _ in range(2)]
        assert [r.headers["x-ratelimit-remaining-tokens"] for r in ok] == ["59", "18"]
        assert ok[0].headers["x-ratelimit-limit-tokens"] == "100"

        refused = await client.post(CHAT, json=body, headers=a)
        assert_openai_error(refused, 429, "rate_limit_exceeded")
        assert refused.headers["retry-after"] == "14"  # 23 missing tokens at 100/60 per second
        assert (await client.post(CHAT, json=body, headers={"x-key": "key-b"})).status_code == 200
        # A smaller request still fits, n multiplies the budget.
        assert (await client.post(CHAT, json=chat(max_tokens=10), headers=a)).status_code == 200
        assert (await client.post(CHAT, json=chat(max_tokens=10, n=2), headers={"x-key": "key-c"})
                ).headers["x-ratelimit-remaining-tokens"] == "79"
        h.clock.now += 60
        assert (await client.post(CHAT, json=body, headers=a)).headers["x-ratelimit-remaining-tokens"] == "59"


async def test_a_request_refused_for_capacity_is_not_charged() -> None:
    h = Harness(max_queued_requests=0, rate_limit_rpm=2)
    async with h.client() as client:
        first = asyncio.create_task(client.post(CHAT, json=chat("a")))
        await eventually(lambda: h.started == ["a"])
        assert (await client.post(CHAT, json=chat("b"))).status_code == 429
        h.gate.set()
        await first
        assert (await client.post(CHAT, json=chat("c"))).headers["x-ratelimit-remaining-requests"] == "0"


# --------------------------------------------------------------- body size
async def test_content_length_over_the_cap_is_413_before_reading() -> None:
    h = Harness(max_body_bytes=1024)
    async with h.client() as client:
        big = {"model": "m", "prompt": "x" * 2000}
        for path in ("/v1/completions", "/admin/routes/r"):
            error = assert_openai_error(await client.post(path, json=big) if path.startswith("/v1")
                                        else await client.put(path, json=big), 413, "payload_too_large")
            assert "1024-byte" in error["message"]
        assert h.rejected("body_too_large") == 2 and h.started == []


async def test_a_chunked_body_over_the_cap_is_413_without_reading_past_it() -> None:
    h = Harness(max_body_bytes=2048)
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(10):
            sent += 1
            yield b"x" * 1024

    async with h.client() as client:
        response = await client.post(CHAT, content=body(), headers={"content-type": "application/json"})
        assert_openai_error(response, 413, "payload_too_large")
        assert sent == 3 and h.started == []  # the third chunk crossed the cap; nothing more was read


async def test_adapter_uploads_keep_their_own_limit() -> None:
    h = Harness(max_body_bytes=1024, adapter_max_bytes=4096)
    h.gate.set()
    async with h.client() as client:
        put = await client.put("/admin/adapters/a", content=b"z" * 3000, headers={"content-type": "application/gzip"})
        assert put.json() == {"bytes": 3000}
        refused = await client.put("/admin/adapters/a", content=b"z" * 5000)
        assert_openai_error(refused, 413, "payload_too_large")
        assert h.upload_bytes == 3000


async def test_the_body_reaches_the_app_unchanged() -> None:
    h = Harness()
    async with h.client() as client:
        ticket = {"subject": "s", "body": "é" * 500}
        assert (await client.post("/v1/tickets/triage", json=ticket)).json() == {"ticket": "é" * 500}


async def test_an_absurdly_nested_body_is_left_to_the_route() -> None:
    # json.loads raises RecursionError on it (was a 500); reading the typed body, the route answers
    # 400 before admission (nothing charged, no slot taken).
    h = Harness(rate_limit_rpm=1)
    h.gate.set()
    async with h.client() as client:
        response = await client.post(CHAT, content=b"[" * 100_000, headers={"content-type": "application/json"})
        assert_openai_error(response, 400, "invalid_value")
        assert h.started == [] and h.admission.slots.running == 0
        assert (await client.post(CHAT, json=chat())).headers["x-ratelimit-remaining-requests"] == "0"


# ------------------------------------------------------------ request caps
@pytest.mark.parametrize(("path", "body", "param", "code", "reason"), [
    (CHAT, chat(messages=MSG * 3), "messages", "array_above_max_length", "too_many_messages"),
    (CHAT, chat(messages=[{"role": "user", "content": "x" * 11}]), "messages", "string_above_max_length",
     "prompt_too_long"),
    (CHAT, chat(messages=[{"role": "system", "content": "x" * 6},
                          {"role": "user", "content": [{"type": "text", "text": "y" * 5}]}]),
     "messages", "string_above_max_length", "prompt_too_long"),
    ("/v1/completions", {"model": "m", "prompt": "x" * 11}, "prompt", "string_above_max_length", "prompt_too_long"),
])
async def test_configurable_caps_are_400_with_param(path: str, body: dict, param: str, code: str, reason: str) -> None:
    h = Harness(max_messages=2, max_prompt_chars=10)
    async with h.client() as client:
        error = assert_openai_error(await client.post(path, json=body), 400, code, param)
        assert error["type"] == "invalid_request_error"
    assert h.rejected(reason) == 1 and h.started == []


async def test_requests_within_the_caps_pass() -> None:
    h = Harness(max_messages=2, max_prompt_chars=10)
    h.gate.set()
    async with h.client() as client:
        assert (await client.post(CHAT, json=chat(messages=MSG * 2))).status_code == 200
        # A body that is not a request is the route's to refuse (400), before admission.
        assert_openai_error(await client.post(CHAT, content=b"not json"), 400, "invalid_value")
        assert_openai_error(await client.post(CHAT, json={"model": "m"}), 400, "invalid_value", "messages")
    assert h.started == [""] and h.rejected("too_many_messages") is None


def test_stop_sequences_are_capped_in_length() -> None:
    ChatCompletionRequest(model="m", messages=MSG, stop=["x" * 256])
    for stop in ("x" * 257, ["ok", "x" * 257]):
        with pytest.raises(ValidationError) as raised:
            ChatCompletionRequest(model="m", messages=MSG, stop=stop)
        assert raised.value.errors()[0]["loc"] == ("stop",)


# ------------------------------------------------------------ the real app
def test_token_estimates_read_the_typed_requests() -> None:
    from service.api.admission import batch_work, chat_work, completion_work, estimate_tokens, ticket_work
    from service.api.openai.protocol import CompletionRequest
    from service.api.tasks import BatchTriageRequest, TriageRequest

    settings = Settings(max_tokens_limit=100, max_n=2, triage_batch_max=3)
    parts = [{"role": "user", "content": [{"type": "text", "text": "abcd"}, {"type": "text", "text": "é"}]}]
    assert estimate_tokens(chat_work(ChatCompletionRequest(model="m", messages=parts, max_completion_tokens=7, n=5),
                                     settings)) == 2 + 7 * 2  # 6 bytes / 4, rounded up; n at most max_n
    assert estimate_tokens(completion_work(CompletionRequest(model="m", prompt="abcde"), settings)) == 2 + 100
    assert estimate_tokens(ticket_work(TriageRequest(subject="ab", body="cd", max_tokens=40), settings)) == 1 + 40
    batch = BatchTriageRequest(tickets=[{"subject": "", "body": "abcd"}] * 5)
    assert estimate_tokens(batch_work(batch, settings)) == 5 + 100 * 3  # 256 capped by max_tokens_limit, 3 counted


def test_admitted_bodies_keep_their_shape() -> None:
    from service.api.app import create_app

    paths = create_app(Settings(auth_disabled=True)).openapi()["paths"]
    for path, model in ((CHAT, "ChatCompletionRequest"), ("/v1/completions", "CompletionRequest"),
                        ("/v1/tickets/triage", "TriageRequest"), ("/v1/tickets/triage/batch", "BatchTriageRequest")):
        assert paths[path]["post"]["requestBody"] == {
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}}}, "required": True}


def test_the_generation_routes_of_the_app_are_admitted(tmp_path) -> None:  # noqa: ANN001
    from fastapi.testclient import TestClient

    from service.api.app import create_app
    from service.api.deps import Services
    from service.generation import GenerationLimits, GenerationService
    from service.routing import ModelRouter
    from tests.unit.api.test_validation import MODEL, StubEngine

    settings = Settings(model=tmp_path, served_model_name=MODEL, auth_disabled=True, rate_limit_rpm=2)
    engine, metrics, router = StubEngine(), Metrics(CollectorRegistry()), ModelRouter(MODEL)
    services = Services(  # type: ignore[arg-type]
        settings=settings, engine=engine, registry=None, router=router, metrics=metrics,
        generation=GenerationService(engine, router, metrics, GenerationLimits(max_model_len=256, max_tokens_limit=64,
                                                                               max_n=2)),
    )
    with TestClient(create_app(settings, services)) as http:
        # Refused by the route after admission: the reply still carries the rate-limit headers.
        missing = http.post(CHAT, json={"model": "nope", "messages": MSG})
        assert missing.status_code == 404 and missing.headers["x-ratelimit-remaining-requests"] == "1"
        assert http.post("/v1/completions", json={"model": "nope", "prompt": "x"}).status_code == 404
        refused = http.post(CHAT, json={"model": "nope", "messages": MSG})
        assert refused.status_code == 429 and refused.headers["x-ratelimit-remaining-requests"] == "0"
        assert "x-ratelimit-limit-requests" not in http.get("/v1/models").headers  # not a generation route
        assert http.app.state.admission.slots.running == 0
    assert metrics.rejected.labels(reason="rate_limited")._value.get() == 1
