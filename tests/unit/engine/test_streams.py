"""A stream of a dead engine ends with EngineDeadError; a cancelled caller still aborts the request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from service.engine.streams import until_dead


def test_outputs_pass_through_until_the_stream_ends() -> None:
    async def stream() -> AsyncIterator[int]:
        for i in range(3):
            yield i

    async def run() -> list[int]:
        return [item async for item in until_dead(asyncio.Event(), stream())]

    assert asyncio.run(run()) == [0, 1, 2]


def test_a_stream_that_never_answers_ends_when_the_engine_is_known_dead() -> None:
    from vllm.v1.engine.exceptions import EngineDeadError

    aborted = asyncio.Event()

    async def stuck() -> AsyncIterator[int]:
        yield 1
        try:
            await asyncio.Event().wait()  # a killed engine process: nothing ever comes
            yield 2
        except asyncio.CancelledError:
            aborted.set()  # vLLM aborts the request here
            raise

    async def run() -> list[int]:
        died, seen = asyncio.Event(), []
        asyncio.get_running_loop().call_later(0.05, died.set)
        with pytest.raises(EngineDeadError):
            async for item in until_dead(died, stuck()):
                seen.append(item)
        await asyncio.sleep(0.01)
        return seen

    assert asyncio.run(run()) == [1]
    assert aborted.is_set()


def test_a_cancelled_caller_cancels_the_pending_step_so_the_request_is_aborted() -> None:
    aborted = asyncio.Event()

    async def slow() -> AsyncIterator[int]:
        try:
            await asyncio.sleep(60)
            yield 1
        except asyncio.CancelledError:
            aborted.set()
            raise

    async def consume() -> None:
        async for _ in until_dead(asyncio.Event(), slow()):
            pass

    async def run() -> bool:
        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        return aborted.is_set()

    assert asyncio.run(run())
