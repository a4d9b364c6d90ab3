"""What `Engine.generate` hands vLLM and reads back, with a stand-in for `AsyncLLM` (no model): the
request's `cache_salt` goes into the `TokensPrompt`, and the prompt tokens that hit the prefix cache
(`RequestOutput.num_cached_tokens`) ride on every update."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from service.engine import Engine, EngineState, GenerationUpdate, SamplingOptions
from service.engine.types import EngineOptions

pytestmark = pytest.mark.anyio


class FakeLLM:
    """Two delta outputs per request; `cached` is their `num_cached_tokens` (absent when None)."""

    errored = False

    def __init__(self, cached: int | None) -> None:
        self.cached = cached
        self.prompts: list[Any] = []

    async def generate(self, prompt: Any, params: Any, request_id: str, lora_request: Any = None,
                       priority: int = 0) -> AsyncIterator[Any]:
        self.prompts.append(prompt)
        for text, finish in (("a", None), ("b", "stop")):
            choice = SimpleNamespace(index=0, text=text, token_ids=[7], finish_reason=finish, logprobs=None)
            output = SimpleNamespace(outputs=[choice], error=None, metrics=None)
            if self.cached is not None:
                output.num_cached_tokens = self.cached
            yield output


def engine(llm: FakeLLM) -> Engine:
    built = Engine(EngineOptions(model_dir=Path("/models/m"), served_model_name="m"), platform="cpu")
    built._llm, built.state = llm, EngineState.READY
    return built


async def updates(built: Engine, **kwargs: Any) -> list[GenerationUpdate]:
    return [u async for u in built.generate([1, 2, 3, 4], SamplingOptions(max_tokens=2), **kwargs)]


async def test_cached_prompt_tokens_come_from_num_cached_tokens() -> None:
    got = await updates(engine(FakeLLM(cached=32)))
    assert [u.cached_prompt_tokens for u in got] == [32, 32]
    assert [u.prompt_tokens for u in got] == [4, 4]


async def test_cached_prompt_tokens_are_none_when_vllm_does_not_report_them() -> None:
    got = await updates(engine(FakeLLM(cached=None)))
    assert [u.cached_prompt_tokens for u in got] == [None, None]


async def test_the_salt_goes_into_the_tokens_prompt() -> None:
    from vllm import TokensPrompt

    assert "cache_salt" in TokensPrompt.__annotations__  # the vLLM field the engine fills
    llm = FakeLLM(cached=0)
    await updates(engine(llm), cache_salt="tenant-a")
    await updates(engine(llm))
    assert llm.prompts == [{"prompt_token_ids": [1, 2, 3, 4], "cache_salt": "tenant-a"},
                           {"prompt_token_ids": [1, 2, 3, 4]}]
