"""Server-sent events for streamed chat and text completions (OpenAI's chunk shapes)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from service.api.cancellation import within_deadline
from service.api.errors import ErrorDetail, ErrorResponse, service_error_response
from service.api.headers import target_headers
from service.api.openai.logprobs import chat_logprobs, completion_logprobs
from service.api.openai.protocol import (
    ChatChunkChoice,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatDelta,
    CompletionChoice,
    CompletionRequest,
    CompletionResponse,
    Usage,
    usage,
)
from service.engine.types import GenerationDelta
from service.errors import ServiceError, as_service_error
from service.generation import GenerationSession

logger = logging.getLogger(__name__)


def sse_event(payload: BaseModel) -> str:
    return f"data: {payload.model_dump_json()}\n\n"


async def event_stream(session: GenerationSession, events_of: Callable[[GenerationSession], AsyncIterator[str]],
                       timeout_s: float | None = None, app: Any = None) -> StreamingResponse | JSONResponse:
    """Open the session and start the stream, but surface errors that happen before the first event
    as plain HTTP errors; later ones end the stream with an error event (mapped by the one failure
    table). The response's body owns the session from its first event: it closes it after the last.
    After `timeout_s` the work is aborted and the stream ends with a 504 error event."""
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(session)  # a refusal here is answered like any request's
        events = within_deadline(events_of(session), timeout_s)
        try:
            first = await anext(events)
        except Exception as exc:  # noqa: BLE001 - every failure is mapped by service_error_response
            return service_error_response(exc, app)
        owned = stack.pop_all()

    async def body() -> AsyncIterator[str]:
        try:
            yield first
            async for event in events:
                yield event
        except Exception as exc:  # noqa: BLE001 - the status line is gone: the error is the last event
            error = as_service_error(exc)
            if error.status >= 500 and not isinstance(exc, ServiceError):
                logger.exception("stream failed")
            yield sse_event(ErrorResponse(error=ErrorDetail.of(error)))
        finally:
            await owned.aclose()
        yield "data: [DONE]\n\n"

    headers = target_headers(session.target) | {"cache-control": "no-cache", "x-accel-buffering": "no"}
    return StreamingResponse(body(), media_type="text/event-stream", headers=headers)


def _record_usage(state: Any, session: GenerationSession, tokens: int) -> None:
    """For the access log: a stream's token counts are known only after its headers went out."""
    if state is not None:
        state.prompt_tokens, state.completion_tokens = session.prompt_tokens, tokens


def _running_usage(body: ChatCompletionRequest | CompletionRequest, session: GenerationSession,
                   tokens: int) -> Usage | None:
    """vLLM's `continuous_usage_stats`: each chunk carries the usage so far (prompt, completion
    tokens up to and including this chunk's, total); the final usage chunk follows as usual."""
    return usage(session.prompt_tokens, tokens) if body.continuous_usage else None


async def chat_chunks(session: GenerationSession, body: ChatCompletionRequest, state: Any = None) -> AsyncIterator[str]:
    chunk_id, created, model = f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), session.target.model
    top = body.top_logprobs_requested
    tokens = 0
    sent_role: set[int] = set()

    def chunk(choices: list[ChatChunkChoice], usage: Usage | None = None) -> str:
        return sse_event(ChatCompletionChunk(id=chunk_id, created=created, model=model, choices=choices, usage=usage,
                                             structured_output=session.structured_output))

    async for deltas in session.stream():
        choices = []
        for delta in deltas:
            tokens += delta.token_count
            role = None if delta.index in sent_role else "assistant"
            sent_role.add(delta.index)
            if delta.text or role or delta.finish_reason or delta.logprobs:
                choices.append(ChatChunkChoice(
                    index=delta.index, delta=ChatDelta(role=role, content=delta.text),
                    finish_reason=delta.finish_reason, logprobs=chat_logprobs(delta.logprobs, top),
                ))
        if choices:
            yield chunk(choices, _running_usage(body, session, tokens))
    _record_usage(state, session, tokens)
    if body.include_usage:
        yield chunk([], usage(session.prompt_tokens, tokens, session.cached_prompt_tokens))


async def completion_chunks(session: GenerationSession, body: CompletionRequest,
                            state: Any = None) -> AsyncIterator[str]:
    chunk_id, created, model = f"cmpl-{uuid.uuid4().hex}", int(time.time()), session.target.model
    tokens = 0
    echoed: set[int] = set()
    offsets: dict[int, int] = {}  # text length sent so far per choice (logprobs' text_offset)

    def chunk(choices: list[CompletionChoice], usage: Usage | None = None) -> str:
        return sse_event(CompletionResponse(id=chunk_id, created=created, model=model, choices=choices, usage=usage,
                                            structured_output=session.structured_output))

    async for deltas in session.stream():
        choices = []
        for delta in _with_echo(deltas, session.echo_text, echoed):
            tokens += delta.token_count
            if delta.text or delta.finish_reason or delta.logprobs:
                choices.append(CompletionChoice(
                    index=delta.index, text=delta.text, finish_reason=delta.finish_reason,
                    logprobs=completion_logprobs(delta.logprobs, body.logprobs, offsets.get(delta.index, 0)),
                ))
            offsets[delta.index] = offsets.get(delta.index, 0) + len(delta.text)
        if choices:
            yield chunk(choices, _running_usage(body, session, tokens))
    _record_usage(state, session, tokens)
    if body.include_usage:
        yield chunk([], usage(session.prompt_tokens, tokens, session.cached_prompt_tokens))


def _with_echo(deltas: list[GenerationDelta], echo: str, echoed: set[int]) -> list[GenerationDelta]:
    if not echo:
        return deltas
    out = []
    for delta in deltas:
        if delta.index not in echoed:
            echoed.add(delta.index)
            delta = delta.model_copy(update={"text": echo + delta.text})
        out.append(delta)
    return out
