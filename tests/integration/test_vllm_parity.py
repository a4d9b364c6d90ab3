"""Field parity with vLLM's own OpenAI server: the same request matrix sent to loragate and to
`python -m vllm.entrypoints.openai.api_server` (same model folder, same environment, no plugins),
comparing status codes and response shapes field by field.

Every difference is either absent or listed in KNOWN_DIFFERENCES / the *_ONLY_FIELDS sets below
with its reason; the README's "Request fields" table states the same.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.testing.process import VllmServer

MSG = [{"role": "user", "content": "Name a colour."}]
INT64_OVERFLOW = 2**64


@dataclass(frozen=True)
class Case:
    name: str
    body: dict[str, Any]
    path: str = "/v1/chat/completions"
    stream: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def chat(name: str, **fields: Any) -> Case:
    return Case(name, {"messages": MSG, "max_tokens": 6, "temperature": 0} | fields)


def completion(name: str, **fields: Any) -> Case:
    return Case(name, {"prompt": "The sky is", "max_tokens": 6, "temperature": 0} | fields, "/v1/completions")


CASES = [
    chat("chat"),
    chat("top_k", temperature=1.0, top_k=1),
    chat("min_p", temperature=1.0, min_p=0.9, seed=3),
    chat("stop_token_ids", stop_token_ids=[2]),
    chat("logprobs", logprobs=True, top_logprobs=3),
    chat("logit_bias", logit_bias={"504": -100}),
    chat("n_sampled", n=2, temperature=0.8, seed=1),
    chat("n_structured", n=2, temperature=0.8, seed=1, max_tokens=24, response_format={"type": "json_object"}),
    chat("json_schema", max_tokens=24, response_format={"type": "json_schema", "json_schema": {
        "name": "c", "schema": {"type": "object", "properties": {"c": {"type": "string", "maxLength": 8}},
                                "required": ["c"]}}}),
    chat("structured_outputs_choice", structured_outputs={"choice": ["red", "blue"]}),
    chat("min_tokens_ignore_eos", min_tokens=6, ignore_eos=True),
    chat("repetition_penalty", repetition_penalty=1.2, include_stop_str_in_output=True, stop=["."]),
    chat("seed_overflow", seed=INT64_OVERFLOW),
    chat("min_tokens_above_max", min_tokens=9),
    chat("logit_bias_out_of_vocab", logit_bias={"99999999": 5}),
    chat("top_logprobs_too_many", logprobs=True, top_logprobs=50),
    chat("unknown_model", model="no-such-model"),
    chat("max_tokens_above_context", max_tokens=100_000),
    chat("unrecognized_field", temprature=0.5),
    chat("stream", stream=True, stream_options={"include_usage": True}),
    chat("stream_logprobs", stream=True, logprobs=True, top_logprobs=2),
    completion("completion"),
    completion("completion_logprobs", logprobs=2),
    completion("completion_echo", echo=True),
    completion("completion_stop_token_ids", stop_token_ids=[2], top_k=1, temperature=1.0),
    completion("completion_stream", stream=True),
]

# name -> (loragate status, vLLM status, why). Everything else must match exactly.
KNOWN_DIFFERENCES = {
    "unrecognized_field": (400, 200, "OpenAI refuses unknown arguments; vLLM ignores them (a misspelt "
                                     "field would silently do nothing)"),
}
# Response fields only one side sends (path pattern -> reason). Shapes of shared fields must match.
VLLM_ONLY_FIELDS = {
    "choices[].stop_reason", "choices[].token_ids", "choices[].message.tool_calls", "choices[].message.reasoning",
    "choices[].message.annotations", "choices[].message.audio", "choices[].message.function_call",
    "choices[].delta.reasoning", "choices[].delta.tool_calls", "choices[].prompt_logprobs", "choices[].prompt_token_ids",
    "prompt_logprobs", "prompt_token_ids", "kv_transfer_params", "ec_transfer_params", "service_tier",
    "system_fingerprint", "usage.prompt_tokens_details", "usage.completion_tokens_details", "metrics",
    "prompt_text", "choices[].logprobs.content[].top_logprobs[].bytes_", "system_fingerprint",
}
LORAGATE_ONLY_FIELDS = {
    "structured_output",  # the validation verdict of a structured stream (null elsewhere)
    "usage.prompt_tokens_details",  # cached tokens: vLLM sends them only with --enable-prompt-tokens-details
    "choices[].message.refusal",
}


def flat_shape(value: Any, prefix: str = "") -> dict[str, str]:
    """Path -> JSON type, lists collapsed to their elements (`choices[]`)."""
    if isinstance(value, dict):
        out: dict[str, str] = {prefix: "object"} if prefix else {}
        for key, item in value.items():
            out |= flat_shape(item, f"{prefix}.{key}" if prefix else key)
        return out
    if isinstance(value, list):
        out = {prefix: "array"}
        for item in value:
            out |= flat_shape(item, f"{prefix}[]")
        return out
    kind = "null" if value is None else "boolean" if isinstance(value, bool) else \
        "number" if isinstance(value, int | float) else "string"
    return {prefix: kind}


def _known(path: str, allowed: set[str]) -> bool:
    return any(path == p or path.startswith(p + ".") or path.startswith(p + "[]") for p in allowed)


def shape_differences(ours: dict[str, str], theirs: dict[str, str]) -> list[str]:
    problems = []
    for path in sorted(set(ours) | set(theirs)):
        mine, peer = ours.get(path), theirs.get(path)
        if "null" in (mine, peer) and None in (mine, peer):
            continue  # a null field and an absent one tell a client the same
        if mine is None and not _known(path, VLLM_ONLY_FIELDS) and not path.startswith("choices[].top_logprobs[]."):
            problems.append(f"{path}: only vLLM sends it ({peer})")
        elif peer is None and not _known(path, LORAGATE_ONLY_FIELDS) and not path.startswith("choices[].top_logprobs[]."):
            problems.append(f"{path}: only loragate sends it ({mine})")
        elif mine and peer and "null" not in (mine, peer) and mine != peer:
            problems.append(f"{path}: loragate {mine}, vLLM {peer}")
    return problems


def send(http: httpx.Client, case: Case, model: str) -> tuple[int, dict[str, str], Any]:
    body = {"model": model} | case.body
    response = http.post(case.path, json=body)
    if body.get("stream") and response.status_code == 200:
        events = [json.loads(line[6:]) for line in response.text.splitlines()
                  if line.startswith("data: ") and line != "data: [DONE]"]
        shape: dict[str, str] = {}
        for event in events:
            shape |= {k: v for k, v in flat_shape(event).items() if v != "null" or k not in shape}
        return 200, shape, events
    payload = response.json()
    return response.status_code, flat_shape(payload), payload


@pytest.fixture(scope="module")
def vllm_url(logs_dir: Path, model_dir: Path, model: str) -> Iterator[str]:
    peer = VllmServer(logs_dir / "vllm-peer.log", model_dir, model).start()
    try:
        peer.wait_ready()
        yield peer.base_url
    finally:
        peer.stop()


@pytest.fixture(scope="module")
def replies(base_url: str, vllm_url: str, model: str) -> dict[str, tuple[tuple, tuple]]:
    out = {}
    with httpx.Client(base_url=base_url, timeout=180) as ours, httpx.Client(base_url=vllm_url, timeout=180) as theirs:
        for case in CASES:
            model_name = case.body.get("model", model)
            out[case.name] = (send(ours, case, model_name), send(theirs, case, model_name))
    return out


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_same_status_and_shape_as_vllm(replies: dict, case: Case) -> None:
    (status, shape, payload), (peer_status, peer_shape, peer_payload) = replies[case.name]
    expected = KNOWN_DIFFERENCES.get(case.name, (peer_status, peer_status, ""))[:2]
    assert (status, peer_status) == expected, f"{case.name}: loragate {status} {payload}, vLLM {peer_status} {peer_payload}"
    if status == peer_status == 200:
        assert not shape_differences(shape, peer_shape), shape_differences(shape, peer_shape)
    elif status >= 400:
        assert set(payload["error"]) == {"message", "type", "param", "code"}
        if peer_status >= 400:
            assert "error" in peer_payload


def text_of(payload: dict) -> str:
    choice = payload["choices"][0]
    return choice["message"]["content"] if "message" in choice else choice["text"]


def test_sampling_extras_are_honoured(replies: dict) -> None:
    greedy = text_of(replies["chat"][0][2])
    # top_k=1 at temperature 1 is greedy decoding (it was silently ignored before).
    assert text_of(replies["top_k"][0][2]) == greedy
    assert replies["min_tokens_ignore_eos"][0][2]["usage"]["completion_tokens"] == 6
    logprobs = replies["logprobs"][0][2]["choices"][0]["logprobs"]["content"]
    assert len(logprobs) == replies["logprobs"][0][2]["usage"]["completion_tokens"]
    assert all(len(t["top_logprobs"]) == 3 and t["logprob"] <= 0 for t in logprobs)
    assert "".join(t["token"] for t in logprobs) == text_of(replies["logprobs"][0][2])
    n_structured = replies["n_structured"][0][2]["choices"]
    assert len(n_structured) == 2 and all(isinstance(json.loads(c["message"]["content"]), dict) for c in n_structured)
    assert text_of(replies["structured_outputs_choice"][0][2]) in ("red", "blue")
    echo = text_of(replies["completion_echo"][0][2])
    assert echo.startswith("The sky is")


def test_logit_bias_changes_the_greedy_reply(base_url: str, model: str, model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    body = {"model": model, "messages": MSG, "max_tokens": 3, "temperature": 0, "logprobs": True}
    with httpx.Client(base_url=base_url, timeout=180) as http:
        first = http.post("/v1/chat/completions", json=body).json()["choices"][0]["logprobs"]["content"][0]["token"]
        banned = {str(i): -100 for i in tokenizer.encode(first, add_special_tokens=False)}
        again = http.post("/v1/chat/completions", json=body | {"logit_bias": banned}).json()
    assert again["choices"][0]["logprobs"]["content"][0]["token"] != first
