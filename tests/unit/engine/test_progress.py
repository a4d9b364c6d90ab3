"""The stall signal: work in flight and no engine step for a while; idle and slow readers are not stalls."""

from __future__ import annotations

from service.engine.progress import ProgressMonitor


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_idle_engine_is_never_stalled() -> None:
    clock = Clock()
    monitor = ProgressMonitor(clock)
    clock.now += 1000
    assert monitor.stalled_seconds() == 0.0


def test_work_without_a_step_counts_from_when_the_work_began() -> None:
    clock = Clock()
    monitor = ProgressMonitor(clock)
    monitor.step(0)  # an old step, before this work
    clock.now += 500
    monitor.request_started()
    clock.now += 7
    assert monitor.stalled_seconds() == 7.0


def test_a_step_resets_the_count_and_pending_work_keeps_it_running() -> None:
    clock = Clock()
    monitor = ProgressMonitor(clock)
    monitor.request_started()
    clock.now += 3
    monitor.step(2)
    assert monitor.stalled_seconds() == 0.0
    clock.now += 4
    assert monitor.stalled_seconds() == 4.0
    monitor.step(None)  # a step without scheduler figures still counts, and keeps the pending count
    clock.now += 1
    assert monitor.stalled_seconds() == 1.0


def test_a_request_waiting_for_its_reader_is_not_a_stall() -> None:
    clock = Clock()
    monitor = ProgressMonitor(clock)
    monitor.request_started()
    monitor.step(0)  # the engine finished everything; the stream's reader is slow
    clock.now += 600
    assert monitor.stalled_seconds() == 0.0


def test_ending_every_request_ends_the_stall() -> None:
    clock = Clock()
    monitor = ProgressMonitor(clock)
    monitor.request_started()
    monitor.request_started()
    clock.now += 9
    monitor.request_ended()
    assert monitor.stalled_seconds() == 9.0
    monitor.request_ended()
    monitor.request_ended()  # never below zero
    assert monitor.stalled_seconds() == 0.0
    monitor.request_started()
    assert monitor.stalled_seconds() == 0.0
