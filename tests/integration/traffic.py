"""Requests with known usage figures, and a freshly registered adapter, for the metrics tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import httpx

from service.testing.adapters import make_peft_adapter
from tests.integration.test_gateway import read_sse

MESSAGES = [{"role": "user", "content": "Name three colors."}]


@dataclass
class Sent:
    """What the service reported back for the requests sent to one model."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    multi_token_replies: int = 0  # replies with > 1 token: the ones timed per output token
    usages: list[dict] = field(default_factory=list)

    def add(self, usage: dict) -> None:
        assert usage["completion_tokens"] >= 1, usage  # every reply has a first token (TTFT)
        self.requests += 1
        self.prompt_tokens += usage["prompt_tokens"]
        self.completion_tokens += usage["completion_tokens"]
        self.multi_token_replies += usage["completion_tokens"] > 1
        self.usages.append(usage)


def chat(client: httpx.Client, model: str, sent: Sent, max_tokens: int = 8) -> None:
    response = client.post("/v1/chat/completions", json={
        "model": model, "messages": MESSAGES, "max_tokens": max_tokens, "temperature": 0,
    })
    assert response.status_code == 200, response.text
    assert response.headers["x-loragate-model"] == model
    sent.add(response.json()["usage"])


def completion(client: httpx.Client, model: str, sent: Sent, max_tokens: int = 8) -> None:
    response = client.post("/v1/completions", json={
        "model": model, "prompt": "Three colors are", "max_tokens": max_tokens, "temperature": 0,
    })
    assert response.status_code == 200, response.text
    sent.add(response.json()["usage"])


def stream_chat(client: httpx.Client, model: str, sent: Sent, max_tokens: int = 8) -> None:
    with client.stream("POST", "/v1/chat/completions", json={
        "model": model, "messages": MESSAGES, "max_tokens": max_tokens, "temperature": 0,
        "stream": True, "stream_options": {"include_usage": True},
    }) as response:
        assert response.status_code == 200
        assert response.headers["x-loragate-model"] == model
        events = read_sse(response)
    sent.add(events[-1]["usage"])


def register_adapter(client: httpx.Client, model_dir: Path, source_dir: Path, name: str, seed: int) -> str:
    folder = make_peft_adapter(model_dir, source_dir / name, seed=seed)
    response = client.post("/admin/adapters", json={"name": name, "path": str(folder)})
    assert response.status_code == 201, response.text
    return name
