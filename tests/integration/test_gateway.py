"""The gateway against the real service process: real vLLM engine, real SmolLM2 model."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from tests.integration.metrics_scrape import scrape_value

HELLO = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]


def chat(client: httpx.Client, model: str, **overrides) -> httpx.Response:
    body = {"model": model, "messages": HELLO, "max_tokens": 24, "temperature": 0} | overrides
    return client.post("/v1/chat/completions", json=body)


def read_sse(response: httpx.Response) -> list[dict]:
    events, done = [], False
    for line in response.iter_lines():
        if not line:
            continue
        assert line.startswith("data: "), line
        payload = line.removeprefix("data: ")
        if payload == "[DONE]":
            done = True
            continue
        assert not done, "data after [DONE]"
        events.append(json.loads(payload))
    assert done, "stream did not end with data: [DONE]"
    return events


def assert_openai_error(response: httpx.Response, status: int, code: str | None = None, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code
    if param is not None:
        assert error["param"] == param
    return error


# ------------------------------------------------------------------ happy path
def test_chat_completion(client: httpx.Client, model: str) -> None:
    response = chat(client, model)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion" and body["model"] == model
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert "paris" in choice["message"]["content"].lower()
    assert choice["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["prompt_tokens"] > 10 and 0 < usage["completion_tokens"] <= 24
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert response.headers["x-loragate-model"] == model
    assert float(response.headers["x-loragate-duration-ms"]) > 0


def test_completion_endpoint(client: httpx.Client, model: str) -> None:
    response = client.post("/v1/completions", json={
        "model": model, "prompt": "The capital of France is", "max_tokens": 8, "temperature": 0,
    })
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"].strip()
    assert body["usage"]["completion_tokens"] <= 8


def test_max_tokens_length_finish(client: httpx.Client, model: str) -> None:
    body = chat(client, model, max_tokens=3, messages=[{"role": "user", "content": "Write a long poem about the sea."}]).json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 3


def test_max_completion_tokens_alias(client: httpx.Client, model: str) -> None:
    body = chat(client, model, max_tokens=None, max_completion_tokens=2).json()
    assert body["usage"]["completion_tokens"] == 2


def test_stop_sequence(client: httpx.Client, model: str) -> None:
    full = chat(client, model).json()["choices"][0]["message"]["content"]
    word = full.split()[2]
    stopped = chat(client, model, stop=[word]).json()["choices"][0]
    assert word not in stopped["message"]["content"]
    assert stopped["finish_reason"] == "stop"


def test_n_choices_and_seed(client: httpx.Client, model: str) -> None:
    body = chat(client, model, n=3, temperature=1.0, seed=7).json()
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    again = chat(client, model, n=3, temperature=1.0, seed=7).json()
    assert [c["message"]["content"] for c in body["choices"]] == [c["message"]["content"] for c in again["choices"]]
    assert len({c["message"]["content"] for c in body["choices"]}) > 1, "sampling gave identical choices"


def test_streaming_matches_non_streaming(client: httpx.Client, model: str) -> None:
    plain = chat(client, model).json()
    with client.stream("POST", "/v1/chat/completions", json={
        "model": model, "messages": HELLO, "max_tokens": 24, "temperature": 0, "stream": True,
        "stream_options": {"include_usage": True},
    }) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = read_sse(response)
    assert all(e["object"] == "chat.completion.chunk" for e in events)
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["delta"].get("content") or "" for e in events for c in e["choices"])
    assert text == plain["choices"][0]["message"]["content"]
    finishes = [c["finish_reason"] for e in events for c in e["choices"] if c["finish_reason"]]
    assert finishes == [plain["choices"][0]["finish_reason"]]
    # The same counts; only the prompt tokens read from the prefix cache differ (the stream repeats a prompt).
    counts = ("prompt_tokens", "completion_tokens", "total_tokens")
    assert events[-1]["choices"] == [] and {k: events[-1]["usage"][k] for k in counts} == {
        k: plain["usage"][k] for k in counts}


def test_streaming_completion(client: httpx.Client, model: str) -> None:
    body = {"model": model, "prompt": "Once upon a time", "max_tokens": 12, "temperature": 0}
    plain = client.post("/v1/completions", json=body).json()
    with client.stream("POST", "/v1/completions", json=body | {"stream": True}) as response:
        events = read_sse(response)
    assert "usage" not in events[-1] or events[-1]["usage"] is None
    assert "".join(c["text"] for e in events for c in e["choices"]) == plain["choices"][0]["text"]


def test_models_lists_base(client: httpx.Client, model: str) -> None:
    body = client.get("/v1/models").json()
    assert body["object"] == "list"
    assert model in [m["id"] for m in body["data"]]


def test_health(client: httpx.Client) -> None:
    assert client.get("/health/live").status_code == 200
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["engine"] == "ready"


# --------------------------------------------------------------- openai client
@pytest.fixture()
def openai_client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=120)


def test_openai_client_chat_and_stream(openai_client: openai.OpenAI, model: str) -> None:
    completion = openai_client.chat.completions.create(model=model, messages=HELLO, max_tokens=24, temperature=0)
    text = completion.choices[0].message.content
    assert "paris" in text.lower()
    stream = openai_client.chat.completions.create(
        model=model, messages=HELLO, max_tokens=24, temperature=0, stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert chunks[-1].usage.completion_tokens == completion.usage.completion_tokens


def test_openai_client_completions_and_models(openai_client: openai.OpenAI, model: str) -> None:
    completion = openai_client.completions.create(model=model, prompt="1, 2, 3,", max_tokens=5, temperature=0)
    assert completion.choices[0].text
    assert model in [m.id for m in openai_client.models.list()]


def test_openai_client_errors(openai_client: openai.OpenAI, model: str) -> None:
    with pytest.raises(openai.NotFoundError) as not_found:
        openai_client.chat.completions.create(model="no-such-model", messages=HELLO)
    assert not_found.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        openai_client.chat.completions.create(model=model, messages=HELLO, max_tokens=10**6)


# ------------------------------------------------------------------ bad input
BAD_CHAT_BODIES = [
    pytest.param(b"{not json", 400, None, id="malformed-json"),
    pytest.param(b"[1, 2]", 400, None, id="non-object-body"),
    pytest.param(b'"text"', 400, None, id="string-body"),
    pytest.param({"messages": HELLO}, 400, "model", id="missing-model"),
    pytest.param({}, 400, None, id="empty-object"),
    pytest.param({"model": "{model}"}, 400, "messages", id="missing-messages"),
    pytest.param({"model": "{model}", "messages": []}, 400, "messages", id="empty-messages"),
    pytest.param({"model": "{model}", "messages": "hi"}, 400, "messages", id="messages-not-list"),
    pytest.param({"model": "{model}", "messages": [{"role": "wizard", "content": "x"}]}, 400, "messages.0.role", id="unknown-role"),
    pytest.param({"model": "{model}", "messages": [{"content": "x"}]}, 400, "messages.0.role", id="missing-role"),
    pytest.param({"model": "{model}", "messages": HELLO, "max_tokens": 0}, 400, "max_tokens", id="max-tokens-zero"),
    pytest.param({"model": "{model}", "messages": HELLO, "max_tokens": -5}, 400, "max_tokens", id="max-tokens-negative"),
    pytest.param({"model": "{model}", "messages": HELLO, "max_tokens": 100000}, 400, "max_tokens", id="max-tokens-above-cap"),
    pytest.param({"model": "{model}", "messages": HELLO, "max_tokens": "ten"}, 400, "max_tokens", id="max-tokens-not-int"),
    pytest.param({"model": "{model}", "messages": HELLO, "temperature": 2.5}, 400, "temperature", id="temperature-high"),
    pytest.param({"model": "{model}", "messages": HELLO, "temperature": -0.1}, 400, "temperature", id="temperature-negative"),
    pytest.param({"model": "{model}", "messages": HELLO, "top_p": 0}, 400, "top_p", id="top-p-zero"),
    pytest.param({"model": "{model}", "messages": HELLO, "top_p": 1.5}, 400, "top_p", id="top-p-high"),
    pytest.param({"model": "{model}", "messages": HELLO, "n": 100}, 400, "n", id="n-above-cap"),
    pytest.param({"model": "{model}", "messages": HELLO, "n": 0}, 400, "n", id="n-zero"),
    pytest.param({"model": "{model}", "messages": HELLO, "n": 2, "temperature": 0}, 400, None, id="n-greedy"),
    pytest.param({"model": "{model}", "messages": HELLO, "stop": ["a", "b", "c", "d", "e"]}, 400, "stop", id="too-many-stops"),
    pytest.param({"model": "no-such-model", "messages": HELLO}, 404, "model", id="unknown-model"),
]


@pytest.mark.parametrize(("body", "status", "param"), BAD_CHAT_BODIES)
def test_bad_chat_input(client: httpx.Client, model: str, body, status: int, param: str | None) -> None:
    if isinstance(body, dict):
        content = json.dumps(body).replace("{model}", model).encode()
    else:
        content = body
    response = client.post("/v1/chat/completions", content=content, headers={"content-type": "application/json"})
    error = assert_openai_error(response, status, param=param)
    if status == 404:
        assert error["code"] == "model_not_found"
    # The engine keeps serving.
    assert chat(client, model, max_tokens=2).status_code == 200


def test_context_length_exceeded(client: httpx.Client, model: str) -> None:
    long_prompt = "word " * 2100
    error = assert_openai_error(
        chat(client, model, messages=[{"role": "user", "content": long_prompt}], max_tokens=16),
        400, code="context_length_exceeded",
    )
    assert "2048" in error["message"]
    # Fits on its own but not with max_tokens.
    medium = "word " * 1500
    error = assert_openai_error(
        chat(client, model, messages=[{"role": "user", "content": medium}], max_tokens=1000),
        400, code="context_length_exceeded",
    )
    assert "maximum context length is 2048" in error["message"]
    assert chat(client, model, max_tokens=2).status_code == 200


@pytest.mark.parametrize(("body", "param"), [
    ({"prompt": "hi"}, "model"),
    ({"model": "{model}"}, "prompt"),
    ({"model": "{model}", "prompt": ""}, "prompt"),
    ({"model": "{model}", "prompt": "hi", "max_tokens": 0}, "max_tokens"),
])
def test_bad_completion_input(client: httpx.Client, model: str, body: dict, param: str) -> None:
    content = json.dumps(body).replace("{model}", model)
    response = client.post("/v1/completions", content=content, headers={"content-type": "application/json"})
    assert_openai_error(response, 400, param=param)


def test_unknown_route_and_method_use_error_shape(client: httpx.Client) -> None:
    assert_openai_error(client.get("/v1/nothing-here"), 404)
    assert_openai_error(client.get("/v1/chat/completions"), 405)


def test_streaming_request_with_bad_input_is_plain_error(client: httpx.Client, model: str) -> None:
    response = chat(client, model, stream=True, max_tokens=100000)
    assert_openai_error(response, 400, param="max_tokens")


# ------------------------------------------------------------------ disconnect
def test_client_disconnect_aborts_generation(client: httpx.Client, base_url: str, model: str) -> None:
    labels = {"model": model, "endpoint": "chat", "status": "499"}
    aborted_before = scrape_value(client, "loragate_requests_total", labels)
    tokens_before = scrape_value(client, "loragate_completion_tokens_total", {"model": model})
    body = {
        "model": model, "max_tokens": 1000, "temperature": 0, "stream": True,
        "messages": [{"role": "user", "content": "Count from 1 to 1000, separated by commas."}],
    }
    with httpx.Client(base_url=base_url, timeout=60) as own:
        with own.stream("POST", "/v1/chat/completions", json=body) as response:
            lines = response.iter_lines()
            received = [next(lines) for _ in range(6)]
    assert any(line.startswith("data: ") for line in received)

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if scrape_value(client, "loragate_requests_total", labels) == aborted_before + 1:
            break
        time.sleep(0.2)
    assert scrape_value(client, "loragate_requests_total", labels) == aborted_before + 1
    generated = scrape_value(client, "loragate_completion_tokens_total", {"model": model}) - tokens_before
    assert generated < 200, f"engine kept generating after disconnect: {generated} tokens"
    assert scrape_value(client, "loragate_requests_in_flight", {"model": model}) == 0
    # The engine itself dropped the request (it would otherwise run ~1000 tokens for many seconds).
    assert scrape_value(client, "loragate_engine_requests_unfinished") == 0
