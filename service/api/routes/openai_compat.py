"""OpenAI-compatible endpoints: /v1/chat/completions, /v1/completions, /v1/models."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from service.api.errors import service_error_response
from service.api.protocol import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatDelta,
    CompletionChoice,
    CompletionRequest,
    CompletionResponse,
    ErrorDetail,
    ErrorResponse,
    ModelCard,
    ModelList,
    Usage,
)
from service.api.state import Services, get_services
from service.completions import GenerationResult, PreparedGeneration
from service.engine import GenerationDelta
from service.errors import ServiceError
from service.routing import ServingTarget

router = APIRouter(prefix="/v1", tags=["openai"])
ServicesDep = Annotated[Services, Depends(get_services)]
T = TypeVar("T")

ERROR_RESPONSES = {
    400: {"model": ErrorResponse}, 404: {"model": ErrorResponse},
    502: {"model": ErrorResponse}, 503: {"model": ErrorResponse},
}


@router.post("/chat/completions", response_model=ChatCompletionResponse, responses=ERROR_RESPONSES)
async def chat_completions(body: ChatCompletionRequest, request: Request, services: ServicesDep):
    prepared = await services.completions.prepare_chat(body)
    if body.stream:
        return await _sse(prepared, services, _chat_chunks(prepared, services, body.include_usage))
    result = await _run(request, services, prepared)
    response = ChatCompletionResponse(
        model=body.model,
        choices=[
            ChatChoice(index=c.index, message=AssistantMessage(content=c.text), finish_reason=c.finish_reason)
            for c in result.choices
        ],
        usage=_usage(result.prompt_tokens, result.completion_tokens),
    )
    return JSONResponse(response.model_dump(), headers=_result_headers(result))


@router.post("/completions", response_model=CompletionResponse, responses=ERROR_RESPONSES)
async def completions(body: CompletionRequest, request: Request, services: ServicesDep):
    prepared = await services.completions.prepare_completion(body)
    if body.stream:
        return await _sse(prepared, services, _completion_chunks(prepared, services, body.include_usage))
    result = await _run(request, services, prepared)
    response = CompletionResponse(
        model=body.model,
        choices=[
            CompletionChoice(index=c.index, text=prepared.echo_text + c.text, finish_reason=c.finish_reason)
            for c in result.choices
        ],
        usage=_usage(result.prompt_tokens, result.completion_tokens),
    )
    return JSONResponse(response.model_dump(), headers=_result_headers(result))


@router.get("/models", response_model=ModelList)
async def list_models(services: ServicesDep) -> ModelList:
    created = int(services.engine.started_at or time.time())
    base = services.router.base_model
    cards = [ModelCard(id=base, created=created, root=str(services.settings.model_dir))]
    cards += [ModelCard(id=name, created=created, root=name, parent=base) for name in services.router.adapter_names()]
    return ModelList(data=cards)


# ----------------------------------------------------------------- helpers
def _usage(prompt_tokens: int, completion_tokens: int) -> Usage:
    return Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                 total_tokens=prompt_tokens + completion_tokens)


def _target_headers(target: ServingTarget) -> dict[str, str]:
    headers = {
        "x-loragate-model": target.model,
        "x-loragate-base-model": target.base_model,
        "x-loragate-route": target.route,
        "x-loragate-variant": target.variant,
    }
    if target.adapter is not None:
        headers["x-loragate-adapter-version"] = str(target.adapter.version)
    return headers


def _result_headers(result: GenerationResult) -> dict[str, str]:
    headers = _target_headers(result.target)
    headers["x-loragate-duration-ms"] = f"{result.duration_seconds * 1000:.1f}"
    if result.time_to_first_token_seconds is not None:
        headers["x-loragate-ttft-ms"] = f"{result.time_to_first_token_seconds * 1000:.1f}"
    if result.structured_result is not None:
        headers["x-loragate-structured-output"] = result.structured_result
        headers["x-loragate-structured-backend"] = result.structured_backend or ""
    return headers


async def _run(request: Request, services: Services, prepared: PreparedGeneration) -> GenerationResult:
    try:
        return await _cancel_on_disconnect(request, services.completions.run(prepared))
    finally:
        prepared.release()


async def _cancel_on_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Run `work`, cancelling it (and so aborting the engine request) if the client leaves."""
    task = asyncio.ensure_future(work)

    async def watch() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                task.cancel()
                return

    watcher = asyncio.create_task(watch())
    try:
        return await task
    finally:
        watcher.cancel()


def _sse_event(payload: BaseModel) -> str:
    return f"data: {payload.model_dump_json()}\n\n"


async def _sse(prepared: PreparedGeneration, services: Services, events: AsyncIterator[str]) -> StreamingResponse | JSONResponse:
    """Start the stream, but surface errors that happen before the first event as plain HTTP errors."""
    try:
        first = await anext(events)
    except ServiceError as exc:
        prepared.release()
        return service_error_response(exc)

    async def body() -> AsyncIterator[str]:
        try:
            yield first
            async for event in events:
                yield event
        except ServiceError as exc:
            yield _sse_event(ErrorResponse(error=ErrorDetail.of(exc)))
        finally:
            prepared.release()
        yield "data: [DONE]\n\n"

    headers = _target_headers(prepared.target) | {"cache-control": "no-cache", "x-accel-buffering": "no"}
    return StreamingResponse(body(), media_type="text/event-stream", headers=headers)


async def _chat_chunks(prepared: PreparedGeneration, services: Services, include_usage: bool) -> AsyncIterator[str]:
    chunk_id, created, model = f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), prepared.target.model
    tokens = 0
    sent_role: set[int] = set()

    def chunk(choices: list[ChatChunkChoice], usage: Usage | None = None) -> str:
        return _sse_event(ChatCompletionChunk(id=chunk_id, created=created, model=model, choices=choices, usage=usage))

    async for deltas in services.completions.stream(prepared):
        choices = []
        for delta in deltas:
            tokens += delta.token_count
            role = None if delta.index in sent_role else "assistant"
            sent_role.add(delta.index)
            if delta.text or role or delta.finish_reason:
                choices.append(ChatChunkChoice(
                    index=delta.index, delta=ChatDelta(role=role, content=delta.text),
                    finish_reason=delta.finish_reason,
                ))
        if choices:
            yield chunk(choices)
    if include_usage:
        yield chunk([], _usage(len(prepared.prompt_token_ids), tokens))


async def _completion_chunks(prepared: PreparedGeneration, services: Services, include_usage: bool) -> AsyncIterator[str]:
    chunk_id, created, model = f"cmpl-{uuid.uuid4().hex}", int(time.time()), prepared.target.model
    tokens = 0
    echoed: set[int] = set()

    def chunk(choices: list[CompletionChoice], usage: Usage | None = None) -> str:
        return _sse_event(CompletionResponse(id=chunk_id, created=created, model=model, choices=choices, usage=usage))

    async for deltas in services.completions.stream(prepared):
        choices = []
        for delta in _with_echo(deltas, prepared.echo_text, echoed):
            tokens += delta.token_count
            if delta.text or delta.finish_reason:
                choices.append(CompletionChoice(index=delta.index, text=delta.text, finish_reason=delta.finish_reason))
        if choices:
            yield chunk(choices)
    if include_usage:
        yield chunk([], _usage(len(prepared.prompt_token_ids), tokens))


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
