"""Structured access logs: one JSON line per request on the `loragate.access` logger, and a request id.

A pure ASGI middleware, the outermost of `create_app`'s (`errors.UnexpectedErrorMiddleware`, just
inside it, answers unhandled exceptions), so it sees every response, 500s included, and streamed
bodies to their end:

- the request id is the client's `X-Request-Id` when it is printable ASCII of at most 128 characters,
  else a new uuid4 hex; it is echoed in the `x-request-id` response header and kept in
  `scope["state"]["request_id"]` (`request.state.request_id`) for the rest of the service;
- the line is written when the response body is complete (`duration_ms` covers the whole stream), or
  when the request ends otherwise: status 499 when the client went away first, 500 when the
  application raised before finishing;
- model, route, variant and adapter version come from the `x-loragate-*` response headers; token
  counts from `x-loragate-prompt-tokens` / `x-loragate-completion-tokens`, else from
  `scope["state"]["prompt_tokens"]` / `["completion_tokens"]` (streams know them only at the end);
- `key_id` is `scope["state"]["key_id"]` (set by authentication), never the key itself;
- bodies are logged only with `access_log_bodies`, each cut to `BODY_LOG_LIMIT` bytes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime, timezone
from typing import Any

from starlette.requests import ClientDisconnect

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger("loragate.access")

REQUEST_ID_HEADER = b"x-request-id"
MAX_REQUEST_ID_LENGTH = 128
BODY_LOG_LIMIT = 2048
CLIENT_CLOSED_REQUEST = 499
_REQUEST_ID = re.compile(rf"[\x20-\x7e]{{1,{MAX_REQUEST_ID_LENGTH}}}")
# Response header -> access log field; the values the app already sends.
_HEADER_FIELDS = {
    b"x-loragate-model": "model",
    b"x-loragate-base-model": "base_model",
    b"x-loragate-route": "route",
    b"x-loragate-variant": "variant",
    b"x-loragate-adapter-version": "adapter_version",
    b"x-loragate-prompt-tokens": "prompt_tokens",
    b"x-loragate-completion-tokens": "completion_tokens",
}
_INT_FIELDS = ("adapter_version", "prompt_tokens", "completion_tokens")


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The client's request id, if it is acceptable (printable ASCII, 1-128 characters)."""
    for name, value in headers:
        if name.lower() == REQUEST_ID_HEADER:
            text = value.decode("latin-1").strip()
            return text if _REQUEST_ID.fullmatch(text) else None
    return None


def _work_aborted_for_client(exc: BaseException) -> bool:
    """The request's work was cancelled because its client left (not this task: a server
    shutdown must still cancel it), or reading the body found the client gone. Re-raised, uvicorn
    would log it as "Exception in ASGI application" with a traceback."""
    if isinstance(exc, ClientDisconnect):
        return True
    task = asyncio.current_task()
    return isinstance(exc, asyncio.CancelledError) and not (task is not None and task.cancelling())


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp, *, enabled: bool = True, bodies: bool = False) -> None:
        self.app = app
        self.enabled = enabled
        self.bodies = bodies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = _Exchange(scope, enabled=self.enabled, bodies=self.bodies)
        try:
            await self.app(scope, exchange.wrap_receive(receive), exchange.wrap_send(send))
        except BaseException as exc:
            # Starlette's error middleware has already sent (and so logged) a 500 when it could.
            if isinstance(exc, ClientDisconnect | OSError):
                exchange.disconnected = True
            exchange.finish()
            if exchange.disconnected and _work_aborted_for_client(exc):
                return  # nothing to send and nothing wrong: the 499 line above is the whole story
            raise
        exchange.finish()  # no-op after a complete body; else the app gave up on an unfinished response


