"""Token log probabilities in OpenAI's two response shapes (chat and legacy completions)."""

from __future__ import annotations

from service.api.openai.protocol import ChatLogprobs, ChatTokenLogprob, CompletionLogprobs, TopLogprob
from service.engine.types import TokenLogprob


def _bytes(token: str) -> list[int]:
    return list(token.encode("utf-8"))


def chat_logprobs(tokens: list[TokenLogprob] | None, top: int | None) -> ChatLogprobs | None:
    if tokens is None or top is None:
        return None
    return ChatLogprobs(content=[
        ChatTokenLogprob(
            token=t.token, logprob=t.logprob, bytes=_bytes(t.token),
            top_logprobs=[TopLogprob(token=a.token, logprob=a.logprob, bytes=_bytes(a.token)) for a in t.top[:top]],
        )
        for t in tokens
    ])


def completion_logprobs(tokens: list[TokenLogprob] | None, top: int | None, text_offset: int = 0) -> CompletionLogprobs | None:
    """`text_offset` is where the completion starts in the returned text (after an echoed prompt)."""
    if tokens is None or top is None:
        return None
    offsets, offset = [], text_offset
    for t in tokens:
        offsets.append(offset)
        offset += len(t.token)
    return CompletionLogprobs(
        text_offset=offsets,
        token_logprobs=[t.logprob for t in tokens],
        tokens=[t.token for t in tokens],
        # vLLM's shape: the top alternatives plus the sampled token.
        top_logprobs=[{a.token: a.logprob for a in t.top[:top]} | {t.token: t.logprob} for t in tokens],
    )
