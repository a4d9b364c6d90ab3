"""Prefix caching with the real engine (issue 29, item 4): a prompt whose prefix another request
computed reads those blocks from the cache, a different `cache_salt` or adapter shares none, and the
figure reaches `usage.prompt_tokens_details`, the triage meta and `loragate_prompt_cached_tokens_total`.

Every prompt starts with a fresh id, so no earlier test warmed its blocks."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx

from service.testing.adapters import make_peft_adapter
from tests.integration.metrics_scrape import scrape_value
from tests.integration.test_triage import TICKETS, _ticket

# About 300 tokens of shared instructions (the triage prompt's share of its ~335), so whole KV blocks
# are shared whatever the engine's block size.
RULES = " ".join(f"Rule {i}: answer the customer politely, cite the order number and never guess." for i in range(22))


def ask(client: httpx.Client, model: str, prefix: str, question: str, **extra: object) -> dict:
    body = {"model": model, "max_tokens": 4, "temperature": 0, **extra,
            "messages": [{"role": "system", "content": f"{prefix} {RULES}"}, {"role": "user", "content": question}]}
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return response.json()["usage"]


def cached(usage: dict) -> int:
    return usage["prompt_tokens_details"]["cached_tokens"]


def test_a_shared_prefix_is_read_from_the_cache_and_counted(client: httpx.Client, model: str) -> None:
    prefix = uuid.uuid4().hex
    labels = {"model": model, "route": "none"}
    before = scrape_value(client, "loragate_prompt_cached_tokens_total", labels)
    cold = ask(client, model, prefix, "Where is my order?")
    warm = ask(client, model, prefix, "Can I get a refund?")
    assert cached(cold) == 0
    assert 0 < cached(warm) < warm["prompt_tokens"], warm
    after = scrape_value(client, "loragate_prompt_cached_tokens_total", labels)
    assert after - before == cached(warm)


def test_a_different_salt_shares_no_blocks(client: httpx.Client, model: str) -> None:
    prefix = uuid.uuid4().hex
    assert cached(ask(client, model, prefix, "Where is my order?")) == 0
    assert cached(ask(client, model, prefix, "Where is my order?", cache_salt="tenant-a")) == 0  # unsalted blocks
    assert cached(ask(client, model, prefix, "Where is my order?", cache_salt="tenant-b")) == 0  # tenant-a's
    assert cached(ask(client, model, prefix, "Can I get a refund?", cache_salt="tenant-a")) > 0  # its own


def test_an_adapter_has_its_own_cached_blocks(client: httpx.Client, model: str, model_dir: Path,
                                              adapter_source_dir: Path) -> None:
    folder = make_peft_adapter(model_dir, adapter_source_dir / "prefix-cache-lora", seed=29)
    response = client.post("/admin/adapters", json={"name": "prefix-cache-lora", "path": str(folder)})
    assert response.status_code == 201, response.text
    prefix = uuid.uuid4().hex
    assert cached(ask(client, model, prefix, "Where is my order?")) == 0
    assert cached(ask(client, "prefix-cache-lora", prefix, "Where is my order?")) == 0  # not the base's blocks
    assert cached(ask(client, "prefix-cache-lora", prefix, "Can I get a refund?")) > 0


def test_triage_reads_its_shared_instructions_from_the_cache(client: httpx.Client) -> None:
    metas = []
    for raw in TICKETS[:2]:  # the second ticket shares the first's instructions
        response = client.post("/v1/tickets/triage", json=_ticket(raw), timeout=600)
        assert response.status_code == 200, response.text
        metas.append(response.json()["meta"])
    assert metas[1]["cached_prompt_tokens"] > 0
    assert metas[1]["cached_prompt_tokens"] < metas[1]["prompt_tokens"]
    # A salt of its own: none of the instructions' blocks the unsalted tickets computed.
    salted = client.post("/v1/tickets/triage", json=_ticket(TICKETS[2]) | {"cache_salt": uuid.uuid4().hex}, timeout=600)
    assert salted.status_code == 200, salted.text
    assert salted.json()["meta"]["cached_prompt_tokens"] == 0
    bad = client.post("/v1/tickets/triage", json=_ticket(TICKETS[2]) | {"cache_salt": ""}, timeout=60)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "cache_salt", bad.text
