"""The project's trained adapters, served: ticket-triage answers the triage prompt with the
schema's JSON where the base model answers in prose, and brand-voice answers in the brand's
voice where the base model does not, and ticket-triage picks the right category and priority more
often than the base model on a fixed validation slice (full figures come from `loragate eval`; see README)."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from service.tasks.triage import REPETITION_PENALTY, Ticket, TicketTriage, TriagePrompt
from service.testing.adapters import tar_gz

ROOT = Path(__file__).resolve().parents[2]
VALIDATION = ROOT / "adapters" / "data" / "triage_validation.jsonl"
SLICE = 8  # the first validation tickets: fixed, never trained on
# Stated margin: share of unconstrained replies that are schema-valid triage JSON, adapter over base.
SCHEMA_VALID_MARGIN = 0.5
# The first 50 validation tickets, constrained as /v1/tickets/triage constrains them (the full
# evaluation is `loragate eval`).
ACCURACY_SLICE = 50
# The schema puts `category` then `priority` first, so greedy decoding picks both within the first
# tokens, exactly as in a full reply (same prompt, constraint and repetition penalty): only those
# tokens are generated.
LABEL_TOKENS = 16
# Stated margins, adapter over base, on that slice (see the README's evaluation; the margins leave
# room for near-tie flips in bf16).
CATEGORY_MARGIN = 0.4
PRIORITY_MARGIN = 0.15


@pytest.fixture(scope="module")
def http(base_url: str):
    with httpx.Client(base_url=base_url, timeout=600) as client:
        for name in ("ticket-triage", "brand-voice"):
            response = client.put(f"/admin/adapters/{name}", content=tar_gz(ROOT / "adapters" / name),
                                  headers={"content-type": "application/gzip"})
            assert response.status_code == 201, response.text
        yield client


def schema_valid_rate(base_url: str, model: str, tickets: list[dict]) -> float:
    prompt = TriagePrompt.load()

    def one(record: dict) -> bool:
        ticket = Ticket.model_validate({k: record.get(k) for k in ("subject", "body", "customer_tier", "channel", "metadata")})
        messages = [m.model_dump() for m in prompt.messages(ticket)]
        with httpx.Client(base_url=base_url, timeout=600) as client:
            reply = client.post("/v1/chat/completions", json={
                "model": model, "messages": messages, "max_tokens": 120, "temperature": 0,
                "repetition_penalty": REPETITION_PENALTY})
        assert reply.status_code == 200, reply.text
        try:
            TicketTriage.model_validate(json.loads(reply.json()["choices"][0]["message"]["content"]))
        except (ValueError, ValidationError):
            return False
        return True

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, tickets))
    return sum(results) / len(results)


def test_ticket_triage_adapter_answers_in_the_schema(http: httpx.Client, base_url: str, model: str) -> None:
    tickets = [json.loads(line) for line in VALIDATION.read_text().splitlines()[:SLICE]]
    base = schema_valid_rate(base_url, model, tickets)
    tuned = schema_valid_rate(base_url, "ticket-triage", tickets)
    assert tuned >= base + SCHEMA_VALID_MARGIN, (base, tuned)


def label_accuracy(base_url: str, model: str, records: list[dict]) -> tuple[float, float]:
    """Category and priority accuracy of `model` over `records`."""
    prompt = TriagePrompt.load()
    schema = TicketTriage.model_json_schema()

    def labels(record: dict) -> tuple[str, str] | None:
        ticket = Ticket.model_validate({k: record.get(k) for k in ("subject", "body", "customer_tier", "channel")})
        with httpx.Client(base_url=base_url, timeout=600) as client:
            reply = client.post("/v1/chat/completions", json={
                "model": model, "messages": [m.model_dump() for m in prompt.messages(ticket)],
                "max_tokens": LABEL_TOKENS, "temperature": 0, "repetition_penalty": REPETITION_PENALTY,
                "response_format": {"type": "json_schema",
                                    "json_schema": {"name": "triage", "schema": schema, "strict": True}}})
        assert reply.status_code == 200, reply.text
        found = re.match(r'\{\s*"category"\s*:\s*"(\w+)"\s*,\s*"priority"\s*:\s*"(\w+)"',
                         reply.json()["choices"][0]["message"]["content"])
        return (found.group(1), found.group(2)) if found else None

    with ThreadPoolExecutor(8) as pool:
        picked = list(pool.map(labels, records))
    pairs = list(zip(picked, records, strict=True))
    category = sum(p is not None and p[0] == r["category"] for p, r in pairs) / len(records)
    priority = sum(p is not None and p[1] == r["priority"] for p, r in pairs) / len(records)
    return category, priority


def test_ticket_triage_adapter_beats_base_on_category_and_priority(http: httpx.Client, model: str) -> None:
    records = [json.loads(line) for line in VALIDATION.read_text().splitlines()[:ACCURACY_SLICE]]
    base_url = str(http.base_url)
    base = label_accuracy(base_url, model, records)
    tuned = label_accuracy(base_url, "ticket-triage", records)
    assert tuned[0] >= base[0] + CATEGORY_MARGIN, ("category", base, tuned)
    assert tuned[1] >= base[1] + PRIORITY_MARGIN, ("priority", base, tuned)


def test_brand_voice_adapter_signs_as_the_brand(http: httpx.Client, model: str) -> None:
    messages = ["Hello, where is my order 55213? It was due on Friday. Thanks, Maria",
                "Can I return a jacket I bought three weeks ago? It is too small."]

    def reply(target: str, message: str) -> str:
        response = http.post("/v1/chat/completions", json={
            "model": target, "messages": [{"role": "user", "content": message}], "max_tokens": 160, "temperature": 0})
        assert response.status_code == 200, response.text
        return response.json()["choices"][0]["message"]["content"]

    tuned = [reply("brand-voice", m) for m in messages]
    base = [reply(model, m) for m in messages]
    assert all("Alder & Pine" in text for text in tuned), tuned
    assert not any("Alder & Pine" in text for text in base), base