class _Exchange:
    """What one request/response pair has shown so far."""

    def __init__(self, scope: Scope, *, enabled: bool, bodies: bool) -> None:
        self.started = time.perf_counter()
        self.scope = scope
        self.request_id = request_id_from(scope.get("headers") or []) or uuid.uuid4().hex
        self.state: MutableMapping[str, Any] = scope.setdefault("state", {})
        self.state["request_id"] = self.request_id
        self.enabled = enabled
        self.bodies = bodies
        self.request_body = bytearray()
        self.response_body = bytearray()
        self.status: int | None = None
        self.served: dict[str, Any] = {}
        self.complete = False
        self.disconnected = False
        self.logged = False

    def wrap_receive(self, receive: Receive) -> Receive:
        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
            elif message["type"] == "http.request" and self.bodies:
                _keep(self.request_body, message.get("body", b""))
            return message

        return wrapped

    def wrap_send(self, send: Send) -> Send:
        async def wrapped(message: Message) -> None:
            final_status = self.status
            if message["type"] == "http.response.start":
                message = self._on_start(message)
            elif message["type"] == "http.response.body":
                if self.bodies:
                    _keep(self.response_body, message.get("body", b""))
                if not message.get("more_body", False):
                    self.complete = True
                    # A client that left first never got this end (inner middleware may still close it).
                    final_status = CLIENT_CLOSED_REQUEST if self.disconnected else self.status
            try:
                await send(message)
            except OSError:
                self.disconnected = True  # ASGI 2.4 servers raise when the client has gone
                raise
            if self.complete:
                self.log(final_status)

        return wrapped

    def finish(self) -> None:
        """The request ended without a complete response: 499 if the client left first, else 500."""
        self.log(CLIENT_CLOSED_REQUEST if self.disconnected else 500)

    def _on_start(self, message: Message) -> Message:
        self.status = int(message["status"])
        headers = [(name, value) for name, value in message.get("headers") or []
                   if name.lower() != REQUEST_ID_HEADER]
        for name, value in headers:
            field = _HEADER_FIELDS.get(name.lower())
            if field is not None:
                self.served[field] = value.decode("latin-1")
        headers.append((REQUEST_ID_HEADER, self.request_id.encode("latin-1")))
        return {**message, "headers": headers}

    def record(self, status: int | None) -> dict[str, Any]:
        state = self.state
        served = dict(self.served)
        for field in _INT_FIELDS:
            served[field] = _as_int(served.get(field, state.get(field)))
        client = self.scope.get("client")
        record: dict[str, Any] = {
            "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "request_id": self.request_id,
            "method": self.scope.get("method"),
            "path": self.scope.get("path"),
            "status": status,
            "duration_ms": round((time.perf_counter() - self.started) * 1000, 1),
            "key_id": _as_str(state.get("key_id")),
            "model": served.get("model"),
            "base_model": served.get("base_model"),
            "route": served.get("route"),
            "variant": served.get("variant"),
            "adapter_version": served["adapter_version"],
            "prompt_tokens": served["prompt_tokens"],
            "completion_tokens": served["completion_tokens"],
            "client": client[0] if client else None,
        }
        if self.bodies:
            record["request_body"] = _text(self.request_body)
            record["response_body"] = _text(self.response_body)
        return record

    def log(self, status: int | None) -> None:
        if self.logged or not self.enabled:
            return
        self.logged = True
        record = self.record(status)
        logger.info(json.dumps(record, ensure_ascii=False, separators=(",", ":")), extra={"json_fields": record})


def _keep(buffer: bytearray, chunk: bytes) -> None:
    room = BODY_LOG_LIMIT + 1 - len(buffer)  # one byte more than the limit marks a cut body
    if room > 0 and chunk:
        buffer.extend(chunk[:room])


def _text(buffer: bytearray) -> str:
    text = bytes(buffer[:BODY_LOG_LIMIT]).decode("utf-8", errors="replace")
    return text + "...[truncated]" if len(buffer) > BODY_LOG_LIMIT else text


def _as_int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _as_str(value: Any) -> str | None:
    return str(value) if value is not None else None
