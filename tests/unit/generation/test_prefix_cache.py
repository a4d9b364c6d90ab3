"""The prefix cache in the generation service: the cached prompt tokens of the attempt whose output
the client receives reach the result (usage, triage meta) and `loragate_prompt_cached_tokens_total`;
a request's `cache_salt` reaches every engine call made for it (its retries and its shadow)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from service.engine import EngineRequestError, GenerationDelta, GenerationUpdate, SamplingOptions
from service.generation import GenerationRequest, PromptMessage
from tests.unit.generation.test_generation_service import (
    ScriptedEngine, mirrored_service, run, service, structured_request, value,
)

pytestmark = pytest.mark.anyio


class CachingEngine(ScriptedEngine):
    """Each call's steps, as `ScriptedEngine`; call n reports `cached[n - 1]` cached prompt tokens, and
    a step list of None refuses the request (as vLLM refusing a constraint) before any output."""

    def __init__(self, steps: list[list[tuple[str, int, str | None]] | None], cached: list[int | None]) -> None:
        super().__init__(lambda sampling, call: [])
        self.steps, self.cached = steps, cached
        self.salts: list[str | None] = []

    async def generate(self, prompt_ids, sampling: SamplingOptions, adapter=None, request_id=None,  # noqa: ANN001
                       priority: int = 0, cache_salt: str | None = None) -> AsyncIterator[GenerationUpdate]:
        self.calls.append(sampling)
        self.salts.append(cache_salt)
        call = len(self.calls)
        steps = self.steps[call - 1]
        if steps is None:
            raise EngineRequestError("this backend refuses the constraint")
        for text, tokens, finish in steps:
            await asyncio.sleep(0)
            yield GenerationUpdate(deltas=[GenerationDelta(index=0, text=text, token_count=tokens,
                                                           finish_reason=finish)],
                                   prompt_tokens=len(prompt_ids), cached_prompt_tokens=self.cached[call - 1])


def plain() -> GenerationRequest:
    return GenerationRequest(model="base", messages=[PromptMessage(role="user", content="hi")],
                             sampling=SamplingOptions(max_tokens=4))


async def test_a_reply_carries_its_cached_prompt_tokens_and_counts_them() -> None:
    generation, metrics = service(CachingEngine([[("a", 1, None), ("b", 1, "stop")]], [2]))
    result = await run(generation, plain())
    assert result.cached_prompt_tokens == 2 and result.prompt_tokens == 3
    assert value(metrics, "loragate_prompt_cached_tokens_total") == 2
    assert value(metrics, "loragate_prompt_tokens_total") == 3


async def test_nothing_is_counted_when_the_engine_does_not_report_it() -> None:
    generation, metrics = service(CachingEngine([[("a", 1, "stop")]], [None]))
    assert (await run(generation, plain())).cached_prompt_tokens is None
    assert metrics.registry.get_sample_value("loragate_prompt_cached_tokens_total", {
        "base_model": "base", "model": "base", "route": "none", "variant": "none", "route_version": "none"}) is None
    assert value(metrics, "loragate_prompt_tokens_total") == 3


async def test_a_retried_request_reports_the_attempt_the_client_receives() -> None:
    # The truncated first attempt computed the prompt (0 cached); the retry read 2 tokens from the cache.
    engine = CachingEngine([[('{"a": 1', 4, "length")], [('{"a": 1', 4, None), ("}", 1, "stop")]], [0, 2])
    generation, metrics = service(engine)
    result = await run(generation, structured_request(max_tokens=4, retry_truncated_max_tokens=8))
    assert result.attempts == 2 and result.structured_output == "valid"
    assert result.cached_prompt_tokens == 2
    assert value(metrics, "loragate_prompt_cached_tokens_total") == 2


async def test_a_fallback_reply_keeps_its_own_attempts_figure() -> None:
    # Truncated (1 cached), then both backends refuse the retry: the client gets the first reply.
    engine = CachingEngine([[('{"a": 1', 4, "length")], None, None], [1, 3, 3])
    generation, metrics = service(engine)
    result = await run(generation, structured_request(max_tokens=4, retry_truncated_max_tokens=8))
    assert len(engine.calls) == 3 and result.structured_output == "truncated"
    assert result.cached_prompt_tokens == 1
    assert value(metrics, "loragate_prompt_cached_tokens_total") == 1


@pytest.mark.parametrize("structured", [False, True])
async def test_a_stream_sets_the_sessions_figure_by_its_end(structured: bool) -> None:
    steps = [('{"a"', 2, None), (": 1}", 2, "stop")]
    generation, metrics = service(CachingEngine([steps], [2]))
    async with generation.session(structured_request() if structured else plain()) as session:
        assert session.cached_prompt_tokens is None
        texts = [d.text async for deltas in session.stream() for d in deltas]
    assert "".join(texts) == '{"a": 1}' and session.cached_prompt_tokens == 2
    assert session.structured_output == ("valid" if structured else None)
    assert value(metrics, "loragate_prompt_cached_tokens_total") == 2


async def test_the_salt_reaches_every_attempt_and_the_shadow() -> None:
    engine = CachingEngine([[('{"a": 1', 4, "length")], [('{"a": 1}', 5, "stop")], [("x", 1, "stop")]], [0, 0, 0])
    generation, _ = service(engine)
    await run(generation, structured_request(max_tokens=4, retry_truncated_max_tokens=8, cache_salt="tenant-a"))
    assert engine.salts == ["tenant-a", "tenant-a"]
    await run(generation, plain())
    assert engine.salts[-1] is None  # no salt: the blocks are shared with every unsalted request
    mirrored = CachingEngine([[("a", 1, "stop")], [("a", 1, "stop")]], [0, 0])
    generation, leases, _ = mirrored_service(mirrored)
    await run(generation, GenerationRequest(model="base", prompt="hi", endpoint="completions", cache_salt="t"))
    await asyncio.wait_for(asyncio.gather(*generation._background), timeout=5)
    assert mirrored.salts == ["t", "t"] and leases.released == ["main", "mirror"]


def test_an_empty_salt_is_refused() -> None:
    with pytest.raises(ValueError):
        GenerationRequest(model="base", prompt="hi", cache_salt="")
