"""A stand-in for the generation service (and its engine) that triage can run against: no model,
no tokenizer. Tickets are told apart by `metadata.batch`; a batch's engine runs can be held on a
gate, and the fake records how many of each batch run at once and which were cancelled."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from types import SimpleNamespace

from service.engine import EngineState
from service.generation import GenerationLimits
from service.tasks.triage import Ticket

BASE_MODEL = "tiny-base"
REPLY = {"category": "billing", "priority": "low", "summary": "A charge.", "suggested_action": "Refund it."}


def ticket(batch: str, i: int = 0) -> Ticket:
    return Ticket(subject=f"{batch}-{i}", body=f"Ticket {i} of batch {batch}.", metadata={"batch": batch})


class FakeEngine:
    def __init__(self, ready: bool = True) -> None:
        self.state = EngineState.READY if ready else EngineState.STARTING
        self.rendered = 0

    @property
    def is_ready(self) -> bool:
        return self.state == EngineState.READY

    def render_chat(self, messages: list[dict[str, str]]) -> list[int]:
        self.rendered += 1
        if not self.is_ready:  # as the real engine: no tokenizer until it has started
            raise AttributeError("'NoneType' object has no attribute 'apply_chat_template'")
        return [0] * (sum(len(m["content"]) for m in messages) // 4)


class FakePrepared:
    def __init__(self, batch: str) -> None:
        self.batch = batch
        self.released = False

    def release(self) -> None:
        self.released = True


class FakeGeneration:
    def __init__(self, ready: bool = True) -> None:
        self.engine = FakeEngine(ready)
        self.limits = GenerationLimits(max_model_len=4096, max_tokens_limit=2048, max_n=4)
        self.accounting = SimpleNamespace(refused=lambda reason: self.refusals.append(reason))
        self.refusals: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}  # batch -> runs wait until it is set
        self.running: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.finished: Counter[str] = Counter()
        self.cancelled: Counter[str] = Counter()
        self.prepared: list[FakePrepared] = []

    def count_chat_tokens(self, messages) -> int:
        return len(self.engine.render_chat([m.model_dump() for m in messages]))

    async def prepare(self, request) -> FakePrepared:
        self.engine.render_chat([m.model_dump() for m in request.messages])
        batch = next(line.split(": ", 1)[1] for line in request.messages[1].content.splitlines()
                     if line.startswith("batch: "))
        self.prepared.append(FakePrepared(batch))
        return self.prepared[-1]

    async def run(self, prepared: FakePrepared) -> SimpleNamespace:
        batch = prepared.batch
        self.running[batch] += 1
        self.peak[batch] = max(self.peak[batch], self.running[batch])
        try:
            await asyncio.sleep(0.01)
            if batch in self.gates:
                await self.gates[batch].wait()
        except asyncio.CancelledError:  # what aborts the request in the real engine
            self.cancelled[batch] += 1
            raise
        finally:
            self.running[batch] -= 1
        self.finished[batch] += 1
        target = SimpleNamespace(model=BASE_MODEL, base_model=BASE_MODEL, adapter=None, route=BASE_MODEL,
                                 variant=BASE_MODEL)
        return SimpleNamespace(target=target, structured_result="valid", structured_backend="xgrammar",
                               choices=[SimpleNamespace(text=json.dumps(REPLY))], prompt_tokens=9, completion_tokens=9,
                               attempts=1)

