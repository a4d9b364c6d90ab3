"""Nothing of the OpenAI protocol is silently accepted: every model forbids unknown fields (or is a
documented exception), tool and function calling and message `name` are refused by name, and
`stream_options.continuous_usage_stats` is honoured as vLLM's server does."""

from __future__ import annotations

import json
import typing
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from service.api.openai import protocol
from service.engine.types import GenerationDelta, GenerationUpdate
from tests.unit.api.test_validation import MODEL, MSG, StubEngine, client, engine, post, serving  # noqa: F401 - fixtures

REQUEST_MODELS = (protocol.ChatCompletionRequest, protocol.CompletionRequest)


def _models_in(annotation: object) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from _models_in(arg)


def reachable(*roots: type[BaseModel]) -> set[type[BaseModel]]:
    """Every pydantic model a request can contain, the roots and their bases included."""
    seen: set[type[BaseModel]] = set()
    todo = list(roots)
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        todo += [base for base in model.__mro__ if issubclass(base, BaseModel) and base not in (BaseModel,)]
        for field in model.model_fields.values():
            todo += list(_models_in(field.annotation))
    return seen


def test_every_protocol_model_forbids_unknown_fields_or_says_why() -> None:
    models = reachable(*REQUEST_MODELS)
    assert {protocol.ChatMessage, protocol.TextContentPart, protocol.StreamOptions, protocol.ResponseFormat,
            protocol.JsonSchemaSpec} <= models  # the walk reaches the nested objects
    module_models = {value for value in vars(protocol).values()
                     if isinstance(value, type) and issubclass(value, BaseModel) and value.__module__ == protocol.__name__}
    for model in models | module_models:
        if model in protocol.EXTRA_ALLOWED:
            assert protocol.EXTRA_ALLOWED[model].strip(), f"{model.__name__}: an exception needs its reason"
        else:
            assert model.model_config.get("extra") == "forbid", f"{model.__name__} drops unknown fields"
    # The exceptions are the request bodies only, whose extras check_fields refuses by name.
    assert set(protocol.EXTRA_ALLOWED) == {protocol.SamplingFields, *REQUEST_MODELS}


@pytest.mark.parametrize(("path", "body", "param"), [
    ("/v1/chat/completions", {"stream_options": {"include_usage": True, "frobnicate": 1}}, "stream_options.frobnicate"),
    ("/v1/completions", {"stream_options": {"continuous_usage": True}}, "stream_options.continuous_usage"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi", "reasoning_content": "x"}]},
     "messages.0.reasoning_content"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": [{"type": "text", "text": "a", "x": 1}]}]},
     "messages.0.content.0.x"),
    ("/v1/chat/completions", {"response_format": {"type": "json_object", "strict": True}}, "response_format.strict"),
    ("/v1/chat/completions", {"response_format": {"type": "json_schema", "json_schema": {"schema": {}, "extra": 1}}},
     "response_format.json_schema.extra"),
])
def test_unknown_nested_fields_are_refused_by_name(client: TestClient, engine: StubEngine, path: str,  # noqa: F811
                                                   body: dict, param: str) -> None:
    base = {"model": MODEL, "messages": MSG} if path.endswith("chat/completions") else {"model": MODEL, "prompt": "hi"}
    response = post(client, {**base, **body}, path)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error == {"message": f"Unrecognized request argument supplied: {param}", "type": "invalid_request_error",
                     "param": param, "code": "unrecognized_argument"}
    assert engine.generate_calls == 0


