"""Whether the engine is stalled: it has work, yet has not finished a step for a while.

A hung engine (a stuck kernel, a stopped engine-core process, a deadlock) is not a dead one:
vLLM's `errored` flag stays down and every request just waits. The engine counts the requests it
is serving and notes each step vLLM reports (its stat loggers are called once per step), so the
watchdog and the readiness probe can tell a busy engine from a hung one.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class ProgressMonitor:
    """Requests in flight and the time of the engine's last step."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._requests = 0
        self._work_began = clock()
        self._last_step: float | None = None
        self._pending_after_step = 0

    def request_started(self) -> None:
        if self._requests == 0:
            self._work_began = self._clock()
        self._requests += 1

    def request_ended(self) -> None:
        self._requests = max(0, self._requests - 1)

    def step(self, pending_requests: int | None = None) -> None:
        """The engine finished a step; `pending_requests` are still running or waiting in it (None:
        the step did not say, as before)."""
        self._last_step = self._clock()
        if pending_requests is not None:
            self._pending_after_step = pending_requests

    def stalled_seconds(self) -> float:
        """How long the engine has had work without finishing a step (0 when idle or progressing)."""
        if self._requests == 0:
            return 0.0
        now = self._clock()
        if self._last_step is None or self._last_step < self._work_began:
            return now - self._work_began  # work arrived and no step has run since
        if self._pending_after_step == 0:
            return 0.0  # the engine is done; what is left in flight waits for its reader, not for it
        return now - self._last_step
