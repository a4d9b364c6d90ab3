"""The ticket triage endpoint on hand-written tickets, base model and an adapter.

Every 5th of the 60 tickets for the base model and every 10th for the adapter: one batch each,
all categories, short and long tickets (the full set is `loragate eval`'s job)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import httpx
import pytest

from service.tasks.triage import TicketTriage
from service.testing import TICKETS_FILE
from service.testing.adapters import make_peft_adapter
from tests.integration.test_gateway import assert_openai_error

TICKETS = [json.loads(line) for line in TICKETS_FILE.read_text().splitlines() if line.strip()]
TICKET_FIELDS = ("subject", "body", "customer_tier", "channel")


def _ticket(raw: dict) -> dict:
    return {key: raw[key] for key in TICKET_FIELDS if raw.get(key) is not None}


SAMPLE_EVERY = {"base": 5, "adapter": 10}
ADAPTER_POLICY = {"urgent_threshold": 0.42, "review_threshold": 0.6, "temperature": {"category": 1.5}}


def _triage_batch(client: httpx.Client, model: str, tickets: list[dict]) -> list[dict]:
    batch = [_ticket(t) for t in tickets]
    response = client.post("/v1/tickets/triage/batch", json={"tickets": batch, "model": model}, timeout=1800)
    assert response.status_code == 200, response.text
    return response.json()["data"]


@pytest.fixture(scope="module")
def triage_adapter(client_module: httpx.Client, adapter_source_dir: Path, model_dir: Path) -> str:
    folder = make_peft_adapter(model_dir, adapter_source_dir / "triage-style", seed=11, weight_scale=0.5)
    (folder / "triage_policy.json").write_text(json.dumps(ADAPTER_POLICY))  # its own calibration
    response = client_module.post("/admin/adapters", json={"name": "triage-style", "path": str(folder)})
    assert response.status_code == 201, response.text
    return "triage-style"


@pytest.fixture(scope="module")
def client_module(base_url: str):
    with httpx.Client(base_url=base_url, timeout=600) as http:
        yield http


@pytest.mark.parametrize("which", ["base", "adapter"])
def test_tickets_schema_valid(client_module: httpx.Client, model: str, triage_adapter: str, which: str) -> None:
    assert len(TICKETS) >= 50
    served = model if which == "base" else triage_adapter
    tickets = TICKETS[::SAMPLE_EVERY[which]]
    items = _triage_batch(client_module, served, tickets)
    assert [item["index"] for item in items] == list(range(len(tickets)))
    failures = [(i, item["error"]) for i, item in enumerate(items) if item["error"]]
    assert not failures, failures
    for item in items:
        TicketTriage.model_validate(item["triage"])
        assert item["meta"]["model"] == served
        assert item["meta"]["completion_tokens"] > 0
    counts = Counter(item["triage"]["category"] for item in items)
    hits = sum(item["triage"]["category"] == t["expected_category"] for item, t in zip(items, tickets))
    print(f"\n{served}: 100% schema-valid on {len(items)} tickets; category accuracy {hits}/{len(items)}; {dict(counts)}")


def test_single_ticket_meta_and_headers(client_module: httpx.Client, model: str) -> None:
    response = client_module.post("/v1/tickets/triage", json=_ticket(TICKETS[0]))
    assert response.status_code == 200, response.text
    body = response.json()
    TicketTriage.model_validate(body["triage"])
    meta = body["meta"]
    assert meta["model"] == model and meta["base_model"] == model and meta["adapter_version"] is None
    assert meta["latency_ms"] > 0 and meta["prompt_tokens"] > 50 and meta["attempts"] in (1, 2)


def test_schema_is_published(client_module: httpx.Client) -> None:
    schema = client_module.get("/v1/tickets/triage/schema").json()
    assert schema == TicketTriage.model_json_schema()
    openapi = client_module.get("/openapi.json").json()
    for name in ("TriageRequest", "TriageResponse", "TicketTriage", "ChatCompletionRequest", "ErrorResponse"):
        assert name in openapi["components"]["schemas"], name


@pytest.mark.parametrize(("body", "status", "param"), [
    ({"subject": "x"}, 400, "body"),
    ({"subject": "x", "body": ""}, 400, "body"),
    ({"subject": "x", "body": "y", "model": "no-such"}, 404, "model"),
    ({"subject": "x", "body": "y" * 20001}, 400, "body"),
])
def test_bad_triage_requests(client_module: httpx.Client, body: dict, status: int, param: str) -> None:
    assert_openai_error(client_module.post("/v1/tickets/triage", json=body), status, param=param)


def test_batch_limits_and_per_item_errors(client_module: httpx.Client, model: str) -> None:
    too_many = {"tickets": [{"subject": "a", "body": "b"}] * 33}
    assert_openai_error(client_module.post("/v1/tickets/triage/batch", json=too_many), 400, param="tickets")
    assert_openai_error(client_module.post("/v1/tickets/triage/batch", json={"tickets": []}), 400)
    unknown = client_module.post("/v1/tickets/triage/batch", json={"tickets": [{"subject": "a", "body": "b"}], "model": "nope"})
    assert unknown.status_code == 200
    assert unknown.json()["data"][0]["error"]["code"] == "model_not_found"


# ------------------------------------------------------- label probabilities and the policy
def _follows_the_policy(triage: dict, meta: dict) -> None:
    probabilities, policy = meta["probabilities"], meta["policy"]
    for field, labels in (("category", TicketTriage.model_fields["category"].annotation.__args__),
                          ("priority", TicketTriage.model_fields["priority"].annotation.__args__)):
        assert set(probabilities[field]) == set(labels)  # exactly the schema's labels
        assert sum(probabilities[field].values()) == pytest.approx(1.0, abs=1e-6)
        assert meta["confidence"][field] == pytest.approx(probabilities[field][triage[field]])
    assert triage["category"] == max(probabilities["category"], key=probabilities["category"].get)
    urgent = probabilities["priority"]["urgent"] >= policy["urgent_threshold"]
    assert (triage["priority"] == "urgent") if urgent else \
        triage["priority"] == max(probabilities["priority"], key=probabilities["priority"].get)
    low = meta["confidence"]["category"] < policy["review_threshold"]
    assert ("low_category_confidence" in meta["review_reasons"]) == low
    assert meta["needs_review"] == bool(meta["review_reasons"])


def test_every_triage_carries_label_probabilities_and_follows_the_policy(client_module: httpx.Client, model: str,
                                                                          triage_adapter: str) -> None:
    # The test adapter has random weights (long, retried replies): one ticket is enough there.
    for served, tickets in ((model, TICKETS[1:4]), (triage_adapter, TICKETS[1:2])):
        items = _triage_batch(client_module, served, tickets)
        for item in items:
            _follows_the_policy(item["triage"], item["meta"])
            policy = item["meta"]["policy"]
            if served == triage_adapter:  # the adapter's triage_policy.json, over the server's
                assert (policy["urgent_threshold"], policy["review_threshold"]) == (0.42, 0.6)
                assert policy["temperature"] == {"category": 1.5, "priority": 1.0}
            else:
                assert (policy["urgent_threshold"], policy["review_threshold"]) == (0.31, 0.79)


def test_a_request_policy_changes_the_decision(client_module: httpx.Client) -> None:
    ticket = _ticket(TICKETS[2])
    always = client_module.post("/v1/tickets/triage", json={**ticket, "policy": {"urgent_threshold": 0.0,
                                                                                   "review_threshold": 1.0}})
    never = client_module.post("/v1/tickets/triage", json={**ticket, "policy": {"urgent_threshold": 1.0,
                                                                                  "review_threshold": 0.0}})
    assert always.status_code == never.status_code == 200, (always.text, never.text)
    first, second = always.json(), never.json()
    assert first["triage"]["priority"] == "urgent" and first["meta"]["needs_review"] is True
    assert "low_category_confidence" in first["meta"]["review_reasons"] or first["meta"]["confidence"]["category"] == 1.0
    assert first["meta"]["policy"]["urgent_threshold"] == 0.0
    _follows_the_policy(second["triage"], second["meta"])
    off = client_module.post("/v1/tickets/triage", json={**ticket, "probabilities": False}).json()["meta"]
    assert off["probabilities"] is None and off["needs_review"] is None


@pytest.mark.parametrize(("policy", "param"), [
    ({"urgent_threshold": 1.5}, "policy.urgent_threshold"),
    ({"review_threshold": -0.2}, "policy.review_threshold"),
    ({"urgent": 0.3}, "policy.urgent"),
])
def test_bad_policies_are_a_400_naming_the_field(client_module: httpx.Client, policy: dict, param: str) -> None:
    body = {**_ticket(TICKETS[0]), "policy": policy}
    assert_openai_error(client_module.post("/v1/tickets/triage", json=body), 400, param=param)
    batch = {"tickets": [_ticket(TICKETS[0])], "policy": policy}
    assert_openai_error(client_module.post("/v1/tickets/triage/batch", json=batch), 400, param=param)
