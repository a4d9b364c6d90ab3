"""A vLLM request's output stream, ended when the engine is known dead.

vLLM raises EngineDeadError into every request in flight when its engine core fails, but when the
engine-core process is killed (SIGKILL, the OOM killer) its client only cleans up: the requests in
flight wait forever, and so would their clients. The engine sets an event once it knows it is dead
(its health check or the watchdog), and every stream races its next output against that event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any


async def until_dead(died: asyncio.Event, stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """`stream`'s outputs until it ends, or EngineDeadError once `died` is set."""
    from vllm.v1.engine.exceptions import EngineDeadError

    dead = asyncio.ensure_future(died.wait())
    step: asyncio.Future[Any] | None = None
    try:
        while True:
            step = asyncio.ensure_future(anext(stream))
            await asyncio.wait((step, dead), return_when=asyncio.FIRST_COMPLETED)
            if not step.done():
                raise EngineDeadError("the engine died with this request in flight")
            try:
                output = step.result()
            except StopAsyncIteration:
                return
            yield output
    finally:
        dead.cancel()
        if step is not None and not step.done():
            # A cancelled caller (a client that left) or a dead engine: cancelling the pending step
            # unwinds vLLM's generator inside it, which aborts the request as it did before.
            step.cancel()
