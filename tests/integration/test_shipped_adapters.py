"""The project's trained adapters, served: ticket-triage beats the base model on held-out
validation tickets, and brand-voice answers in the brand's voice where the base model does not."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support.adapters import tar_gz

ROOT = Path(__file__).resolve().parents[2]
VALIDATION = ROOT / "adapters" / "recipes" / "data" / "triage_validation.jsonl"
SLICE = 50  # the first 50 validation tickets: fixed, never trained on
# Stated margins (percentage points of accuracy over the base model on that slice).
CATEGORY_MARGIN, PRIORITY_MARGIN = 0.30, 0.15


def upload(client: httpx.Client, name: str) -> None:
    response = client.put(f"/admin/adapters/{name}", content=tar_gz(ROOT / "adapters" / name),
                          headers={"content-type": "application/gzip"})
    assert response.status_code == 201, response.text


def accuracy(base_url: str, model: str, tickets: list[dict]) -> tuple[float, float]:
    def one(ticket: dict) -> tuple[bool, bool]:
        body = {k: ticket.get(k) for k in ("subject", "body", "customer_tier", "channel", "metadata")} | {"model": model}
        with httpx.Client(base_url=base_url, timeout=600) as http:
            reply = http.post("/v1/tickets/triage", json=body)
        if reply.status_code != 200:
            return False, False
        triage = reply.json()["triage"]
        return triage["category"] == ticket["category"], triage["priority"] == ticket["priority"]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, tickets))
    return sum(c for c, _ in results) / len(results), sum(p for _, p in results) / len(results)


@pytest.fixture(scope="module")
def shipped(client_module: httpx.Client) -> None:
    for name in ("ticket-triage", "brand-voice"):
        upload(client_module, name)


@pytest.fixture(scope="module")
def client_module(base_url: str):
    with httpx.Client(base_url=base_url, timeout=600) as http:
        yield http


def test_ticket_triage_adapter_beats_base(shipped, base_url: str, model: str) -> None:
    tickets = [json.loads(line) for line in VALIDATION.read_text().splitlines()[:SLICE]]
    base_category, base_priority = accuracy(base_url, model, tickets)
    tuned_category, tuned_priority = accuracy(base_url, "ticket-triage", tickets)
    assert tuned_category >= base_category + CATEGORY_MARGIN, (base_category, tuned_category)
    assert tuned_priority >= base_priority + PRIORITY_MARGIN, (base_priority, tuned_priority)


def test_brand_voice_adapter_signs_as_the_brand(shipped, client_module: httpx.Client, model: str) -> None:
    messages = ["Hello, where is my order 55213? It was due on Friday. Thanks, Maria",
                "Can I return a jacket I bought three weeks ago? It is too small."]

    def reply(target: str, message: str) -> str:
        response = client_module.post("/v1/chat/completions", json={
            "model": target, "messages": [{"role": "user", "content": message}], "max_tokens": 160, "temperature": 0})
        assert response.status_code == 200, response.text
        return response.json()["choices"][0]["message"]["content"]

    tuned = [reply("brand-voice", m) for m in messages]
    base = [reply(model, m) for m in messages]
    signed = sum("Alder & Pine" in text[-200:] for text in tuned)
    assert signed == len(messages), tuned
    assert sum("Alder & Pine" in text for text in base) == 0, base
