"""Access log middleware: one JSON line per request on `loragate.access`, and the request id."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.testclient import TestClient
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware

from service.api.access_log import BODY_LOG_LIMIT, AccessLogMiddleware
from service.api.cancellation import cancel_on_disconnect
from service.api.errors import UnexpectedErrorMiddleware, install_error_handlers

SERVED = {
    "x-loragate-model": "support-tone", "x-loragate-base-model": "base", "x-loragate-route": "ab",
    "x-loragate-variant": "treatment", "x-loragate-adapter-version": "3",
}
FIELDS = {"ts", "request_id", "method", "path", "status", "duration_ms", "key_id", "model", "base_model", "route",
          "variant", "adapter_version", "prompt_tokens", "completion_tokens", "client"}
SECRET = "the prompt text nobody may log"


async def authenticate(request: Request, call_next):  # noqa: ANN001, ANN201 - stands in for service/api/auth.py
    assert request.state.request_id  # set before anything inside runs
    if request.headers.get("authorization") == "Bearer sk-secret":
        request.state.key_id = "team-a"
    return await call_next(request)


def make_app(*, auth: bool = True, inner: list[Middleware] = (), enabled: bool = True, bodies: bool = False) -> FastAPI:
    """The access log and the error middleware in create_app's order, then `inner` middlewares."""
    middleware = [Middleware(AccessLogMiddleware, enabled=enabled, bodies=bodies), Middleware(UnexpectedErrorMiddleware),
                  *([Middleware(BaseHTTPMiddleware, dispatch=authenticate)] if auth else []), *inner]
    app = FastAPI(middleware=middleware)
    install_error_handlers(app)

    @app.post("/plain")
    async def plain(request: Request) -> JSONResponse:
        await request.body()
        headers = SERVED | {"x-loragate-prompt-tokens": "12", "x-loragate-completion-tokens": "5"}
        return JSONResponse({"text": SECRET, "request_id": request.state.request_id}, headers=headers)

    @app.get("/stream")
    async def stream(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[str]:
            for i in range(3):
                yield f"data: {i}\n\n"
                await asyncio.sleep(0.01)
            request.state.prompt_tokens, request.state.completion_tokens = 7, 3  # known at the end only

        return StreamingResponse(body(), media_type="text/event-stream", headers=SERVED)

    @app.get("/slow-stream")
    async def slow_stream() -> StreamingResponse:
        async def body() -> AsyncIterator[str]:
            while True:
                yield "data: tick\n\n"
                await asyncio.sleep(0.01)

        return StreamingResponse(body(), media_type="text/event-stream", headers=SERVED)

    @app.get("/wait")
    async def wait(request: Request) -> dict:
        await cancel_on_disconnect(request, asyncio.sleep(10))  # what the generation routes do
        return {}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("unexpected")

    @app.get("/missing")
    async def missing() -> None:
        raise HTTPException(404, "nothing here")

    return app


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    records = [r for r in caplog.records if r.name == "loragate.access"]
    lines = [r.getMessage() for r in records]
    assert all("\n" not in line for line in lines)
    return [json.loads(line) for line in lines]


@pytest.fixture
def caplog_access(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="loragate.access")
    return caplog


def test_one_line_per_request_with_every_field(caplog_access: pytest.LogCaptureFixture) -> None:
    with TestClient(make_app()) as client:
        response = client.post("/plain?api_key=hidden&q=x", json={"prompt": SECRET},
                               headers={"authorization": "Bearer sk-secret"})
    assert response.status_code == 200
    [line] = access_lines(caplog_access)
    assert set(line) == FIELDS
    assert line["request_id"] == response.headers["x-request-id"] == response.json()["request_id"]
    assert len(line["request_id"]) == 32
    assert (line["method"], line["path"], line["status"]) == ("POST", "/plain", 200)
    assert line["key_id"] == "team-a"
    assert (line["model"], line["base_model"], line["route"], line["variant"]) == ("support-tone", "base", "ab",
                                                                                   "treatment")
    assert (line["adapter_version"], line["prompt_tokens"], line["completion_tokens"]) == (3, 12, 5)
    assert line["client"] == "testclient"
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["ts"].endswith("Z")
    text = caplog_access.text
    assert SECRET not in text and "sk-secret" not in text and "hidden" not in text


def test_incoming_request_id_is_kept_or_replaced(caplog_access: pytest.LogCaptureFixture) -> None:
    with TestClient(make_app()) as client:
        kept = client.post("/plain", json={}, headers={"X-Request-Id": "trace-42/abc"})
        too_long = client.post("/plain", json={}, headers={"X-Request-Id": "a" * 129})
        not_ascii = client.post("/plain", json={}, headers={"X-Request-Id": "id\u00e9".encode("latin-1")})
        fresh = client.post("/plain", json={})
    assert kept.headers["x-request-id"] == "trace-42/abc"
    for response in (too_long, not_ascii, fresh):
        assert len(response.headers["x-request-id"]) == 32 and response.headers["x-request-id"].isalnum()
    assert len({too_long.headers["x-request-id"], not_ascii.headers["x-request-id"], fresh.headers["x-request-id"]}) == 3
    lines = access_lines(caplog_access)
    assert [line["request_id"] for line in lines] == [r.headers["x-request-id"]
                                                      for r in (kept, too_long, not_ascii, fresh)]
    assert all(line["key_id"] is None for line in lines)


def test_stream_is_logged_once_when_complete(caplog_access: pytest.LogCaptureFixture) -> None:
    with TestClient(make_app()) as client:
        response = client.get("/stream")
    assert response.status_code == 200 and response.text.count("data:") == 3
    [line] = access_lines(caplog_access)
    assert (line["status"], line["path"], line["model"]) == (200, "/stream", "support-tone")
    assert line["duration_ms"] >= 30  # the whole stream, not the time to the headers
    assert (line["prompt_tokens"], line["completion_tokens"]) == (7, 3)  # from request state
    assert line["request_id"] == response.headers["x-request-id"]


def test_errors_are_logged_with_their_status_and_carry_the_id(caplog_access: pytest.LogCaptureFixture) -> None:
    with TestClient(make_app(), raise_server_exceptions=False) as client:
        boom = client.get("/boom", headers={"x-request-id": "r-500"})
        missing = client.get("/missing")
        unknown = client.get("/no-such-route")
    assert (boom.status_code, boom.headers["x-request-id"]) == (500, "r-500")
    assert missing.status_code == unknown.status_code == 404
    assert missing.headers["x-request-id"] and unknown.headers["x-request-id"]
    lines = access_lines(caplog_access)
    assert [(line["path"], line["status"]) for line in lines] == [("/boom", 500), ("/missing", 404),
                                                                  ("/no-such-route", 404)]
    assert lines[0]["request_id"] == "r-500" and lines[0]["model"] is None and lines[0]["prompt_tokens"] is None


def test_outermost_even_when_a_middleware_inside_fails(caplog_access: pytest.LogCaptureFixture) -> None:
    async def broken(request: Request, call_next):  # noqa: ANN001, ANN202
        raise RuntimeError("a middleware declared after the access log")

    app = make_app(inner=[Middleware(BaseHTTPMiddleware, dispatch=broken)])
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/stream", headers={"x-request-id": "outer"})
    assert (response.status_code, response.headers["x-request-id"]) == (500, "outer")
    assert [(line["request_id"], line["status"]) for line in access_lines(caplog_access)] == [("outer", 500)]


def test_bodies_only_when_asked_and_capped(caplog_access: pytest.LogCaptureFixture) -> None:
    with TestClient(make_app(bodies=True)) as client:
        client.post("/plain", json={"prompt": SECRET})
        client.post("/plain", content=b"x" * (BODY_LOG_LIMIT * 3), headers={"content-type": "text/plain"})
    small, big = access_lines(caplog_access)
    assert SECRET in small["request_body"] and SECRET in small["response_body"]
    assert big["request_body"] == "x" * BODY_LOG_LIMIT + "...[truncated]"


def test_disabled_keeps_the_request_id(caplog_access: pytest.LogCaptureFixture) -> None:
    with TestClient(make_app(enabled=False)) as client:
        response = client.post("/plain", json={})
    assert response.headers["x-request-id"]
    assert access_lines(caplog_access) == []


async def _call(app: FastAPI, path: str, disconnect_after_chunks: int = 0, disconnect_after_s: float | None = None,
                raised: list[BaseException] | None = None) -> list[dict[str, Any]]:
    """Drive the app as a server would, with a client that leaves after some body chunks or time."""
    sent: list[dict[str, Any]] = []
    gone = asyncio.Event()
    if disconnect_after_s is not None:
        asyncio.get_running_loop().call_later(disconnect_after_s, gone.set)
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if disconnect_after_chunks and sum(m["type"] == "http.response.body" for m in sent) >= disconnect_after_chunks:
            gone.set()

    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": [(b"host", b"test"), (b"x-request-id", b"gone-1")],
             "client": ("10.0.0.7", 5555), "server": ("test", 80), "state": {}}
    try:
        await asyncio.wait_for(app(scope, receive, send), timeout=5)
    except (asyncio.CancelledError, RuntimeError) as exc:
        # Through an @app.middleware("http"), Starlette's "No response returned." after a 500 nobody
        # reads; the server logs and drops it.
        if raised is not None:
            raised.append(exc)
    return sent


