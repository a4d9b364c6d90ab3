"""What the engine reads from vLLM's request outputs (duck-typed: no vLLM import here)."""

from __future__ import annotations

from typing import Any

from service.engine.types import FinishReason


def finite(value: float) -> float:
    # -inf (a token the constraint or logit_bias forbade) is not valid JSON; OpenAI uses -9999.
    return value if value > -9999.0 else -9999.0


def finish_reason(reason: str | None) -> FinishReason | None:
    if reason is None:
        return None
    if reason in ("stop", "length", "abort"):
        return reason  # type: ignore[return-value]
    return "stop"


def cached_tokens(output: Any) -> int | None:
    """Prompt tokens that hit the prefix cache (`RequestOutput.num_cached_tokens`), if reported."""
    cached = getattr(output, "num_cached_tokens", None)
    return cached if isinstance(cached, int) else None


def queue_seconds(output: Any) -> float | None:
    stats = getattr(output, "metrics", None)
    queued, scheduled = getattr(stats, "queued_ts", 0.0), getattr(stats, "scheduled_ts", 0.0)
    if queued and scheduled and scheduled >= queued:
        return scheduled - queued
    return None
