"""One bounded, first-come-first-served waiting line for lending a few things out: the API's
concurrency slots (api/limits.py) and the constraint compiler's worker processes
(structured/workers.py). Each caller turns LineFull / LineTimeout into its own refusal.

asyncio.Semaphore has neither a bound on its waiters nor a per-wait timeout that can tell "gave up"
from "was handed one just as it gave up", and it lends no values; hence this small class.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class LineFull(Exception):
    """Nothing free and `max_waiting` callers already waiting."""


class LineTimeout(Exception):
    """Nothing was handed over within the line's timeout."""


class WaitingLine(Generic[T]):
    """Lends `items` one per caller. With none free, a caller waits (FIFO) at most `timeout`
    seconds behind at most `max_waiting` others; `give` hands an item to the first live waiter."""

    def __init__(self, items: Iterable[T], max_waiting: int, timeout: float) -> None:
        self.max_waiting, self.timeout = max_waiting, timeout
        self._free: deque[T] = deque(items)
        self._waiters: deque[asyncio.Future[T]] = deque()

    @property
    def free(self) -> int:
        return len(self._free)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def take_free(self) -> list[T]:
        """Every item free right now, without waiting."""
        items = list(self._free)
        self._free.clear()
        return items

    async def take(self) -> T:
        # An item is only ever free when no live caller waits (`give` serves them first).
        if self._free:
            return self._free.popleft()
        if len(self._waiters) >= self.max_waiting:
            raise LineFull
        handed: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiters.append(handed)
        try:
            # shield: a timeout cancels the wait, never `handed`, so an item set on it is not lost
            return await asyncio.wait_for(asyncio.shield(handed), self.timeout)
        except BaseException as exc:
            if handed.done() and not handed.cancelled():  # handed one just as we gave up: pass it on
                self.give(handed.result())
            else:
                handed.cancel()
                self._waiters.remove(handed)
            if isinstance(exc, asyncio.TimeoutError):
                raise LineTimeout from None
            raise

    def give(self, item: T) -> None:
        """Return `item`: to the first caller still waiting, else to the free items."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(item)
                return
        self._free.append(item)