@pytest.mark.parametrize("auth", [False, True], ids=["plain-stack", "with-http-middleware"])
def test_client_leaving_mid_stream_is_a_499(caplog_access: pytest.LogCaptureFixture, auth: bool) -> None:
    # With an @app.middleware("http") inside, Starlette still ends the body after the client left.
    sent = asyncio.run(_call(make_app(auth=auth), "/slow-stream", disconnect_after_chunks=2))
    start = sent[0]
    assert start["status"] == 200 and (b"x-request-id", b"gone-1") in start["headers"]
    [line] = access_lines(caplog_access)
    assert (line["request_id"], line["status"], line["client"], line["model"]) == ("gone-1", 499, "10.0.0.7",
                                                                                   "support-tone")


@pytest.mark.parametrize("auth", [False, True], ids=["plain-stack", "with-http-middleware"])
def test_client_leaving_before_a_reply_is_a_499(caplog_access: pytest.LogCaptureFixture, auth: bool) -> None:
    raised: list[BaseException] = []
    asyncio.run(_call(make_app(auth=auth), "/wait", disconnect_after_s=0.05, raised=raised))
    if not auth:  # nothing left for uvicorn to log as "Exception in ASGI application"
        assert raised == []
    [line] = access_lines(caplog_access)
    assert (line["request_id"], line["path"], line["status"]) == ("gone-1", "/wait", 499)
    assert 40 <= line["duration_ms"] < 5000


def test_create_app_declares_the_access_log_outermost() -> None:
    from service.api.app import create_app
    from service.config import Settings

    declared = [middleware.cls for middleware in create_app(Settings(auth_disabled=True)).user_middleware]
    assert declared[:2] == [AccessLogMiddleware, UnexpectedErrorMiddleware]
