"""service/evaluation/client.py: what the evaluation client retries (connection failures only)."""

from __future__ import annotations

import asyncio
import socket

import httpx

from service.evaluation.client import CONNECT_RETRIES, EvalClient


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_refused_connection_is_retried_then_reported() -> None:
    async def call() -> tuple[int | None, str | None, float]:
        async with EvalClient(f"http://127.0.0.1:{_closed_port()}") as client:
            result = await client._call("GET", "/v1/models")
        return result.status, result.error, result.latency_s

    status, error, latency = asyncio.run(call())
    assert status is None
    assert error is not None and error.startswith(f"connection failed after {CONNECT_RETRIES + 1} attempts: ConnectError")
    assert latency >= 1.4  # httpx backs off 0, 0.5 and 1 s between the four attempts


def test_an_http_error_status_is_a_result_not_retried() -> None:
    calls = []

    def server(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503, json={"error": {"code": "overloaded", "message": "busy"}})

    async def call() -> tuple[int | None, str | None]:
        async with EvalClient("http://test", transport=httpx.MockTransport(server)) as client:
            result = await client._call("GET", "/v1/models")
        return result.status, result.error

    assert asyncio.run(call()) == (503, "503 overloaded: busy")
    assert len(calls) == 1
