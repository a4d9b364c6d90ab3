"""service/waiting_line.py: the one bounded FIFO waiting line behind the API's slots and the
constraint compiler's workers."""

from __future__ import annotations

import asyncio

import pytest

from service.waiting_line import LineFull, LineTimeout, WaitingLine
from tests.support.waiting import eventually

pytestmark = pytest.mark.anyio



async def test_free_items_are_lent_then_waiters_are_served_in_order() -> None:
    line = WaitingLine(["a"], max_waiting=2, timeout=5)
    assert await line.take() == "a" and line.free == 0
    first = asyncio.ensure_future(line.take())
    await eventually(lambda: line.waiting == 1)
    second = asyncio.ensure_future(line.take())
    await eventually(lambda: line.waiting == 2)
    line.give("b")
    line.give("c")
    assert (await first, await second) == ("b", "c")
    line.give("d")
    assert (line.free, line.waiting, line.take_free(), line.free) == (1, 0, ["d"], 0)


async def test_the_line_is_bounded() -> None:
    line: WaitingLine[int] = WaitingLine([], max_waiting=1, timeout=5)
    waiter = asyncio.ensure_future(line.take())
    await eventually(lambda: line.waiting == 1)
    with pytest.raises(LineFull):
        await line.take()
    line.give(1)
    assert await waiter == 1


async def test_a_wait_is_bounded_and_leaves_the_line() -> None:
    line: WaitingLine[int] = WaitingLine([], max_waiting=3, timeout=0.05)
    with pytest.raises(LineTimeout):
        await line.take()
    assert line.waiting == 0
    line.give(7)
    assert line.free == 1  # nobody waits for it any more


async def test_a_cancelled_waiter_leaves_the_line_and_the_next_one_is_served() -> None:
    line: WaitingLine[int] = WaitingLine([], max_waiting=3, timeout=5)
    gone, next_one = asyncio.ensure_future(line.take()), asyncio.ensure_future(line.take())
    await eventually(lambda: line.waiting == 2)
    gone.cancel()
    await eventually(lambda: line.waiting == 1)
    line.give(1)
    assert await next_one == 1


async def test_an_item_handed_to_a_waiter_that_gives_up_is_passed_on() -> None:
    line: WaitingLine[int] = WaitingLine([], max_waiting=3, timeout=5)
    gone, next_one = asyncio.ensure_future(line.take()), asyncio.ensure_future(line.take())
    await eventually(lambda: line.waiting == 2)
    gone.cancel()  # gives up, but before it resumes ...
    line.give(1)  # ... it is handed the item
    assert await next_one == 1
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert (line.waiting, line.free) == (0, 0)
