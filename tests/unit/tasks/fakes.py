"""A stand-in for the generation service (and its engine) that triage can run against: no model,
no tokenizer. Tickets are told apart by `metadata.batch`; a batch's engine runs can be held on a
gate, and the fake records how many of each batch run at once and which were cancelled."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from types import SimpleNamespace

from service.engine import EngineState, TokenLogprob
from service.errors import EngineNotReadyError
from service.generation import GenerationLimits, GenerationRequest, PromptMessage
from service.tasks.triage import Ticket

BASE_MODEL = "tiny-base"
REPLY = {"category": "billing", "priority": "low", "summary": "A charge.", "suggested_action": "Refund it."}


def ticket(batch: str, i: int = 0) -> Ticket:
    return Ticket(subject=f"{batch}-{i}", body=f"Ticket {i} of batch {batch}.", metadata={"batch": batch})


class FakeEngine:
    """A tokenizer of one token per character, so prompts can be read back from their ids."""

    def __init__(self, ready: bool = True) -> None:
        self.state = EngineState.READY if ready else EngineState.STARTING
        self.rendered = 0

    stalled = False

    @property
    def is_ready(self) -> bool:
        return self.state == EngineState.READY

    def render_chat(self, messages: list[dict[str, str]]) -> list[int]:
        self.rendered += 1
        if not self.is_ready:  # as the real engine: no tokenizer until it has started
            raise AttributeError("'NoneType' object has no attribute 'apply_chat_template'")
        return self.tokenize("".join(f"<{m['role']}>{m['content']}" for m in messages))

    def tokenize(self, text: str) -> list[int]:
        return [ord(char) for char in text]

    def detokenize(self, token_ids: list[int]) -> str:
        return "".join(chr(token) for token in token_ids)


class FakeSession:
    """A generation session: runs through the fake, records that it was closed (released)."""

    def __init__(self, generation: FakeGeneration, request: GenerationRequest) -> None:
        self.generation, self.request = generation, request
        self.batch = next(line.split(": ", 1)[1] for line in self.prompt.splitlines() if line.startswith("batch: "))
        self.released = False

    @property
    def prompt(self) -> str:
        return self.generation.engine.detokenize(self.request.prompt_token_ids or [])

    async def __aenter__(self) -> FakeSession:
        self.generation.prepared.append(self)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.released = True
        mirror, outcome = self.generation.mirror_to, self.request.shadow_outcome
        if mirror is not None and outcome is not None:  # as the real session: the shadow runs after the reply
            async def shadow() -> None:
                result = await self.generation.run(self)
                result.target = SimpleNamespace(**{**vars(result.target), "model": mirror, "variant": mirror})
                await outcome(result)

            self.generation.shadows.append(asyncio.get_running_loop().create_task(shadow()))

    async def run(self) -> SimpleNamespace:
        return await self.generation.run(self)


class FakeGeneration:
    def __init__(self, ready: bool = True) -> None:
        self.engine = FakeEngine(ready)
        self.limits = GenerationLimits(max_model_len=4096, max_tokens_limit=2048, max_n=4)
        self.refusals: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}  # batch -> runs wait until it is set
        self.running: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.finished: Counter[str] = Counter()
        self.cancelled: Counter[str] = Counter()
        self.prepared: list[FakeSession] = []
        self.outcomes: list[tuple[dict[str, str], bool, bool | None, dict[str, float] | None]] = []
        self.pairs: list[tuple[str, dict[str, str]] | None] = []  # record_outcome's `paired`, in order
        self.mirror_to: str | None = None  # a route's shadow target: every session mirrors to it
        self.shadows: list[asyncio.Task[None]] = []
        self.cached_prompt_tokens: int | None = None  # what the engine reports for every run

    def check_ready(self) -> None:
        if not self.engine.is_ready:
            self.refusals.append("engine_not_ready")
            raise EngineNotReadyError(f"The engine is {self.engine.state.value}; try again shortly.")

    def render_chat(self, messages: list[PromptMessage]) -> list[int]:
        return self.engine.render_chat([m.model_dump() for m in messages])

    def tokenize(self, text: str) -> list[int]:
        return self.engine.tokenize(text)

    def detokenize(self, token_ids: list[int]) -> str:
        return self.engine.detokenize(token_ids)

    def record_outcome(self, target: object, labels: dict[str, str], shadow: bool = False,
                       needs_review: bool | None = None, confidence: dict[str, float] | None = None,
                       paired: tuple[str, dict[str, str]] | None = None) -> None:
        self.outcomes.append((labels, shadow, needs_review, confidence))
        self.pairs.append(paired)

    def session(self, request: GenerationRequest) -> FakeSession:
        return FakeSession(self, request)

    async def run(self, session: FakeSession) -> SimpleNamespace:
        batch = session.batch
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
        text = json.dumps(REPLY)
        # One token per character, each certain: the labels' probabilities are those of the reply.
        logprobs = [TokenLogprob(token_id=ord(c), token=c, logprob=0.0) for c in text] \
            if session.request.sampling.logprobs is not None else None
        return SimpleNamespace(target=target, structured_output="valid", structured_backend="xgrammar",
                               structured_value=dict(REPLY), choices=[SimpleNamespace(text=text, logprobs=logprobs)],
                               prompt_tokens=len(session.request.prompt_token_ids or []), completion_tokens=9,
                               attempts=1, cached_prompt_tokens=self.cached_prompt_tokens)
