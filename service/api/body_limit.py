"""The request-body cap: a pure ASGI middleware, because it must act before anything reads the body.

Every request with a body (not GET, HEAD, OPTIONS) holds at most `max_bytes`, else 413
`payload_too_large`: refused from Content-Length before reading anything, or while counting a
chunked body, never reading past the cap. The body, read once, is handed on unchanged. Adapter
uploads (PUT under `upload_prefix`) keep `upload_max_bytes`: refused here from Content-Length, and
counted while streamed to disk by the upload route itself.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import refusal_response
from service.api.limits import Refusal
from service.errors import PayloadTooLargeError

BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class _ClientGone(Exception):
    pass


def _declared_length(scope: Scope) -> int:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0  # the server refuses a malformed length
    return 0


def _too_large(limit: int) -> Refusal:
    return Refusal(PayloadTooLargeError(f"The request body is larger than the {limit}-byte limit."), "body_too_large")


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


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


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int, upload_prefix: str, upload_max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes
        self.upload_prefix, self.upload_max_bytes = upload_prefix, upload_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in BODYLESS_METHODS:
            await self.app(scope, receive, send)
            return
        upload = scope["method"] == "PUT" and scope["path"].startswith(self.upload_prefix)
        limit = self.upload_max_bytes if upload else self.max_bytes
        try:
            if _declared_length(scope) > limit:
                raise _too_large(limit)
            body = b"" if upload else await _read_body(receive, limit)
        except Refusal as refusal:
            await refusal_response(refusal, scope.get("app"))(scope, receive, send)
            return
        except _ClientGone:
            return
        # An upload is streamed to disk and counted by its route.
        await self.app(scope, receive if upload else _replay(body, receive), send)
