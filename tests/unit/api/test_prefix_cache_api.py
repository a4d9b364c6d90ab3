"""Prefix caching at the API: `usage.prompt_tokens_details.cached_tokens` as OpenAI (and vLLM with
--enable-prompt-tokens-details) return it, only when the engine reported the figure; `cache_salt` on
chat and completions, validated as vLLM's own server validates it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openai.types import Completion
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from service.engine.types import GenerationDelta, GenerationUpdate
from tests.unit.api.test_protocol_strict import events
from tests.unit.api.test_validation import MODEL, StubEngine, post, serving

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "one two"}]}  # 2 words + 3 = 5 tokens
COMPLETION = {"model": MODEL, "prompt": "one two three four five"}  # 5 tokens


class CachingEngine(StubEngine):
    """Two steps of one token; every update reports `cached` prompt tokens read from the cache."""

    def __init__(self) -> None:
        super().__init__()
        self.cached: int | None = 3
        self.kwargs: list[dict[str, Any]] = []

    async def generate(self, prompt_ids, options, adapter=None, **kwargs: Any) -> AsyncIterator[GenerationUpdate]:  # noqa: ANN001
        self.generate_calls += 1
        self.kwargs.append(kwargs)
        for text, finish in (("a", None), (" b", "stop")):
            yield GenerationUpdate(deltas=[GenerationDelta(index=0, text=text, token_count=1, finish_reason=finish)],
                                   prompt_tokens=len(prompt_ids), cached_prompt_tokens=self.cached)


@pytest.fixture()
def engine() -> CachingEngine:
    return CachingEngine()


@pytest.fixture()
def client(engine: CachingEngine, tmp_path: Path) -> Iterator[TestClient]:
    with serving(engine, tmp_path) as http:
        yield http


USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}


@pytest.mark.parametrize(("path", "body", "parse"), [
    ("/v1/chat/completions", CHAT, ChatCompletion), ("/v1/completions", COMPLETION, Completion)])
def test_usage_names_the_cached_prompt_tokens(client: TestClient, path: str, body: dict, parse: Any) -> None:
    reply = post(client, body, path)
    assert reply.status_code == 200, reply.text
    assert reply.json()["usage"] == {**USAGE, "prompt_tokens_details": {"cached_tokens": 3}}
    assert parse.model_validate(reply.json()).usage.prompt_tokens_details.cached_tokens == 3  # the openai client's
    metrics = client.app.state.services.metrics
    assert metrics.registry.get_sample_value("loragate_prompt_cached_tokens_total", {
        "base_model": MODEL, "model": MODEL, "route": "none", "variant": "none", "route_version": "none"}) == 3


@pytest.mark.parametrize(("path", "body"), [("/v1/chat/completions", CHAT), ("/v1/completions", COMPLETION)])
def test_the_final_streamed_usage_names_them_too(client: TestClient, path: str, body: dict) -> None:
    chunks = events(post(client, {**body, "stream": True, "stream_options": {"include_usage": True}}, path))
    assert [c["usage"] for c in chunks[:-1]] == [None, None]
    assert chunks[-1]["usage"] == {**USAGE, "prompt_tokens_details": {"cached_tokens": 3}}
    if path == "/v1/chat/completions":
        assert ChatCompletionChunk.model_validate(chunks[-1]).usage.prompt_tokens_details.cached_tokens == 3


@pytest.mark.parametrize(("path", "body"), [("/v1/chat/completions", CHAT), ("/v1/completions", COMPLETION)])
def test_no_details_when_the_engine_does_not_report_them(client: TestClient, engine: CachingEngine, path: str,
                                                          body: dict) -> None:
    engine.cached = None
    assert post(client, body, path).json()["usage"] == USAGE  # the key is left out, not null
    chunks = events(post(client, {**body, "stream": True, "stream_options": {"include_usage": True}}, path))
    assert chunks[-1]["usage"] == USAGE


def test_zero_cached_tokens_are_reported_as_zero(client: TestClient, engine: CachingEngine) -> None:
    engine.cached = 0
    assert post(client, CHAT).json()["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}


def test_the_openapi_document_describes_the_details(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert "prompt_tokens_details" in schemas["Usage"]["properties"]
    assert schemas["PromptTokensDetails"]["properties"]["cached_tokens"]["type"] == "integer"


# ------------------------------------------------------------------------------ cache_salt
@pytest.mark.parametrize(("path", "body"), [("/v1/chat/completions", CHAT), ("/v1/completions", COMPLETION)])
@pytest.mark.parametrize("stream", [False, True])
def test_the_salt_reaches_the_engine(client: TestClient, engine: CachingEngine, path: str, body: dict,
                                     stream: bool) -> None:
    salt = "tenant-a:" + "x" * 119  # 128 characters, vLLM's longest
    assert post(client, {**body, "cache_salt": salt, "stream": stream}, path).status_code == 200
    assert post(client, {**body, "cache_salt": None, "stream": stream}, path).status_code == 200
    assert post(client, {**body, "stream": stream}, path).status_code == 200
    assert [kwargs.get("cache_salt") for kwargs in engine.kwargs] == [salt, None, None]


def vllm_refusal(salt: object) -> str:
    from vllm.entrypoints.generate.base.protocol import validate_cache_salt
    from vllm.exceptions import VLLMValidationError

    with pytest.raises(VLLMValidationError) as refused:
        validate_cache_salt(salt)
    return str(refused.value.args[0])


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
@pytest.mark.parametrize("salt", ["", "x" * 129, "tenant/a", "a@b", "back\\slash", "nul\x00"])
def test_a_salt_vllm_refuses_is_a_400_naming_it(client: TestClient, engine: CachingEngine, path: str,
                                                salt: str) -> None:
    body = CHAT if path == "/v1/chat/completions" else COMPLETION
    response = post(client, {**body, "cache_salt": salt}, path)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", "invalid_value", "cache_salt")
    assert vllm_refusal(salt) in error["message"]  # vLLM's own words
    assert engine.generate_calls == 0


def test_a_salt_that_is_not_a_string_is_refused(client: TestClient, engine: CachingEngine) -> None:
    response = post(client, {**CHAT, "cache_salt": 42})
    assert response.status_code == 400 and response.json()["error"]["param"] == "cache_salt"
    assert engine.generate_calls == 0
