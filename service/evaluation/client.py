"""HTTP calls to a running loragate (or any deployment of its API) for evaluation.

Only connection failures are retried (httpx's transport retries, backing off 0, 0.5, 1 s): the
request never reached the server, so a retry cannot double-count work. Timeouts and HTTP errors are
results to report, not to hide.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
from pydantic import BaseModel

CONNECT_RETRIES = 3
READY_POLL_S = 2.0


class ServiceUnreachable(RuntimeError):
    """The service could not be reached or did not answer /v1/models."""


class CallResult(BaseModel):
    """One request as the client saw it."""

    status: int | None  # HTTP status; None when no response arrived (timeout, connection lost)
    latency_s: float  # client-side wall time, including retries' waiting
    body: Any = None  # parsed JSON body, when it was JSON
    error: str | None = None  # what went wrong, for status >= 400 or no response
    headers: dict[str, str] = {}


class EvalClient:
    def __init__(self, url: str, api_key: str | None = None, timeout_s: float = 300.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url.rstrip("/")
        # `transport` lets tests stand in a fake server; the runner's semaphore bounds concurrency.
        self._attempts = 1 if transport else CONNECT_RETRIES + 1
        self._http = httpx.AsyncClient(base_url=self.url, headers=headers,
                                       timeout=httpx.Timeout(timeout_s, connect=10.0),
                                       transport=transport or httpx.AsyncHTTPTransport(retries=CONNECT_RETRIES))

    async def __aenter__(self) -> EvalClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    async def wait_until_ready(self, max_wait_s: float, progress: Callable[[str], None]) -> None:
        """Wait while `GET /health/ready` answers 503: a service still loading its engine would
        record every ticket sent meanwhile as an error. Any other answer (200, a deployment without
        the probe, no answer at all) ends the wait; the calls that follow report real failures."""
        deadline = time.monotonic() + max_wait_s
        announced = False
        while (result := await self._call("GET", "/health/ready")).status == 503:
            if time.monotonic() >= deadline:
                raise ServiceUnreachable(f"{self.url} was not ready after {max_wait_s:.0f} s: {result.error}")
            if not announced:
                progress(f"waiting for {self.url}/health/ready ({result.error})")
                announced = True
            await asyncio.sleep(READY_POLL_S)

    async def models(self) -> list[dict[str, Any]]:
        result = await self._call("GET", "/v1/models")
        if result.status != 200 or not isinstance(result.body, dict) or not isinstance(result.body.get("data"), list):
            raise ServiceUnreachable(f"GET {self.url}/v1/models failed: {result.error or result.status}")
        return result.body["data"]

    async def base_model(self) -> str:
        """The base model's name: the /v1/models entry without a `parent` (adapters have one)."""
        bases = [card["id"] for card in await self.models() if isinstance(card, dict) and not card.get("parent")]
        if not bases:
            raise ServiceUnreachable(f"{self.url}/v1/models lists no base model (every entry has a parent)")
        return bases[0]

    async def triage(self, ticket: dict[str, Any], model: str) -> CallResult:
        return await self._call("POST", "/v1/tickets/triage", {**ticket, "model": model})

    async def chat(self, messages: list[dict[str, str]], model: str, max_tokens: int,
                   repetition_penalty: float | None = None) -> CallResult:
        body = {"model": model, "messages": messages, "temperature": 0, "max_tokens": max_tokens}
        if repetition_penalty is not None:
            body["repetition_penalty"] = repetition_penalty
        return await self._call("POST", "/v1/chat/completions", body)

    async def _call(self, method: str, path: str, json: dict[str, Any] | None = None) -> CallResult:
        started = time.monotonic()
        try:
            response = await self._http.request(method, path, json=json)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            return CallResult(status=None, latency_s=time.monotonic() - started,
                              error=f"connection failed after {self._attempts} attempts: {exc!r}")
        except httpx.HTTPError as exc:
            return CallResult(status=None, latency_s=time.monotonic() - started, error=f"{type(exc).__name__}: {exc}")
        latency = time.monotonic() - started
        try:
            body = response.json()
        except ValueError:
            body = None
        error = None if response.status_code < 400 else f"{response.status_code} {_error_message(body, response.text)}"
        headers = {k: v for k, v in response.headers.items() if k.startswith("x-loragate-")}
        return CallResult(status=response.status_code, latency_s=latency, body=body, error=error, headers=headers)


def _error_message(body: Any, text: str) -> str:
    """The OpenAI-shaped error's code and message, or the start of the raw text."""
    try:
        error = body["error"]
        return f"{error.get('code') or error.get('type')}: {error['message']}"
    except (KeyError, TypeError):
        return text[:200]
