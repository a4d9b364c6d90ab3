"""Abort the engine work of a client that went away, or of a request whose time is up."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from fastapi import Request

from service.errors import TIMEOUT_CANCEL, RequestTimeoutError

T = TypeVar("T")


def timeout_error(timeout_s: float) -> RequestTimeoutError:
    return RequestTimeoutError(f"The request took longer than {timeout_s:g} s and was aborted.")


async def cancel_on_disconnect(request: Request, work: Awaitable[T], timeout_s: float | None = None) -> T:
    """Run `work`, cancelling it (and so aborting the engine request) if the client leaves
    (the metrics count a 499) or `timeout_s` passes (a 504)."""
    task = asyncio.ensure_future(work)

    async def watch() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                task.cancel()
                return

    watcher = asyncio.create_task(watch())
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
        if not done:
            task.cancel(TIMEOUT_CANCEL)
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise timeout_error(timeout_s or 0)
        return task.result()
    finally:
        watcher.cancel()
        if not task.done():  # this handler itself was cancelled (server shutdown)
            task.cancel()


async def within_deadline(events: AsyncIterator[str], timeout_s: float | None) -> AsyncIterator[str]:
    """Pass a stream's events through until `timeout_s` has passed, then abort the stream's work
    (the metrics count a 504) and raise RequestTimeoutError."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        step = asyncio.ensure_future(anext(events))
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            done, _ = await asyncio.wait({step}, timeout=remaining)
        except asyncio.CancelledError:  # this stream itself was cancelled: the client left
            step.cancel()
            raise
        if not done:
            step.cancel(TIMEOUT_CANCEL)
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await step
            raise timeout_error(timeout_s or 0)
        try:
            event = step.result()
        except StopAsyncIteration:
            return
        yield event
