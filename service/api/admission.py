"""Admission control of the generation endpoints, as a FastAPI dependency on the typed request.

A generation route takes its body as `Annotated[Model, admitted(Model, work)]`: FastAPI validates
the body (a 400 comes first), then, in this order:
1. Request-shape caps (400 with `param`): `max_messages` and `max_prompt_chars` (all message
   contents, or the prompt). Static caps (`stop`, `logit_bias`) are field validators in
   `openai/protocol.py`; the triage batch size is checked by its route.
2. Per-key rate limits, `rate_limit_rpm` and `rate_limit_tpm` (0: off): one token bucket per key
   (`request.state.key_id`, set by authentication; else the client IP) holding a minute's
   allowance, refilled continuously. Tokens are an estimate made at admission (`estimate_tokens`)
   and never corrected afterwards. 429 `rate_limit_exceeded` with `Retry-After` (when the bucket
   holds enough again); every admitted reply carries OpenAI's `x-ratelimit-*` headers (added by
   `AdmittedRoute`: the routes return their own Response objects).
3. Bounded concurrency: at most `max_concurrent_requests` run, `max_queued_requests` wait (each at
   most `queue_timeout_s`, first come first served); beyond that 429 with `Retry-After`. The slot
   is held by a `yield` dependency, which FastAPI closes after the response is sent: a streamed
   reply holds it until its last chunk.
Every refusal is a `Refusal`, counted in `loragate_rejected_requests_total{reason}` by its handler.
The body-size cap, which must act before the body is read, is `body_limit.py`; the buckets and the
slots are in `limits.py`; limits are per process (per replica).
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from fastapi import Depends, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.types import Message, Receive, Scope, Send

from service.api.limits import KeyedBuckets, Refusal, Slots, duration
from service.config import AdmissionLimits, Settings
from service.errors import InvalidRequestError, RateLimitedError

if TYPE_CHECKING:
    from service.api.openai.protocol import ChatCompletionRequest, CompletionRequest
    from service.tasks.triage import Ticket

M = TypeVar("M", bound=BaseModel)
RATE_LIMIT_HEADERS = "ratelimit_headers"  # scope["state"] key: the admitted reply's x-ratelimit-* headers
TRIAGE_DEFAULT_MAX_TOKENS = 256  # TriageService's first-attempt budget when a ticket names none


@dataclass(frozen=True)
class Work:
    """What admission reads from a typed request."""

    texts: list[str]  # the prompt's text
    completion_tokens: int  # the completion budget charged (capped like the request itself)
    prompt_param: str | None = None  # where `max_prompt_chars` applies (None: not capped here)
    messages: int | None = None  # a chat's message count (`max_messages`)


def _budget(requested: int | None, n: int, settings: Settings) -> int:
    limits = settings.generation
    return min(requested or limits.max_tokens_limit, limits.max_tokens_limit) * min(n, limits.max_n)


def chat_work(body: ChatCompletionRequest, settings: Settings) -> Work:
    return Work([message.text for message in body.messages], _budget(body.requested_max_tokens, body.n, settings),
                "messages", len(body.messages))


def completion_work(body: CompletionRequest, settings: Settings) -> Work:
    return Work([body.prompt], _budget(body.max_tokens, body.n, settings), "prompt")


def _ticket_budget(body: BaseModel, settings: Settings) -> int:
    return min(getattr(body, "max_tokens", None) or TRIAGE_DEFAULT_MAX_TOKENS, settings.generation.max_tokens_limit)


def ticket_work(body: Ticket, settings: Settings) -> Work:
    """Triage: max_tokens (default 256) for the ticket's subject and body."""
    return Work([body.subject, body.body], _ticket_budget(body, settings))


class TicketBatch(Protocol):
    tickets: list[Ticket]


def batch_work(body: TicketBatch, settings: Settings) -> Work:
    """A triage batch: the budget of one ticket per ticket (at most `triage_batch_max` counted)."""
    count = min(len(body.tickets), settings.triage.batch_max)
    texts = [text for ticket in body.tickets for text in (ticket.subject, ticket.body)]
    return Work(texts, _ticket_budget(body, settings) * count)  # type: ignore[arg-type]


def check_shape(work: Work, limits: AdmissionLimits) -> None:
    """The configurable caps on a generation request's shape; raises `Refusal` (400 with `param`)."""
    if work.messages is not None and work.messages > limits.max_messages:
        raise Refusal(InvalidRequestError(
            f"Invalid 'messages': array too long. Expected an array with maximum length {limits.max_messages}, "
            f"but got an array with length {work.messages} instead.",
            param="messages", code="array_above_max_length"), "too_many_messages")
    chars = sum(len(text) for text in work.texts)
    if work.prompt_param is not None and chars > limits.max_prompt_chars:
        raise Refusal(InvalidRequestError(
            f"Invalid '{work.prompt_param}': the prompt is {chars} characters long; this server accepts at most "
            f"{limits.max_prompt_chars}.", param=work.prompt_param, code="string_above_max_length"),
            "prompt_too_long")


