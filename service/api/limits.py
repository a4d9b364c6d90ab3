"""The mechanics of admission control, without HTTP: per-key token buckets (rate limits) and a
bounded, first-come-first-served set of slots with a waiting line (concurrency)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from service.errors import RateLimitedError, ServiceError
from service.waiting_line import LineFull, LineTimeout, WaitingLine

MAX_TRACKED_KEYS = 10_000  # past this, idle (full) buckets are forgotten
QUEUE_RETRY_AFTER_S = 1


class Refusal(Exception):
    """A request refused at admission: the client's error, its metrics reason, extra headers."""

    def __init__(self, error: ServiceError, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(error.message)
        self.error, self.reason, self.headers = error, reason, headers or {}


# ------------------------------------------------------------- rate limits
@dataclass
class _Bucket:
    level: float
    stamp: float


# By hand: `limits` has windows, not a token bucket; aiolimiter/pyrate-limiter can't refund or tell remaining+reset.
class KeyedBuckets:
    """A token bucket per key holding `per_minute` units, refilled at `per_minute` / 60 per second.
    A cost above `per_minute` is charged as `per_minute` (it waits for a full bucket)."""

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._buckets: dict[str, _Bucket] = {}

    def _bucket(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_TRACKED_KEYS:
                self._forget_full(now)
            bucket = self._buckets[key] = _Bucket(self.capacity, now)
        else:
            bucket.level = min(self.capacity, bucket.level + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
        return bucket

    def _forget_full(self, now: float) -> None:
        for key, b in list(self._buckets.items()):
            if b.level + (now - b.stamp) * self.rate >= self.capacity:
                del self._buckets[key]

    def wait(self, key: str, cost: int, now: float) -> float:
        """Seconds until `cost` fits (0: now)."""
        missing = min(cost, self.capacity) - self._bucket(key, now).level
        return max(0.0, missing / self.rate)

    def take(self, key: str, cost: int, now: float) -> None:
        self._bucket(key, now).level -= min(cost, self.capacity)

    def give_back(self, key: str, cost: int, now: float) -> None:
        bucket = self._bucket(key, now)
        bucket.level = min(self.capacity, bucket.level + min(cost, self.capacity))

    def remaining(self, key: str, now: float) -> tuple[int, float]:
        """Whole units left, and seconds until the bucket is full again."""
        bucket = self._bucket(key, now)
        return max(0, math.floor(bucket.level)), (self.capacity - bucket.level) / self.rate


def duration(seconds: float) -> str:
    """OpenAI's `x-ratelimit-reset-*` format: `250ms`, `1.5s`, `1m0s`."""
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes else text


# -------------------------------------------------------------- concurrency
class Slots:
    """At most `limit` holders; up to `max_waiting` more wait (FIFO) at most `timeout` seconds.
    The slots are `limit` tokens lent through the project's one WaitingLine."""

    def __init__(self, limit: int, max_waiting: int, timeout: float) -> None:
        self.limit, self.max_waiting, self.timeout = limit, max_waiting, timeout
        self._line: WaitingLine[None] = WaitingLine([None] * limit, max_waiting, timeout)

    @property
    def running(self) -> int:
        return self.limit - self._line.free

    @property
    def waiting(self) -> int:
        return self._line.waiting

    async def acquire(self) -> None:
        try:
            await self._line.take()
        except LineFull:
            raise Refusal(RateLimitedError(
                f"The server is at capacity ({self.running} requests running, {self.waiting} waiting). "
                f"Please retry after {QUEUE_RETRY_AFTER_S}s.", retry_after=QUEUE_RETRY_AFTER_S), "queue_full") from None
        except LineTimeout:
            raise Refusal(RateLimitedError(
                f"No capacity freed up within {self.timeout:g}s. Please retry after {QUEUE_RETRY_AFTER_S}s.",
                retry_after=QUEUE_RETRY_AFTER_S), "queue_timeout") from None

    def release(self) -> None:
        self._line.give(None)  # to the first waiter (`running` stays the same), else freed
