"""Locust users for a running loragate: chat, streaming chat, ticket triage and an A/B route.

    locust -f loadtests/locustfile.py --headless -u 8 -r 2 -t 1m --host http://127.0.0.1:8000

Environment (all optional):
- LORAGATE_MODEL: `model` of the chat users (default: the first /v1/models entry, the base model).
- LORAGATE_ROUTE: a route name; the route user sends chat requests to it (without it that user is off).
- LORAGATE_API_KEY: sent as `Authorization: Bearer ...` (a keyless server needs none).
- LORAGATE_MAX_TOKENS: max_tokens of chat requests (default 48).

Pick users with locust's class arguments, e.g. `... StreamingChatUser TriageUser`. The streaming
user also reports time to first token as its own entry ("chat stream: first token").
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

from locust import HttpUser, between, events, task

# Read by path, not imported: the locustfile needs only locust (service/testing/__init__.py names the same file).
TICKETS_FILE = Path(__file__).resolve().parents[1] / "service" / "testing" / "tickets.jsonl"
TICKET_FIELDS = ("subject", "body", "customer_tier", "channel", "metadata")
QUESTIONS = ["Name three colors.", "What is a LoRA adapter, in one sentence?", "Give me a haiku about queues.",
             "How do I reset my password?", "Summarise: the invoice was paid twice by mistake."]
ROUTE = os.environ.get("LORAGATE_ROUTE", "").strip()
MAX_TOKENS = int(os.environ.get("LORAGATE_MAX_TOKENS", "48"))
_model: str | None = os.environ.get("LORAGATE_MODEL", "").strip() or None


def _headers() -> dict[str, str]:
    key = os.environ.get("LORAGATE_API_KEY", "").strip()
    return {"authorization": f"Bearer {key}"} if key else {}


def _tickets() -> list[dict[str, Any]]:
    """The repository's labelled tickets as triage bodies (labels dropped); one stand-in without them."""
    try:
        rows = [json.loads(line) for line in TICKETS_FILE.read_text().splitlines() if line.strip()]
    except OSError:
        rows = [{"subject": "Charged twice", "body": "I was billed twice for March. Please refund one charge."}]
    return [{key: row[key] for key in TICKET_FIELDS if row.get(key) is not None} for row in rows]


TICKETS = _tickets()


@events.test_start.add_listener
def _resolve_model(environment: Any, **_: Any) -> None:
    """Ask the server for its base model once, unless LORAGATE_MODEL names one."""
    global _model
    if _model is None and environment.host:
        import httpx  # locust's own client is per user; this runs once, before any user

        try:
            response = httpx.get(f"{environment.host.rstrip('/')}/v1/models", headers=_headers(), timeout=30)
            _model = response.json()["data"][0]["id"]
        except (httpx.HTTPError, KeyError, IndexError, ValueError):
            _model = "SmolLM2-135M-Instruct"  # the default served model


def _chat(model: str | None, **extra: Any) -> dict[str, Any]:
    return {"model": model or _model, "messages": [{"role": "user", "content": random.choice(QUESTIONS)}],
            "max_tokens": MAX_TOKENS, "temperature": 0.7, **extra}


class ChatUser(HttpUser):
    wait_time = between(0.5, 2)

    @task
    def chat(self) -> None:
        self.client.post("/v1/chat/completions", json=_chat(None), headers=_headers(), name="chat")


class StreamingChatUser(HttpUser):
    wait_time = between(0.5, 2)

    @task
    def chat_stream(self) -> None:
        body = _chat(None, stream=True, stream_options={"include_usage": True})
        started = time.perf_counter()
        first: float | None = None
        with self.client.post("/v1/chat/completions", json=body, headers=_headers(), stream=True,
                              name="chat stream", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {response.text[:200]}")
                return
            done = False
            for line in response.iter_lines(decode_unicode=True):
                if not line or not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    done = True
                    break
                event = json.loads(line[6:])
                if "error" in event:
                    response.failure(str(event["error"])[:200])
                    return
                if first is None and event.get("choices"):
                    first = time.perf_counter()
            if not done:
                response.failure("the stream ended without [DONE]")
                return
            response.success()
        if first is not None:  # the whole request's time is the entry above; this is the first token
            events.request.fire(request_type="SSE", name="chat stream: first token",
                                response_time=(first - started) * 1000, response_length=0, exception=None,
                                context={})


class TriageUser(HttpUser):
    wait_time = between(1, 3)

    @task
    def triage(self) -> None:
        body = dict(random.choice(TICKETS))
        if os.environ.get("LORAGATE_MODEL", "").strip():
            body["model"] = os.environ["LORAGATE_MODEL"].strip()
        self.client.post("/v1/tickets/triage", json=body, headers=_headers(), name="triage")


class RouteUser(HttpUser):
    """Chat to an A/B route (LORAGATE_ROUTE); locust skips it when no route is named."""

    abstract = not ROUTE
    wait_time = between(0.5, 2)

    @task
    def chat_route(self) -> None:
        self.client.post("/v1/chat/completions", json=_chat(ROUTE), headers=_headers(), name=f"route {ROUTE}")
