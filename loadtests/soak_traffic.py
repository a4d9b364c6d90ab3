"""The soak's requests: chat (base, adapters, a route), streaming chat, text completions, triage,
deliberately bad inputs, client disconnects, and the admin churn (adapter swaps, route weight
changes, a short-lived adapter). Every call returns a `Result` judged by `soak_report.classify`;
nothing raises for a failed request. Uses one `httpx.AsyncClient` (a fake transport in the unit
tests)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from loadtests.soak_report import DISCONNECT, VALID, Expect, Reply, Result, classify, refusal

CHAT, COMPLETIONS, TRIAGE = "/v1/chat/completions", "/v1/completions", "/v1/tickets/triage"
CATEGORIES = {"billing", "technical", "account", "shipping", "returns", "general"}
PRIORITIES = {"low", "medium", "high", "urgent"}
PROMPTS = ("Name three colors.", "Say hello in French.", "What is 2 + 2?", "Give me a fruit.",
           "Write one word about the sea.", "Count to five.")
# The workers' mix: kind -> share of the picks.
MIX = {"chat": 30, "stream": 20, "completion": 10, "triage": 12, "bad": 16, "disconnect": 12}
# How long a request we leave on purpose runs if nobody leaves it: long enough to be cut.
LONG_TOKENS = 96


@dataclass(frozen=True)
class BadCase:
    """A request the service must refuse with exactly `status` (and `code` unless None)."""

    label: str
    method: str
    path: str
    body: bytes | dict[str, Any] | None
    status: int
    code: str | None


def bad_cases(base: str, route: str, adapter: str) -> list[BadCase]:
    """Generation-side and admin-side bad inputs; none of them may change anything."""
    msg = [{"role": "user", "content": "Say hi."}]
    chat = {"model": base, "messages": msg, "max_tokens": 4}
    return [
        BadCase("malformed json", "POST", CHAT, b'{"model": ', 400, "invalid_value"),
        BadCase("non-object body", "POST", CHAT, b"[1, 2]", 400, "invalid_value"),
        BadCase("unknown field", "POST", CHAT, chat | {"temprature": 1}, 400, "unrecognized_argument"),
        BadCase("unknown nested field", "POST", CHAT,
                chat | {"stream": True, "stream_options": {"include_usage": True, "foo": 1}}, 400,
                "unrecognized_argument"),
        BadCase("tools", "POST", CHAT, chat | {"tools": [{"type": "function", "function": {"name": "f"}}]}, 400,
                "unsupported_parameter"),
        BadCase("unknown model", "POST", CHAT, chat | {"model": "no-such-model"}, 404, "model_not_found"),
        BadCase("min_tokens above max_tokens", "POST", CHAT, chat | {"max_tokens": 2, "min_tokens": 3}, 400, None),
        BadCase("max_tokens 0", "POST", COMPLETIONS, {"model": base, "prompt": "Hi", "max_tokens": 0}, 400,
                "invalid_value"),
        BadCase("triage without body", "POST", TRIAGE, {"subject": "Help", "model": base}, 400, "invalid_value"),
        BadCase("unknown path", "GET", "/v1/no-such-endpoint", None, 404, "not_found"),
        BadCase("wrong method", "GET", CHAT, None, 405, "method_not_allowed"),
        # Admin: refused without changing the registry or the routes.
        BadCase("adapter path outside the roots", "POST", "/admin/adapters", {"name": "soak-evil", "path": "/etc"},
                400, "adapter_path_outside_roots"),
        BadCase("remove an adapter a route uses", "DELETE", f"/admin/adapters/{adapter}", None, 409,
                "adapter_in_use"),
        BadCase("route named like an adapter", "PUT", f"/admin/routes/{adapter}",
                {"variants": [{"target": base, "weight": 1}]}, 409, "name_taken"),
        BadCase("negative route weight", "PATCH", f"/admin/routes/{route}",
                {"variants": [{"target": base, "weight": -1}]}, 400, None),
        BadCase("unknown adapter", "GET", "/admin/adapters/no-such-adapter", None, 404, None),
    ]


def reply_of(response: httpx.Response, check: Callable[[httpx.Response], str | None]) -> Reply:
    """A finished response: error bodies read for their code, success bodies checked by `check`."""
    if response.status_code >= 400:
        code, shape = None, False
        try:
            error = response.json().get("error")
            shape = isinstance(error, dict) and set(error) == {"message", "type", "param", "code"}
            code = error.get("code") if isinstance(error, dict) else None
        except (ValueError, AttributeError):
            pass
        return Reply(status=response.status_code, code=code, error_shape=shape)
    try:
        problem = check(response)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        problem = f"unexpected body ({type(exc).__name__}: {exc}): {response.text[:200]}"
    return Reply(status=response.status_code, body_problem=problem)


def sse_problem(events: list[str]) -> str | None:
    """A complete stream: content arrived, no error event, and it ends with [DONE]."""
    if not events or events[-1] != "[DONE]":
        return f"stream did not end with [DONE] (last event: {events[-1][:200] if events else None})"
    chunks = [json.loads(e) for e in events[:-1]]
    if errors := [c for c in chunks if "error" in c]:
        return f"error event in the stream: {json.dumps(errors[0])[:200]}"
    if not any(choice.get("delta", {}).get("content") for c in chunks for choice in c.get("choices", [])):
        return "stream without content"
    return None


class Traffic:
    """The requests one soak sends to one service (`client` has its base URL)."""

    def __init__(self, client: httpx.AsyncClient, base_model: str, adapters: tuple[str, ...], route: str,
                 tickets: list[dict[str, Any]], max_tokens: int, clock: Callable[[], float] = time.monotonic,
                 origin: float | None = None, timeout_s: float = 300.0, triage_adapter: str | None = None) -> None:
        self.client, self.base, self.adapters, self.route = client, base_model, adapters, route
        self.tickets, self.max_tokens, self.timeout_s = tickets, max_tokens, timeout_s
        self.clock = clock
        self.origin = clock() if origin is None else origin  # results' started_s count from here
        self.bad = bad_cases(base_model, route, adapters[0])
        self.versions: dict[str, int] = {}  # adapter or route -> last version seen (swaps must raise it)
        # Triage targets: the base model, and a trained triage adapter when there is one.
        self.triage_targets = [base_model, base_model, *([triage_adapter] if triage_adapter else [])]

    # ------------------------------------------------------------------ plumbing
    async def send(self, kind: str, label: str, target: str | None, expect: Expect,
                   call: Callable[[], Awaitable[Reply]]) -> Result:
        started = self.clock()
        try:
            reply = await call()
        except httpx.HTTPError as exc:  # a valid request's transport error is a failure, never skipped
            reply = Reply(transport_error=f"{type(exc).__name__}: {exc}"[:300])
        except (ValueError, KeyError) as exc:  # an unreadable stream event
            reply = Reply(status=200, body_problem=f"unreadable reply: {type(exc).__name__}: {exc}"[:300])
        outcome, detail = classify(expect, reply)
        return Result(kind=kind, label=label, target=target, started_s=started - self.origin,
                      duration_s=self.clock() - started, outcome=outcome, status=reply.status, detail=detail)

    def served(self, response: httpx.Response, target: str) -> str | None:
        """What served the request is what was asked for (a route names itself, else the model)."""
        if target == self.route:
            got = response.headers.get("x-loragate-route")
        else:
            got = response.headers.get("x-loragate-model")
        return None if got == target else f"served by {got!r}, asked for {target!r}"

    def chat_body(self, target: str, rng: random.Random, **extra: Any) -> dict[str, Any]:
        return {"model": target, "messages": [{"role": "user", "content": rng.choice(PROMPTS)}],
                "max_tokens": self.max_tokens, "temperature": 0.7, "seed": rng.randrange(2**31), **extra}

    # ------------------------------------------------------------------ generation
    async def chat(self, target: str, rng: random.Random, kind: str = "chat", **extra: Any) -> Result:
        def check(response: httpx.Response) -> str | None:
            body = response.json()
            if not isinstance(body["choices"][0]["message"]["content"], str):
                return "no message content"
            if body["usage"]["completion_tokens"] < 1:
                return "no completion tokens"
            return self.served(response, target)

        async def call() -> Reply:
            response = await self.client.post(CHAT, json=self.chat_body(target, rng, **extra), timeout=self.timeout_s)
            return reply_of(response, check)
        return await self.send(kind, f"{kind} {self.role(target)}", target, VALID, call)

    async def completion(self, target: str, rng: random.Random) -> Result:
        def check(response: httpx.Response) -> str | None:
            text = response.json()["choices"][0]["text"]
            return self.served(response, target) if isinstance(text, str) else "no completion text"

        async def call() -> Reply:
            body = {"model": target, "prompt": rng.choice(PROMPTS), "max_tokens": self.max_tokens,
                    "temperature": 0.7, "seed": rng.randrange(2**31)}
            return reply_of(await self.client.post(COMPLETIONS, json=body, timeout=self.timeout_s), check)
        return await self.send("completion", f"completion {self.role(target)}", target, VALID, call)

    async def stream(self, target: str, rng: random.Random, kind: str = "stream", leave: bool = False,
                     first_event: Any = None, **extra: Any) -> Result:
        """A streaming chat read to its end, or (`leave`) left after its first event. `first_event`
        (an asyncio.Event) is set when the first event arrives."""
        body = self.chat_body(target, rng, stream=True, stream_options={"include_usage": True}, **extra)

        async def call() -> Reply:
            async with self.client.stream("POST", CHAT, json=body, timeout=self.timeout_s) as response:
                if response.status_code != 200:
                    await response.aread()
                    return reply_of(response, lambda _: None)
                served = self.served(response, target)
                events: list[str] = []
                async for line in response.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    events.append(line[len("data: "):])
                    if first_event is not None:
                        first_event.set()
                    if leave:  # leaving the block closes the connection mid-stream
                        return Reply(status=200, disconnected=True)
                return Reply(status=200, body_problem=served or sse_problem(events))
        label = f"{kind} {'left mid-stream' if leave else self.role(target)}"
        return await self.send(kind, label, target, DISCONNECT if leave else VALID, call)

    async def leave_waiting(self, target: str, rng: random.Random, after_s: float = 0.5) -> Result:
        """A non-streaming request whose client gives up after `after_s` (it closes the connection)."""
        body = self.chat_body(target, rng, max_tokens=LONG_TOKENS, min_tokens=LONG_TOKENS, ignore_eos=True)

        async def call() -> Reply:
            try:
                response = await self.client.post(CHAT, json=body, timeout=after_s)
            except httpx.TimeoutException:
                return Reply(disconnected=True)
            return reply_of(response, lambda r: self.served(r, target))  # finished first: judged as valid
        return await self.send("disconnect", "disconnect waiting for the reply", target, DISCONNECT, call)

    async def triage(self, target: str, rng: random.Random, kind: str = "triage") -> Result:
        def check(response: httpx.Response) -> str | None:
            body = response.json()
            labels = body["triage"]
            if labels["category"] not in CATEGORIES or labels["priority"] not in PRIORITIES:
                return f"labels outside the schema: {labels}"
            if target == self.route and body["meta"]["route"] != self.route:
                return f"meta.route {body['meta']['route']!r}, asked for {self.route!r}"
            return None

        async def call() -> Reply:
            body = {**rng.choice(self.tickets), "model": target}
            return reply_of(await self.client.post(TRIAGE, json=body, timeout=self.timeout_s), check)
        return await self.send(kind, f"{kind} {self.role(target)}", target, VALID, call)

    async def refused(self, case: BadCase) -> Result:
        async def call() -> Reply:
            if isinstance(case.body, bytes):
                response = await self.client.request(case.method, case.path, content=case.body,
                                                     headers={"content-type": "application/json"})
            elif case.body is None:
                response = await self.client.request(case.method, case.path)
            else:
                response = await self.client.request(case.method, case.path, json=case.body)
            return reply_of(response, lambda _: None)
        return await self.send("bad", f"bad: {case.label}", None, refusal(case.status, case.code), call)

    async def probe_ready(self) -> Result:
        """After SIGTERM: readiness must be 503 at once."""
        async def call() -> Reply:
            return Reply(status=(await self.client.get("/health/ready", timeout=10)).status_code)
        return await self.send("drain-probe", "readiness after SIGTERM", None,
                               Expect(kind="valid", ok_statuses=(503,)), call)

    async def refused_after_sigterm(self, rng: random.Random) -> Result:
        """After SIGTERM: a new request gets 503 `shutting_down` (the drain contract)."""
        async def call() -> Reply:
            response = await self.client.post(CHAT, json=self.chat_body(self.base, rng), timeout=30)
            return reply_of(response, lambda _: None)
        return await self.send("drain-probe", "new request after SIGTERM", self.base, refusal(503, "shutting_down"),
                               call)

    def role(self, target: str) -> str:
        return "base" if target == self.base else "route" if target == self.route else "adapter"

    # ------------------------------------------------------------------ the workers' mix
    async def one(self, rng: random.Random) -> Result:
        """One request of the mix, chosen by `rng`."""
        kind = rng.choices(list(MIX), weights=list(MIX.values()))[0]
        targets = [self.base, self.base, *self.adapters, self.route]
        if kind == "chat":
            return await self.chat(rng.choice(targets), rng)
        if kind == "stream":
            return await self.stream(rng.choice(targets), rng)
        if kind == "completion":
            return await self.completion(rng.choice(targets), rng)
        if kind == "triage":
            return await self.triage(rng.choice(self.triage_targets), rng)
        if kind == "bad":
            return await self.refused(rng.choice(self.bad))
        target = rng.choice(targets)
        if rng.random() < 0.5:
            return await self.stream(target, rng, kind="disconnect", leave=True,
                                     max_tokens=LONG_TOKENS, min_tokens=LONG_TOKENS, ignore_eos=True)
        return await self.leave_waiting(target, rng)

    # ------------------------------------------------------------------ admin
    async def register(self, name: str, path: Path, label: str) -> Result:
        """POST /admin/adapters: 201 with a version above the last one seen (a swap that happened)."""
        def check(response: httpx.Response) -> str | None:
            record = response.json()
            if record["name"] != name:
                return f"registered {record['name']!r}, asked for {name!r}"
            if record["version"] <= self.versions.get(name, 0):
                return f"version {record['version']} is not above {self.versions[name]}"
            self.versions[name] = record["version"]
            return None

        async def call() -> Reply:
            response = await self.client.post("/admin/adapters", json={"name": name, "path": str(path)},
                                              timeout=self.timeout_s)
            return reply_of(response, check)
        return await self.send("admin", label, name, Expect(kind="valid", ok_statuses=(201,)), call)

    async def remove(self, name: str) -> Result:
        async def call() -> Reply:
            return reply_of(await self.client.delete(f"/admin/adapters/{name}", timeout=self.timeout_s),
                            lambda _: None)
        return await self.send("admin", "remove an adapter", name, Expect(kind="valid", ok_statuses=(204,)), call)

    async def set_route(self, weights: dict[str, int], create: bool = False) -> Result:
        """PUT (create) or PATCH (weights) the route: the stored weights are the ones sent and the
        route's version went up."""
        variants = [{"target": target, "weight": weight} for target, weight in weights.items()]

        def check(response: httpx.Response) -> str | None:
            route = response.json()
            stored = {v["target"]: v["weight"] for v in route["spec"]["variants"]}
            if stored != weights:
                return f"stored weights {stored}, sent {weights}"
            if route["version"] <= self.versions.get(self.route, 0):
                return f"route version {route['version']} is not above {self.versions[self.route]}"
            self.versions[self.route] = route["version"]
            return None

        async def call() -> Reply:
            if create:
                response = await self.client.put(f"/admin/routes/{self.route}", json={"variants": variants})
            else:
                response = await self.client.patch(f"/admin/routes/{self.route}", content=json.dumps(
                    {"variants": variants}), headers={"content-type": "application/merge-patch+json"})
            return reply_of(response, check)
        return await self.send("admin", "create the route" if create else "route weights", self.route, VALID, call)
