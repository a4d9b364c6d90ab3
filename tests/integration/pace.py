"""The engine's speed on this machine, measured once against a running service, so that tests size
requests and deadlines from it instead of constants chosen on one CPU (a 2-core EPYC decodes several
times slower than an AMX machine; a constant that is "long enough" on one is not on the other)."""

from __future__ import annotations

import math
import time

import httpx
from pydantic import BaseModel, Field

PROMPT = "Once upon a time"


class Pace(BaseModel):
    """One sequence alone: `seconds_per_token` of decoding, `overhead_s` per request (HTTP, prefill)."""

    seconds_per_token: float = Field(gt=0)
    overhead_s: float = Field(ge=0)

    def tokens_for(self, seconds: float) -> int:
        """Tokens whose decoding alone takes `seconds` at the measured pace (add margins at the caller)."""
        return max(1, math.ceil(seconds / self.seconds_per_token))

    def seconds_for(self, tokens: int) -> float:
        return self.overhead_s + tokens * self.seconds_per_token


def measure_pace(base_url: str, model: str, headers: dict[str, str] | None = None) -> Pace:
    """Time fixed-length completions (ignore_eos): the difference between a short and a longer one is
    the decoding alone. The longer one grows until the difference is at least half a second, so no
    request here takes much more than a second (it must fit a test service's short request timeout)."""
    with httpx.Client(base_url=base_url, timeout=120, headers=headers or {}) as http:
        def timed(tokens: int) -> float:
            body = {"model": model, "prompt": PROMPT, "max_tokens": tokens, "min_tokens": tokens,
                    "ignore_eos": True, "temperature": 0}
            started = time.monotonic()
            reply = http.post("/v1/completions", json=body)
            elapsed = time.monotonic() - started
            assert reply.status_code == 200, reply.text
            assert reply.json()["usage"]["completion_tokens"] == tokens
            return elapsed

        timed(4)  # warm-up
        short, extra = 4, 16
        while True:
            # The fastest of two: a pause of the shared machine only ever makes a request slower.
            t_short = min(timed(short) for _ in range(2))
            t_long = min(timed(short + extra) for _ in range(2))
            if t_long - t_short >= 0.5 or extra >= 256:
                break
            extra *= 2
    per_token = max((t_long - t_short) / extra, 1e-4)
    return Pace(seconds_per_token=per_token, overhead_s=max(t_short - short * per_token, 0.0))
