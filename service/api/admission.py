"""Admission control: what a request must pass before any route sees it (pure ASGI middleware).

For every request with a body (not GET, HEAD, OPTIONS):
1. Body size: at most `max_body_bytes`, else 413 `payload_too_large`: refused from Content-Length
   before reading anything, or while counting a chunked body, never reading past the cap. Adapter
   uploads (PUT /admin/adapters/{name}) keep `adapter_max_bytes`: refused here from Content-Length,
   and counted while streamed by the upload route itself. The body, read once, is handed on unchanged.
Then, for the generation endpoints (GENERATION_PATHS) only, in this order:
2. Request-shape caps read from the JSON body (400 with `param`): `max_messages` and
   `max_prompt_chars` (all message contents, or the prompt). Static caps (`stop`, `logit_bias`) are
   field validators in `openai/protocol.py`; the triage batch size is checked by its route.
3. Per-key rate limits, `rate_limit_rpm` and `rate_limit_tpm` (0: off): one token bucket per key
   (`request.state.key_id`, set by the auth middleware; else the client IP) holding a minute's
   allowance, refilled continuously. Tokens are an estimate made at admission (`estimate_tokens`)
   and never corrected afterwards. 429 `rate_limit_exceeded` with `Retry-After` (when the bucket
   holds enough again); every reply carries OpenAI's `x-ratelimit-*` headers.
4. Bounded concurrency: at most `max_concurrent_requests` run, `max_queued_requests` wait (each at
   most `queue_timeout_s`, first come first served); beyond that 429 with `Retry-After`. A slot is
   held until the app returns, so a streamed reply holds it until its last chunk is sent.
Every refusal is counted in `loragate_rejected_requests_total{reason}`. The buckets and the slots
are in `limits.py`; limits are per process (per replica).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import service_error_response
from service.api.limits import KeyedBuckets, Refusal, Slots, duration
from service.config import Settings
from service.errors import InvalidRequestError, PayloadTooLargeError, RateLimitedError
from service.observability.metrics import Metrics

GENERATION_PATHS = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/tickets/triage": "triage",
    "/v1/tickets/triage/batch": "batch",
}
UPLOAD_PREFIX = "/admin/adapters/"
BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TRIAGE_DEFAULT_MAX_TOKENS = 256  # TriageService's first-attempt budget when a ticket names none


class _ClientGone(Exception):
    pass


# ------------------------------------------------------ request-shape caps
def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def prompt_texts(kind: str, payload: dict[str, Any]) -> list[str]:
    """The prompt text a generation request carries (messages' text, prompt, ticket subject+body)."""
    texts: list[str] = []
    if kind == "chat":
        for message in payload.get("messages") or []:
            content = message.get("content") if isinstance(message, dict) else None
            parts = [content] if isinstance(content, str) else content if isinstance(content, list) else []
            texts += [p if isinstance(p, str) else p.get("text") for p in parts if isinstance(p, (str, dict))]
    elif kind == "completions":
        prompt = payload.get("prompt")
        texts += [prompt] if isinstance(prompt, str) else prompt if isinstance(prompt, list) else []
    else:
        tickets = payload.get("tickets") if kind == "batch" else [payload]
        for ticket in tickets if isinstance(tickets, list) else []:
            if isinstance(ticket, dict):
                texts += [ticket.get("subject"), ticket.get("body")]
    return [t for t in texts if isinstance(t, str)]


def check_shape(kind: str, payload: dict[str, Any], settings: Settings) -> None:
    """The configurable caps on a generation request's shape; raises `Refusal` (400 with `param`)."""
    messages = payload.get("messages")
    if kind == "chat" and isinstance(messages, list) and len(messages) > settings.max_messages:
        raise Refusal(InvalidRequestError(
            f"Invalid 'messages': array too long. Expected an array with maximum length {settings.max_messages}, "
            f"but got an array with length {len(messages)} instead.",
            param="messages", code="array_above_max_length"), "too_many_messages")
    if kind in ("chat", "completions"):
        chars = sum(len(text) for text in prompt_texts(kind, payload))
        if chars > settings.max_prompt_chars:
            param = "messages" if kind == "chat" else "prompt"
            raise Refusal(InvalidRequestError(
                f"Invalid '{param}': the prompt is {chars} characters long; this server accepts at most "
                f"{settings.max_prompt_chars}.", param=param, code="string_above_max_length"), "prompt_too_long")


def estimate_tokens(kind: str, payload: dict[str, Any] | None, body_bytes: int, settings: Settings) -> int:
    """Tokens charged to `rate_limit_tpm` at admission: prompt UTF-8 bytes / 4 (rounded up) plus the
    completion budget: max_completion_tokens or max_tokens (default and ceiling `max_tokens_limit`)
    times `n` (at most `max_n`); triage: max_tokens (default 256) per ticket. A body that is not a
    JSON object (the app refuses it) costs its bytes / 4."""
    if payload is None:
        return math.ceil(body_bytes / 4)
    prompt = math.ceil(sum(len(text.encode()) for text in prompt_texts(kind, payload)) / 4)
    if kind in ("chat", "completions"):
        budget = _int(payload.get("max_completion_tokens")) or _int(payload.get("max_tokens"))
        n = min(_int(payload.get("n")) or 1, settings.max_n)
        return prompt + min(budget or settings.max_tokens_limit, settings.max_tokens_limit) * n
    tickets = payload.get("tickets") if kind == "batch" else [payload]
    count = min(len(tickets), settings.triage_batch_max) if isinstance(tickets, list) else 1
    budget = min(_int(payload.get("max_tokens")) or TRIAGE_DEFAULT_MAX_TOKENS, settings.max_tokens_limit)
    return prompt + budget * count


# ------------------------------------------------------------------ ASGI
def _declared_length(scope: Scope) -> int:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0  # the server refuses a malformed length
    return 0


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Refusal(_too_large(limit), "body_too_large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"The request body is larger than the {limit}-byte limit.")


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body as one message, then the server's own messages (the disconnect)."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _client_key(scope: Scope) -> str:
    key_id = (scope.get("state") or {}).get("key_id")
    if key_id:
        return f"key:{key_id}"
    client = scope.get("client")
    return f"ip:{client[0]}" if client else "ip:unknown"


class AdmissionMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings, metrics: Metrics | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app, self.settings, self._metrics, self.clock = app, settings, metrics, clock
        self.slots = Slots(settings.max_concurrent_requests, settings.max_queued_requests, settings.queue_timeout_s)
        self.limits = [(name, KeyedBuckets(limit)) for name, limit in
                       (("requests", settings.rate_limit_rpm), ("tokens", settings.rate_limit_tpm)) if limit > 0]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in BODYLESS_METHODS:
            await self.app(scope, receive, send)
            return
        path, upload = scope["path"], scope["method"] == "PUT" and scope["path"].startswith(UPLOAD_PREFIX)
        limit = self.settings.adapter_max_bytes if upload else self.settings.max_body_bytes
        try:
            if _declared_length(scope) > limit:
                raise Refusal(_too_large(limit), "body_too_large")
            if upload:  # streamed to disk and counted by the upload route
                await self.app(scope, receive, send)
                return
            body = await _read_body(receive, limit)
        except Refusal as refusal:
            await self._refuse(refusal, scope, receive, send)
            return
        except _ClientGone:
            return
        kind = GENERATION_PATHS.get(path) if scope["method"] == "POST" else None
        if kind is None:
            await self.app(scope, _replay(body, receive), send)
        else:
            await self._admit(kind, body, scope, _replay(body, receive), send)

    async def _admit(self, kind: str, body: bytes, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):  # malformed or absurdly nested: the route answers 400
            payload = None
        payload = payload if isinstance(payload, dict) else None
        key = _client_key(scope)
        try:
            if payload is not None:
                check_shape(kind, payload, self.settings)
            cost = estimate_tokens(kind, payload, len(body), self.settings)
            headers = self._charge(key, cost)
            try:
                await self.slots.acquire()
            except BaseException:
                self._refund(key, cost)
                raise
        except Refusal as refusal:
            await self._refuse(refusal, scope, receive, send)
            return
        try:
            await self.app(scope, receive, _with_headers(send, headers))
        finally:
            self.slots.release()

    def _charge(self, key: str, tokens: int) -> dict[str, str]:
        now = self.clock()
        costs = {"requests": 1, "tokens": tokens}
        waits = [(buckets.wait(key, costs[name], now), name, buckets) for name, buckets in self.limits]
        worst = max(waits, default=None, key=lambda w: w[0])
        if worst is not None and worst[0] > 0:
            seconds, name, buckets = worst
            retry = max(1, math.ceil(seconds))
            error = RateLimitedError(
                f"Rate limit reached for {name} per minute: limit {int(buckets.capacity)}, requested "
                f"{costs[name]}. Please try again in {retry}s.", retry_after=retry)
            raise Refusal(error, "rate_limited", self._headers(key, now))
        for name, buckets in self.limits:
            buckets.take(key, costs[name], now)
        return self._headers(key, now)

    def _refund(self, key: str, tokens: int) -> None:
        now = self.clock()
        for name, buckets in self.limits:
            buckets.give_back(key, 1 if name == "requests" else tokens, now)

    def _headers(self, key: str, now: float) -> dict[str, str]:
        headers = {}
        for name, buckets in self.limits:
            remaining, reset = buckets.remaining(key, now)
            headers[f"x-ratelimit-limit-{name}"] = str(int(buckets.capacity))
            headers[f"x-ratelimit-remaining-{name}"] = str(remaining)
            headers[f"x-ratelimit-reset-{name}"] = duration(reset)
        return headers

    async def _refuse(self, refusal: Refusal, scope: Scope, receive: Receive, send: Send) -> None:
        metrics = self._metrics or getattr(getattr(getattr(scope.get("app"), "state", None), "services", None),
                                           "metrics", None)
        if metrics is not None:
            metrics.rejected.labels(reason=refusal.reason).inc()
        response = service_error_response(refusal.error)
        response.headers.update(refusal.headers)
        await response(scope, receive, send)


def _with_headers(send: Send, headers: dict[str, str]) -> Send:
    if not headers:
        return send
    extra = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return sending


def install_admission(app: FastAPI, settings: Settings, metrics: Metrics | None = None,
                      clock: Callable[[], float] = time.monotonic) -> None:
    """Add the admission middleware as the innermost user middleware, whatever the call order: an
    auth middleware added with `add_middleware` wraps it, so `request.state.key_id` is set first.
    `metrics`: default, the running app's `state.services.metrics`."""
    app.user_middleware.append(Middleware(AdmissionMiddleware, settings=settings, metrics=metrics, clock=clock))
