"""The triage endpoints abort their engine work when the client goes away (as the OpenAI routes do)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from starlette.requests import Request

from service.api.tasks import BatchTriageRequest, TriageRequest, triage_batch, triage_ticket
from service.tasks.triage import TriageService
from tests.support.waiting import eventually
from tests.unit.tasks.fakes import BASE_MODEL, FakeGeneration, ticket

pytestmark = pytest.mark.anyio



def client_request(path: str) -> tuple[Request, asyncio.Event]:
    """A request whose body was read; it disconnects when the returned event is set."""
    gone = asyncio.Event()
    body_sent = False

    async def receive() -> dict:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    return Request({"type": "http", "method": "POST", "path": path, "headers": []}, receive), gone


def services(generation: FakeGeneration) -> SimpleNamespace:
    return SimpleNamespace(triage=TriageService(generation, BASE_MODEL, batch_concurrency=2),  # type: ignore[arg-type]
                           settings=SimpleNamespace(triage=SimpleNamespace(batch_max=10), request_timeout_s=None))


async def test_triage_is_cancelled_when_the_client_disconnects() -> None:
    generation = FakeGeneration()
    generation.gates["A"] = asyncio.Event()  # never set: only a disconnect ends it
    request, gone = client_request("/v1/tickets/triage")
    body = TriageRequest(**ticket("A").model_dump())
    handler = asyncio.create_task(triage_ticket(body, request=request, services=services(generation), route_key=None))
    await eventually(lambda: generation.running["A"] == 1)

    gone.set()
    await asyncio.wait({handler}, timeout=5)
    assert handler.cancelled()  # mapped to 499 by the error handlers
    assert generation.cancelled["A"] == 1 and generation.running["A"] == 0
    assert all(p.released for p in generation.prepared)


async def test_batch_is_cancelled_when_the_client_disconnects() -> None:
    generation = FakeGeneration()
    generation.gates["A"] = asyncio.Event()
    request, gone = client_request("/v1/tickets/triage/batch")
    body = BatchTriageRequest(tickets=[ticket("A", i) for i in range(5)])
    handler = asyncio.create_task(triage_batch(body, request=request, services=services(generation), route_key=None))
    await eventually(lambda: generation.running["A"] == 2)

    gone.set()
    await asyncio.wait({handler}, timeout=5)
    assert handler.cancelled()
    assert generation.cancelled["A"] == 2 and generation.running["A"] == 0
    await asyncio.sleep(0.05)
    assert len(generation.prepared) == 2 and generation.finished["A"] == 0  # the waiting tickets never started
    assert all(p.released for p in generation.prepared)


async def test_a_client_that_stays_gets_its_replies() -> None:
    generation = FakeGeneration()
    request, _ = client_request("/v1/tickets/triage")
    single = await triage_ticket(TriageRequest(**ticket("A").model_dump()), request=request,
                                 services=services(generation), route_key=None)
    assert single.status_code == 200 and single.headers["x-loragate-base-model"] == BASE_MODEL

    request, _ = client_request("/v1/tickets/triage/batch")
    batch = await triage_batch(BatchTriageRequest(tickets=[ticket("B", i) for i in range(3)]), request=request,
                               services=services(generation), route_key=None)
    assert [item.index for item in batch.data] == [0, 1, 2]
    assert all(item.triage is not None and item.error is None for item in batch.data)
