"""The guard's trial conversions: a pool of workers with a bounded wait (503 beyond it), a deadline
per trial, and verdicts remembered, refusals included."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from service.errors import InvalidRequestError, OverloadedError
from tests.unit.structured.fakes import FakeCompiler, regex_request, schema_request

pytestmark = pytest.mark.anyio

TOO_BIG_FOR_OUTLINES = {"type": "string", "x-outlines-regex": "(x+)+"}  # the fake converts it so


async def test_a_refused_constraint_is_converted_once(make_guard: Any, compiler: FakeCompiler) -> None:
    guard = make_guard()
    refusals = []
    for _ in range(3):
        with pytest.raises(InvalidRequestError) as refused:
            await guard.check(schema_request(TOO_BIG_FOR_OUTLINES), ["xgrammar", "outlines"])
        refusals.append(refused.value)
    assert compiler.count(json_schema=TOO_BIG_FOR_OUTLINES) == 1
    assert {(e.code, e.param) for e in refusals} == {("constraint_too_complex", "response_format")}
    assert len({e.message for e in refusals}) == 1 and "outlines" in refusals[0].message
    assert len({id(e) for e in refusals}) == 3  # a fresh exception each time
    # the verdict depends on the backends: without outlines the same schema is judged afresh, and passes
    await guard.check(schema_request(TOO_BIG_FOR_OUTLINES), ["xgrammar"])
    assert compiler.count(json_schema=TOO_BIG_FOR_OUTLINES) == 2


async def test_a_timed_out_constraint_is_refused_once_and_its_worker_replaced(
        make_guard: Any, compiler: FakeCompiler) -> None:
    guard = make_guard(compile_workers=1, compile_timeout_s=0.3)
    for _ in range(2):
        with pytest.raises(InvalidRequestError) as refused:
            await asyncio.wait_for(guard.check(regex_request("hold-forever")), 3)
        assert refused.value.code == "constraint_too_complex"
    assert compiler.count(regex="hold-forever") == 1
    started = time.monotonic()
    await asyncio.wait_for(guard.check(regex_request("fine")), 3)  # on a new worker: the old one is stuck
    assert time.monotonic() - started < 0.3
    assert compiler.executors == 2


async def test_a_busy_pool_with_no_room_to_wait_answers_overloaded(make_guard: Any, compiler: FakeCompiler) -> None:
    guard = make_guard(compile_workers=1, compile_max_waiting=0, compile_wait_s=5)
    held = asyncio.ensure_future(guard.check(regex_request("hold-a-while")))
    await compiler.until_running()
    started = time.monotonic()
    with pytest.raises(OverloadedError) as overloaded:
        await asyncio.wait_for(guard.check(regex_request("other")), 3)
    assert time.monotonic() - started < 1
    assert overloaded.value.status == 503 and overloaded.value.retry_after and overloaded.value.retry_after >= 1
    assert "busy" in overloaded.value.message
    compiler.release_all()
    await asyncio.wait_for(held, 3)
    # an overload is no verdict: once a worker is free the constraint is converted, and passes
    await asyncio.wait_for(guard.check(regex_request("other")), 3)
    assert compiler.count(regex="other") == 1


async def test_waiting_for_a_worker_is_bounded(make_guard: Any, compiler: FakeCompiler) -> None:
    guard = make_guard(compile_workers=1, compile_max_waiting=4, compile_wait_s=0.2)
    held = asyncio.ensure_future(guard.check(regex_request("hold-a-while")))
    await compiler.until_running()
    started = time.monotonic()
    with pytest.raises(OverloadedError, match="within 0.2 s") as overloaded:
        await asyncio.wait_for(guard.check(regex_request("other")), 3)
    assert 0.15 < time.monotonic() - started < 1
    assert overloaded.value.retry_after
    compiler.release_all()
    await asyncio.wait_for(held, 3)


async def test_a_waiter_gets_the_worker_when_it_frees(make_guard: Any, compiler: FakeCompiler) -> None:
    guard = make_guard(compile_workers=1, compile_max_waiting=1, compile_wait_s=3)
    held = asyncio.ensure_future(guard.check(regex_request("hold-a-while")))
    await compiler.until_running()
    waiting = asyncio.ensure_future(guard.check(regex_request("next")))
    await asyncio.sleep(0.05)
    with pytest.raises(OverloadedError, match="already waiting"):  # a second waiter is one too many
        await guard.check(regex_request("third"))
    compiler.release_all()
    await asyncio.wait_for(asyncio.gather(held, waiting), 3)
    assert compiler.count(regex="next") == 1 and compiler.count(regex="third") == 0


async def test_two_workers_convert_two_constraints_at_once(make_guard: Any, compiler: FakeCompiler) -> None:
    guard = make_guard(compile_workers=2)
    # each conversion waits for the other to start: only concurrent workers get both through quickly
    await asyncio.wait_for(asyncio.gather(guard.check(regex_request("pair-left")),
                                          guard.check(regex_request("pair-right"))), 5)
    assert compiler.max_running == 2


async def test_a_worker_stays_busy_until_an_abandoned_trial_ends(make_guard: Any, compiler: FakeCompiler) -> None:
    """A client that goes away does not free the worker early: the next trial would queue behind
    the abandoned one and be timed out for someone else's constraint."""
    guard = make_guard(compile_workers=1, compile_max_waiting=0, compile_timeout_s=2)
    abandoned = asyncio.ensure_future(guard.check(regex_request("hold-a-while")))
    await compiler.until_running()
    abandoned.cancel()
    with pytest.raises(OverloadedError):
        await asyncio.wait_for(guard.check(regex_request("next")), 3)
    compiler.release_all()
    await asyncio.sleep(0.1)
    await asyncio.wait_for(guard.check(regex_request("next")), 3)


async def test_verdicts_are_remembered_within_a_bound(make_guard: Any, compiler: FakeCompiler) -> None:
    guard = make_guard(cache_entries=2)
    schemas = [TOO_BIG_FOR_OUTLINES | {"title": str(i)} for i in range(3)]
    for schema in schemas + schemas[2:]:  # the third twice: remembered
        with pytest.raises(InvalidRequestError):
            await guard.check(schema_request(schema), ["outlines"])
    assert [compiler.count(json_schema=s) for s in schemas] == [1, 1, 1]
    with pytest.raises(InvalidRequestError):  # the first was evicted: judged again
        await guard.check(schema_request(schemas[0]), ["outlines"])
    assert compiler.count(json_schema=schemas[0]) == 2
    for _ in range(2):  # passes are remembered too
        await guard.check(regex_request("fine"))
    assert compiler.count(regex="fine") == 1