def estimate_tokens(work: Work) -> int:
    """Tokens charged to `rate_limit_tpm` at admission: prompt UTF-8 bytes / 4 (rounded up) plus the
    completion budget: max_completion_tokens or max_tokens (default and ceiling `max_tokens_limit`)
    times `n` (at most `max_n`); triage: max_tokens (default 256) per ticket."""
    return math.ceil(sum(len(text.encode()) for text in work.texts) / 4) + work.completion_tokens


def client_key(scope: Scope) -> str:
    key_id = (scope.get("state") or {}).get("key_id")
    if key_id:
        return f"key:{key_id}"
    client = scope.get("client")
    return f"ip:{client[0]}" if client else "ip:unknown"


class Admission:
    """The rate limits and concurrency slots of one process; `create_app` puts it in `app.state`."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings, self.clock = settings, clock
        limits = settings.limits
        self.slots = Slots(limits.max_concurrent_requests, limits.max_queued_requests, limits.queue_timeout_s)
        self.limits = [(name, KeyedBuckets(limit)) for name, limit in
                       (("requests", limits.rate_limit_rpm), ("tokens", limits.rate_limit_tpm)) if limit > 0]

    @asynccontextmanager
    async def admit(self, work: Work, key: str) -> AsyncIterator[dict[str, str]]:
        """Check, charge and hold a slot while the block runs; yields the `x-ratelimit-*` headers."""
        check_shape(work, self.settings.limits)
        cost = estimate_tokens(work)
        headers = self._charge(key, cost)
        try:
            await self.slots.acquire()
        except BaseException:
            self._refund(key, cost)
            raise
        try:
            yield headers
        finally:
            self.slots.release()

    def _charge(self, key: str, tokens: int) -> dict[str, str]:
        now = self.clock()
        costs = {"requests": 1, "tokens": tokens}
        waits = [(buckets.wait(key, costs[name], now), name, buckets) for name, buckets in self.limits]
        worst = max(waits, default=None, key=lambda w: w[0])
        if worst is not None and worst[0] > 0:
            seconds, name, buckets = worst
            retry = max(1, math.ceil(seconds))
            error = RateLimitedError(
                f"Rate limit reached for {name} per minute: limit {int(buckets.capacity)}, requested "
                f"{costs[name]}. Please try again in {retry}s.", retry_after=retry)
            raise Refusal(error, "rate_limited", self._headers(key, now))
        for name, buckets in self.limits:
            buckets.take(key, costs[name], now)
        return self._headers(key, now)

    def _refund(self, key: str, tokens: int) -> None:
        now = self.clock()
        for name, buckets in self.limits:
            buckets.give_back(key, 1 if name == "requests" else tokens, now)

    def _headers(self, key: str, now: float) -> dict[str, str]:
        headers = {}
        for name, buckets in self.limits:
            remaining, reset = buckets.remaining(key, now)
            headers[f"x-ratelimit-limit-{name}"] = str(int(buckets.capacity))
            headers[f"x-ratelimit-remaining-{name}"] = str(remaining)
            headers[f"x-ratelimit-reset-{name}"] = duration(reset)
        return headers


def admitted(model: type[M], work: Callable[[M, Settings], Work]) -> Any:
    """The dependency that validates a generation route's body as `model` and admits it; use it as
    `body: Annotated[Model, admitted(Model, work)]` (the body keeps its shape and schema: the
    dependency's `body` is the route's only body parameter). Reads the app's `state.admission`."""

    async def admit(request: Request, body: M) -> AsyncIterator[M]:
        admission: Admission = request.app.state.admission
        async with admission.admit(work(body, admission.settings), client_key(request.scope)) as headers:
            request.scope.setdefault("state", {})[RATE_LIMIT_HEADERS] = headers
            yield body

    # FastAPI reads the body's type from the signature; `model` is known only here.
    admit.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
        inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request),
        inspect.Parameter("body", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=model),
    ])
    return Depends(admit)


class AdmittedRoute(APIRoute):
    """A route whose replies (errors after admission included) carry the `x-ratelimit-*` headers its
    admission computed: FastAPI merges no dependency headers into a Response a route returns."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def sending(message: Message) -> None:
            headers = (scope.get("state") or {}).get(RATE_LIMIT_HEADERS)
            if message["type"] == "http.response.start" and headers:
                extra = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await super().handle(scope, receive, sending)
