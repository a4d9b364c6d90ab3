"""OpenAI-compatible endpoints: /v1/chat/completions, /v1/completions, /v1/models."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from service.api.admission import AdmittedRoute, admitted, chat_work, completion_work
from service.api.auth import require_api_key
from service.api.cancellation import cancel_on_disconnect
from service.api.deps import RouteKeyHeader, Services, ServicesDep
from service.api.errors import GENERATION_FAILURES, failures
from service.api.headers import result_headers
from service.api.openai.protocol import (
    AssistantMessage,
    ChatChoice,
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionChoice,
    CompletionRequest,
    CompletionResponse,
    ModelCard,
    ModelList,
    Usage,
    usage,
)
from service.api.openai.logprobs import chat_logprobs, completion_logprobs
from service.api.openai.streaming import chat_chunks, completion_chunks, event_stream
from service.api.openai.translate import generation_request
from service.generation import GenerationResult, GenerationSession

router = APIRouter(prefix="/v1", tags=["openai"], route_class=AdmittedRoute, dependencies=[Depends(require_api_key)])
AdmittedChat = Annotated[ChatCompletionRequest, admitted(ChatCompletionRequest, chat_work)]
AdmittedCompletion = Annotated[CompletionRequest, admitted(CompletionRequest, completion_work)]
# A streamed reply (`stream: true`) is server-sent events; its errors after the first byte are events.
# Before OpenAPI 3.2 (`itemSchema`), an event stream's `schema` describes one event: `data` is a chunk's
# JSON, an error's JSON, or the closing `[DONE]`.
SSE_EVENT = {"type": "object", "required": ["data"], "properties": {
    "data": {"type": "string", "description": "A chunk object's JSON, an error's JSON, or `[DONE]`."},
    "event": {"type": "string"}, "id": {"type": "string"}, "retry": {"type": "integer"}}}
RESPONSES = failures(*GENERATION_FAILURES) | {200: {"content": {"text/event-stream": {"schema": SSE_EVENT}}}}


@router.post("/chat/completions", response_model=ChatCompletionResponse, responses=RESPONSES)
async def chat_completions(body: AdmittedChat, request: Request, services: ServicesDep,
                           route_key: RouteKeyHeader = None):
    top = body.top_logprobs_requested

    def respond(session: GenerationSession, result: GenerationResult) -> ChatCompletionResponse:
        return ChatCompletionResponse(model=body.model, usage=_usage(result), choices=[
            ChatChoice(index=c.index, message=AssistantMessage(content=c.text), finish_reason=c.finish_reason,
                       logprobs=chat_logprobs(c.logprobs, top))
            for c in result.choices
        ])

    return await _reply(request, services, body, route_key, lambda s: chat_chunks(s, body, request.state), respond)


@router.post("/completions", response_model=CompletionResponse, responses=RESPONSES)
async def completions(body: AdmittedCompletion, request: Request, services: ServicesDep,
                      route_key: RouteKeyHeader = None):
    def respond(session: GenerationSession, result: GenerationResult) -> CompletionResponse:
        return CompletionResponse(model=body.model, usage=_usage(result), choices=[
            CompletionChoice(index=c.index, text=session.echo_text + c.text, finish_reason=c.finish_reason,
                             logprobs=completion_logprobs(c.logprobs, body.logprobs))
            for c in result.choices
        ])

    return await _reply(request, services, body, route_key, lambda s: completion_chunks(s, body, request.state),
                        respond)


async def _reply(request: Request, services: Services, body: ChatCompletionRequest | CompletionRequest,
                 route_key: str | None, events: Callable[[GenerationSession], AsyncIterator[str]],
                 respond: Callable[[GenerationSession, GenerationResult], BaseModel]) -> Response:
    """One generation session: streamed as server-sent events, or run to the end and answered."""
    session = services.generation.session(generation_request(body, services.generation, route_key))
    timeout = services.settings.request_timeout_s
    if body.stream:
        return await event_stream(session, events, timeout, request.app)
    async with session:
        result = await cancel_on_disconnect(request, session.run(), timeout)
    return JSONResponse(respond(session, result).model_dump(), headers=result_headers(result))


def _usage(result: GenerationResult) -> Usage:
    return usage(result.prompt_tokens, result.completion_tokens, result.cached_prompt_tokens)


@router.get("/models", response_model=ModelList)
async def list_models(services: ServicesDep) -> ModelList:
    created = int(services.engine.started_at or time.time())
    base = services.router.base_model
    cards = [ModelCard(id=base, created=created, root=str(services.settings.model_dir))]
    cards += [ModelCard(id=name, created=created, root=name, parent=base) for name in services.router.adapter_names()]
    cards += [ModelCard(id=name, created=created, root=name, parent=base, owned_by="loragate-route")
              for name in services.router.route_names()]
    return ModelList(data=cards)
