"""The worker processes that trial-convert constraints: a fixed number, a bounded wait for a free
one, and a deadline per trial after which the stuck worker is killed and replaced.

Each worker is its own single-process executor, so a trial that overruns kills only its own
process, never the trials other workers are running. A worker stays busy until its trial has
finished or overrun, even when the request that asked for it is gone, and a replacement process
is started (and warmed) before the worker is handed out again: the next trial's deadline measures
the conversion, not a process start.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Literal

from service.errors import OverloadedError
from service.waiting_line import LineFull, LineTimeout, WaitingLine

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 120.0  # a (re)started worker that is not ready by then is started again on next use

TrialStatus = Literal["done", "timed_out", "crashed", "failed"]


@dataclass(frozen=True)
class TrialOutcome:
    """How one trial went: `done` (with the function's value), `timed_out` (past the deadline),
    `crashed` (the process died) or `failed` (the function raised)."""

    status: TrialStatus
    value: Any = None


def new_process_executor() -> Executor:
    # spawn, not fork: the service process runs vLLM threads that must not be forked.
    context = multiprocessing.get_context("spawn")
    try:
        return ProcessPoolExecutor(max_workers=1, mp_context=context)
    except BrokenPipeError:
        # Seen once at start-up in CI: multiprocessing's resource tracker was dead and registering the
        # pool's locks hit its closed pipe; a second attempt relaunches the tracker.
        logger.warning("multiprocessing's resource tracker was gone; relaunching it for the constraint workers")
        return ProcessPoolExecutor(max_workers=1, mp_context=context)


class Worker:
    """One worker process, started on first use."""

    def __init__(self, index: int) -> None:
        self.index = index
        self._executor: Executor | None = None

    def executor(self) -> Executor:
        if self._executor is None:
            self._executor = new_process_executor()
        return self._executor

    def kill(self) -> None:
        """Stop the process now, whatever it is doing; the next use starts a new one."""
        executor, self._executor = self._executor, None
        if executor is not None:
            for process in list((getattr(executor, "_processes", None) or {}).values()):
                process.kill()
            executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


class WorkerPool:
    """`size` workers; a caller waits at most `wait_s` for one, behind at most `max_waiting` others,
    and is otherwise refused with OverloadedError (503, Retry-After)."""

    def __init__(self, size: int, wait_s: float, max_waiting: int, warm: Callable[[], Any]) -> None:
        self.size, self.wait_s, self.max_waiting = max(1, size), max(0.0, wait_s), max(0, max_waiting)
        self._warm = warm  # a picklable call that starts the worker's libraries
        self._workers = [Worker(i) for i in range(self.size)]
        self._line: WaitingLine[Worker] = WaitingLine(self._workers, self.max_waiting, self.wait_s)
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def waiting(self) -> int:
        return self._line.waiting

    async def run(self, fn: Callable[[Any], Any], arg: Any, deadline_s: float) -> TrialOutcome:
        """`fn(arg)` in a free worker, within `deadline_s` seconds of starting it."""
        worker = await self._acquire()
        task = self._background(self._trial(worker, fn, arg, deadline_s))
        return await asyncio.shield(task)  # if the caller goes, the trial still owns its worker

    async def warm_up(self) -> None:
        """Start every free worker's process ahead of the first trial."""
        idle = self._line.take_free()
        await asyncio.gather(*(self._start_then_release(worker) for worker in idle))

    def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for worker in self._workers:
            worker.close()

    # ---- lending workers
    async def _acquire(self) -> Worker:
        try:
            return await self._line.take()
        except LineFull:
            raise OverloadedError(
                f"The constraint compiler is saturated: all {self.size} workers are busy and "
                f"{self._line.waiting} requests are already waiting; retry shortly.",
            ) from None
        except LineTimeout:
            raise OverloadedError(
                f"No constraint compiler worker became free within {self.wait_s:g} s "
                f"({self.size} workers, all busy); retry shortly.",
            ) from None

    def _release(self, worker: Worker) -> None:
        self._line.give(worker)

    # ---- running trials
    async def _trial(self, worker: Worker, fn: Callable[[Any], Any], arg: Any, deadline_s: float) -> TrialOutcome:
        restarting = False
        try:
            outcome = await self._attempt(worker, fn, arg, deadline_s)
            if outcome.status in ("timed_out", "crashed"):
                worker.kill()  # stuck in (or killed by) native code: replace the process
                self._background(self._start_then_release(worker, quiet=True))
                restarting = True
            return outcome
        finally:
            if not restarting:
                self._release(worker)

    @staticmethod
    async def _attempt(worker: Worker, fn: Callable[[Any], Any], arg: Any, deadline_s: float) -> TrialOutcome:
        try:
            future = worker.executor().submit(fn, arg)
            value = await asyncio.wait_for(asyncio.wrap_future(future), deadline_s)
        except asyncio.TimeoutError:
            return TrialOutcome("timed_out")
        except BrokenProcessPool:
            return TrialOutcome("crashed")
        except Exception:  # noqa: BLE001 - the caller decides what a failed conversion means
            return TrialOutcome("failed")
        return TrialOutcome("done", value)

    async def _start_then_release(self, worker: Worker, quiet: bool = False) -> None:
        """(Re)start the worker's process and warm it, then lend it out again."""
        try:
            await asyncio.wait_for(asyncio.wrap_future(worker.executor().submit(self._warm)), START_TIMEOUT_S)
        except BaseException as exc:
            worker.kill()  # started afresh on next use
            if not quiet or not isinstance(exc, Exception):
                raise
            logger.warning("constraint worker %d did not restart (%r); it restarts on next use", worker.index, exc)
        finally:
            self._release(worker)

    def _background(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
