"""Translate OpenAI-shaped requests into the generation service's own `GenerationRequest`."""

from __future__ import annotations

from typing import Any

from service.engine.types import SamplingOptions
from service.errors import InvalidRequestError, ServiceError, UnrecognizedArgumentError
from service.generation import GenerationRequest, GenerationService, PromptMessage
from service.api.openai.protocol import ChatCompletionRequest, ChatMessage, CompletionRequest, SamplingFields
from service.structured import STRUCTURED_OUTPUT_BACKENDS, StructuredConstraint, StructuredRequest


def generation_request(body: ChatCompletionRequest | CompletionRequest, generation: GenerationService,
                       route_key: str | None = None) -> GenerationRequest:
    """The generation request for a chat or completion body; a malformed constraint is counted
    as refused (like every other refusal) and raised. The route key is the header's, else `user`."""
    try:
        check_fields(body)
        structured = structured_request(body)
    except ServiceError as exc:
        generation.refused(exc)
        raise
    common: dict[str, Any] = {"model": body.model, "sampling": sampling_options(body), "structured": structured,
                              "route_key": route_key or body.user, "cache_salt": body.cache_salt}
    if isinstance(body, ChatCompletionRequest):
        return GenerationRequest(endpoint="chat", messages=prompt_messages(body.messages), **common)
    return GenerationRequest(endpoint="completions", prompt=body.prompt, echo=body.echo, **common)


def check_fields(body: SamplingFields) -> None:
    """OpenAI answers an argument it does not know with a 400; so does loragate, rather than
    return a 200 that silently ignored it. Fields vLLM knows but loragate does not honour get
    their own message."""
    unknown = body.unrecognized_field()
    if unknown is not None:
        raise UnrecognizedArgumentError(unknown)
    unsupported = body.unsupported_field()
    if unsupported is not None:
        raise InvalidRequestError(f"'{unsupported}' is not supported by this server{_why(body, unsupported)}.",
                                  param=unsupported, code="unsupported_parameter")
    options = body.stream_options
    if options is not None and options.continuous_usage_stats and not options.include_usage:
        # vLLM ignores it then; a client asking for usage on every chunk would silently get none.
        raise InvalidRequestError("stream_options.continuous_usage_stats needs stream_options.include_usage set "
                                  "to true.", param="stream_options.continuous_usage_stats")
    if isinstance(body, ChatCompletionRequest) and body.top_logprobs and not body.logprobs:
        raise InvalidRequestError("top_logprobs needs logprobs set to true.", param="top_logprobs")
    if isinstance(body, CompletionRequest) and body.echo and body.logprobs is not None:
        raise InvalidRequestError("echo with logprobs (prompt logprobs) is not supported by this server.",
                                  param="echo", code="unsupported_parameter")


def _why(body: SamplingFields, param: str) -> str:
    """The refused role, named, when the unsupported part is a message's role."""
    if isinstance(body, ChatCompletionRequest) and param.startswith("messages[") and param.endswith("].role"):
        role = body.messages[int(param[len("messages["):-len("].role")])].role
        return f": role '{role}' (tool and function calling are not served)"
    return ""


def sampling_options(body: SamplingFields) -> SamplingOptions:
    """The request's sampling options: fields the client set, by their shared (vLLM) names; unset
    ones keep vLLM's defaults."""
    named = (set(SamplingOptions.model_fields) & set(type(body).model_fields)) - {"logprobs", "max_tokens", "stop"}
    sent = body.model_dump(include=named, exclude_none=True)
    max_tokens = body.requested_max_tokens if isinstance(body, ChatCompletionRequest) else body.max_tokens
    return SamplingOptions(**sent, max_tokens=max_tokens, stop=body.stop_sequences,
                           logprobs=body.top_logprobs_requested)


def prompt_messages(messages: list[ChatMessage]) -> list[PromptMessage]:
    # OpenAI's newer "developer" role plays the part of "system" for chat templates.
    return [PromptMessage(role="system" if m.role == "developer" else m.role, content=m.text) for m in messages]


def structured_request(request: SamplingFields) -> StructuredRequest | None:
    """At most one constraint per request, from whichever field the client used."""
    found: list[StructuredRequest] = []
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_object":
        found.append(StructuredRequest(constraint=StructuredConstraint(json_object=True), kind="json_object"))
    elif fmt is not None and fmt.type == "json_schema" and fmt.json_schema is not None:
        schema = fmt.json_schema.schema_ or {}
        found.append(StructuredRequest(
            constraint=StructuredConstraint(json_schema=schema), kind="json_schema", schema_=schema,
            strict=bool(fmt.json_schema.strict), param="response_format.json_schema.schema",
        ))
    extras = dict(request.structured_outputs or {})
    backend = extras.pop("backend", None)
    compact = extras.pop("disable_any_whitespace", True)
    if not isinstance(compact, bool):
        raise InvalidRequestError("structured_outputs.disable_any_whitespace must be a boolean.",
                                  param="structured_outputs.disable_any_whitespace")
    if backend is not None and backend not in STRUCTURED_OUTPUT_BACKENDS:
        raise InvalidRequestError(
            f"structured_outputs.backend must be one of {', '.join(STRUCTURED_OUTPUT_BACKENDS)}.",
            param="structured_outputs.backend",
        )
    for key, value in (("json", request.guided_json), ("regex", request.guided_regex),
                       ("choice", request.guided_choice), ("grammar", request.guided_grammar)):
        if value is not None:
            extras[key] = value
    unknown = set(extras) - {"json", "regex", "choice", "grammar", "json_object"}
    if unknown:
        raise InvalidRequestError(
            f"Unknown structured_outputs field(s): {', '.join(sorted(unknown))}.", param="structured_outputs"
        )
    for key, value in extras.items():
        found.append(_from_extra(key, value))
    if len(found) > 1:
        raise InvalidRequestError(
            "Use only one structured-output constraint per request (response_format, json, regex, "
            "choice or grammar).", param="response_format",
        )
    if not found:
        return None
    chosen = found[0]
    if backend is not None:
        chosen.constraint.backend = backend
    chosen.constraint.disable_any_whitespace = compact
    return chosen


def _from_extra(key: str, value: Any) -> StructuredRequest:
    param = f"structured_outputs.{key}"
    if key == "json":
        if not isinstance(value, dict):
            raise InvalidRequestError("The JSON schema must be a JSON object.", param=param)
        return StructuredRequest(constraint=StructuredConstraint(json_schema=value), kind="json_schema",
                                 schema_=value, param=param)
    if key == "json_object":
        if value is not True:
            raise InvalidRequestError("json_object must be true when given.", param=param)
        return StructuredRequest(constraint=StructuredConstraint(json_object=True), kind="json_object", param=param)
    if key == "choice":
        if not isinstance(value, list) or not value or not all(isinstance(c, str) and c for c in value):
            raise InvalidRequestError("choice must be a non-empty list of non-empty strings.", param=param)
        return StructuredRequest(constraint=StructuredConstraint(choice=value), kind="choice", param=param)
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequestError(f"{key} must be a non-empty string.", param=param)
    if key == "regex":
        return StructuredRequest(constraint=StructuredConstraint(regex=value), kind="regex", param=param)
    return StructuredRequest(constraint=StructuredConstraint(grammar=value), kind="grammar", param=param)