ASSISTANT_CALL = {"role": "assistant", "content": None,
                  "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}


@pytest.mark.parametrize(("body", "param"), [
    ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tool_choice": {"type": "function", "function": {"name": "f"}}}, "tool_choice"),
    ({"functions": [{"name": "f"}]}, "functions"),
    ({"function_call": {"name": "f"}}, "function_call"),
    ({"messages": [*MSG, ASSISTANT_CALL]}, "messages[1].tool_calls"),
    ({"messages": [*MSG, {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{}"}}]},
     "messages[1].function_call"),
    ({"messages": [*MSG, {"role": "assistant", "content": "x"}, {"role": "tool", "content": "42", "tool_call_id": "c1"}]},
     "messages[2].role"),
    ({"messages": [*MSG, {"role": "function", "name": "f", "content": "42"}]}, "messages[1].role"),
    ({"messages": [{"role": "user", "content": "hi", "tool_call_id": "c1"}]}, "messages[0].tool_call_id"),
    ({"messages": [{"role": "user", "content": "hi", "name": "alice"}]}, "messages[0].name"),
    ({"messages": [*MSG, {"role": "assistant", "content": None, "refusal": "I can't."}]}, "messages[1].refusal"),
])
def test_tools_functions_and_message_names_are_unsupported(client: TestClient, engine: StubEngine,  # noqa: F811
                                                           body: dict, param: str) -> None:
    response = post(client, {"model": MODEL, "messages": MSG, **body})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "unsupported_parameter"
    assert error["param"] == param and param in error["message"]
    assert engine.generate_calls == 0
    rejected = client.app.state.services.metrics.registry.get_sample_value(
        "loragate_rejected_requests_total", {"reason": "unsupported_parameter"})
    assert rejected == 1


def test_a_refused_role_is_named(client: TestClient) -> None:  # noqa: F811
    body = {"model": MODEL, "messages": [*MSG, {"role": "tool", "content": "42"}]}
    assert "role 'tool'" in post(client, body).json()["error"]["message"]


def test_empty_tool_fields_and_names_are_harmless(client: TestClient, engine: StubEngine) -> None:  # noqa: F811
    # Clients echo assistant messages back with these empty: refusing them would break them. (The
    # stub engine then raises: a 500 shows the request got past validation.)
    messages = [*MSG, {"role": "assistant", "content": "x", "tool_calls": [], "function_call": None, "refusal": None,
                       "audio": None, "name": None}, {"role": "user", "content": "y", "name": ""}]
    response = post(TestClient(client.app, raise_server_exceptions=False), {"model": MODEL, "messages": messages})
    assert response.status_code == 500 and engine.generate_calls == 1


def test_continuous_usage_without_include_usage_is_refused(client: TestClient) -> None:  # noqa: F811
    body = {"model": MODEL, "messages": MSG, "stream": True, "stream_options": {"continuous_usage_stats": True}}
    response = post(client, body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "stream_options.continuous_usage_stats"


# ------------------------------------------------------------------ continuous usage, streamed
class CountingEngine(StubEngine):
    """Streams three steps of 1, 2 and 1 tokens for the one choice."""

    async def generate(self, prompt_ids, options, adapter=None, request_id=None,  # noqa: ANN001
                       priority: int = 0, cache_salt: str | None = None) -> AsyncIterator[GenerationUpdate]:
        self.generate_calls += 1
        steps = [("a", 1, None), (" b c", 2, None), (" d", 1, "stop")]
        for text, tokens, finish in steps:
            yield GenerationUpdate(deltas=[GenerationDelta(index=0, text=text, token_count=tokens,
                                                           finish_reason=finish)], prompt_tokens=len(prompt_ids))


@pytest.fixture()
def streaming(tmp_path: Path) -> Iterator[TestClient]:
    with serving(CountingEngine(), tmp_path) as http:
        yield http


def events(response: httpx.Response) -> list[dict]:
    lines = [line[len("data: "):] for line in response.text.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


@pytest.mark.parametrize(("path", "prompt"), [
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "one two"}]}),  # 2 words + 3 = 5 tokens
    ("/v1/completions", {"prompt": "one two three four five"}),  # 5 tokens
])
def test_continuous_usage_stats_puts_the_running_usage_on_every_chunk(streaming: TestClient, path: str,
                                                                      prompt: dict) -> None:
    body = {"model": MODEL, **prompt, "stream": True,
            "stream_options": {"include_usage": True, "continuous_usage_stats": True}}
    chunks = events(post(streaming, body, path))
    assert len(chunks) == 4  # three steps, then the usage chunk
    assert [c["usage"] for c in chunks] == [
        {"prompt_tokens": 5, "completion_tokens": n, "total_tokens": 5 + n} for n in (1, 3, 4, 4)]
    assert chunks[-1]["choices"] == []


def test_without_continuous_usage_only_the_last_chunk_has_usage(streaming: TestClient) -> None:
    body = {"model": MODEL, "prompt": "one two three four five", "stream": True,
            "stream_options": {"include_usage": True, "continuous_usage_stats": False}}
    chunks = events(post(streaming, body, "/v1/completions"))
    assert [c["usage"] for c in chunks[:-1]] == [None, None, None]
    assert chunks[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}


def test_every_triage_request_model_forbids_unknown_fields() -> None:
    from service.api.tasks import BatchTriageRequest, TriageRequest

    models = reachable(TriageRequest, BatchTriageRequest)
    assert len(models) >= 5  # the requests, the ticket, the options, the thresholds
    for model in models:
        assert model.model_config.get("extra") == "forbid", f"{model.__name__} drops unknown fields"


@pytest.mark.parametrize(("path", "body", "param"), [
    ("/v1/tickets/triage", {"subject": "s", "body": "b", "priorty": "high"}, "priorty"),
    ("/v1/tickets/triage/batch", {"tickets": [{"subject": "s", "body": "b", "tier": "pro"}]}, "tickets.0.tier"),
])
def test_a_misspelt_triage_field_is_a_400_naming_it(client: TestClient, path: str, body: dict, param: str) -> None:  # noqa: F811
    response = client.post(path, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
