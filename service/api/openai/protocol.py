"""OpenAI-compatible request and response models (the subset loragate serves).

Only the API layer knows these shapes; `translate.py` turns requests into the generation
service's own `GenerationRequest`.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, field_validator, model_validator,
)

from service.numbers import StrictScalars

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_LOGPROBS = 20  # vLLM's default max_logprobs
MAX_STOP_CHARS = 256  # per stop sequence
# vLLM's limits on a cache salt (vllm.entrypoints.generate.base.protocol.validate_cache_salt).
MAX_CACHE_SALT_CHARS = 128
CACHE_SALT_FORBIDDEN = frozenset("@/\\\x00")


def _check_cache_salt(value: object) -> object:
    # vLLM's rules and words (validate_cache_salt), so a client sees the same 400 from both.
    if value is None:
        return value
    if not isinstance(value, str) or not value:
        raise ValueError("Parameter 'cache_salt' must be a non-empty string if provided.")
    if len(value) > MAX_CACHE_SALT_CHARS or any(char in CACHE_SALT_FORBIDDEN for char in value):
        raise ValueError(f"Parameter 'cache_salt' must be at most {MAX_CACHE_SALT_CHARS} characters and must "
                         "not contain '@', '/', '\\\\', or NUL.")
    return value


# vLLM's: salts a request's prefix-cache keys, so requests with different salts never share cached
# blocks (tenant isolation). Accepted with prefix caching off, as vLLM does (no effect). The
# constraints document vLLM's rules in the schema; the validator refuses in vLLM's words first.
CacheSalt = Annotated[
    Annotated[str, StringConstraints(min_length=1, max_length=MAX_CACHE_SALT_CHARS, pattern=r"^[^@/\\\x00]*$")] | None,
    BeforeValidator(_check_cache_salt),
    Field(description="Salts this request's prefix-cache keys: requests with different salts share no cached "
                      "prompt blocks (vLLM's `cache_salt`)."),
]

# OpenAI fields that do not change what is generated: accepted and ignored, as documented.
IGNORED_FIELDS = frozenset({"store", "metadata", "service_tier", "parallel_tool_calls", "prompt_cache_key",
                            "safety_identifier"})
# Fields vLLM's own server honours that loragate does not (README, "Request fields"): a clear 400
# rather than "unrecognized", and never a silent 200.
UNSUPPORTED_FIELDS = frozenset({
    "tools", "functions", "tool_choice", "function_call", "audio", "modalities", "prediction",
    "web_search_options", "reasoning_effort", "use_beam_search", "length_penalty", "prompt_logprobs",
    "logprob_token_ids", "suffix", "truncate_prompt_tokens", "truncation_side", "chat_template",
    "chat_template_kwargs", "add_generation_prompt", "continue_final_message", "add_special_tokens",
    "documents", "mm_processor_kwargs", "media_io_kwargs", "priority", "request_id",
    "kv_transfer_params", "vllm_xargs", "return_tokens_as_token_ids", "return_token_ids", "prompt_embeds",
    "thinking_token_budget", "include_reasoning", "guided_decoding_backend", "guided_whitespace_pattern",
    "watermarking", "repetition_detection", "stream_interval", "session_id",
})
# Unsupported fields whose "off" value is harmless (clients often send them explicitly).
_OFF_VALUES = (None, [], {}, "none", False, 0)
# Message fields of OpenAI's chat format loragate does not serve: declared, so that a message
# sending one with a value is refused by name (400 `unsupported_parameter`, `messages[i].field`)
# rather than dropped; null or empty is harmless (clients echo assistant messages back). `name`:
# refused rather than passed to the chat template, because the default model's template (SmolLM2's
# ChatML, like most) does not render it: passing it would be a silent drop, and a reply that
# ignores which participant spoke is not what a client sending `name` asked for (OpenAI uses it).
MESSAGE_UNSUPPORTED_FIELDS = ("name", "tool_calls", "tool_call_id", "function_call", "refusal", "audio")
UNSUPPORTED_ROLES = frozenset({"tool", "function"})  # tool and function calling are not served
_EMPTY_VALUES = (None, "", [], {})



def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


# ---------------------------------------------------------------- shared pieces
class Strict(StrictScalars):
    """Every protocol model refuses a field it does not declare (a 400 naming it), never drops it;
    the exceptions are `EXTRA_ALLOWED`, at the end of this module, each with its reason."""

    model_config = ConfigDict(extra="forbid")


class StreamOptions(Strict):
    include_usage: bool = False
    # vLLM's: with include_usage, every chunk carries the running usage (`streaming.py`).
    continuous_usage_stats: bool = False


class JsonSchemaSpec(Strict):
    name: str = Field("response", max_length=64)
    description: str | None = None
    # `schema` shadows a BaseModel attribute, hence the alias.
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None

    model_config = ConfigDict(populate_by_name=True)


class ResponseFormat(Strict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None

    @model_validator(mode="after")
    def _schema_present(self) -> ResponseFormat:
        if self.type == "json_schema" and (self.json_schema is None or self.json_schema.schema_ is None):
            raise ValueError("response_format of type 'json_schema' needs json_schema.schema")
        return self


class SamplingFields(Strict):
    """Fields shared by chat and text completions (OpenAI names and ranges)."""

    # Unknown fields are collected here and refused by `unrecognized_field` (OpenAI's 400); see EXTRA_ALLOWED.
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    n: int = Field(1, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=INT64_MIN, le=INT64_MAX)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    logit_bias: dict[str, Annotated[float, Field(ge=-100.0, le=100.0)]] | None = None
    # vLLM's sampling extras (same names and meaning as vLLM's own server).
    repetition_penalty: float | None = Field(None, gt=0.0, le=2.0)
    top_k: int | None = Field(None, ge=-1)
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    min_tokens: int = Field(0, ge=0)
    ignore_eos: bool = False  # benchmarks: fixed-length replies
    stop_token_ids: list[int] | None = None
    include_stop_str_in_output: bool = False
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    allowed_token_ids: list[int] | None = Field(None, min_length=1)
    bad_words: list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    # Structured output: OpenAI's response_format plus vLLM-style extras.
    response_format: ResponseFormat | None = None
    structured_outputs: dict[str, Any] | None = None
    guided_json: dict[str, Any] | None = None
    guided_regex: str | None = None
    guided_choice: list[str] | None = None
    guided_grammar: str | None = None
    cache_salt: CacheSalt = None

    def unrecognized_field(self) -> str | None:
        """The first field the client sent that this server does not know, if any."""
        return next((name for name in (self.model_extra or {})
                     if name not in UNSUPPORTED_FIELDS and name not in IGNORED_FIELDS), None)

    def unsupported_field(self) -> str | None:
        """The first field vLLM honours that loragate does not, sent with a value that matters."""
        extras = self.model_extra or {}
        return next((name for name in sorted(UNSUPPORTED_FIELDS)
                     if name in extras and extras[name] not in _OFF_VALUES and extras[name] != "auto"), None)

    @property
    def continuous_usage(self) -> bool:
        """vLLM's `continuous_usage_stats`: usage on every chunk (only with `include_usage`)."""
        return self.include_usage and bool(self.stream_options and self.stream_options.continuous_usage_stats)

    @field_validator("logit_bias")
    @classmethod
    def _token_id_keys(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is not None:
            for key in value:
                if not key.lstrip("-").isdigit():
                    raise ValueError(f"keys must be token ids (integers as strings); got {key!r}")
            if len(value) > 300:
                raise ValueError("at most 300 tokens may be biased")
        return value

    @property
    def top_logprobs_requested(self) -> int | None:
        """Alternatives per token the client asked for (None: no logprobs)."""
        return None

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences are allowed")
        if any(len(stop) > MAX_STOP_CHARS for stop in ([value] if isinstance(value, str) else value or [])):
            raise ValueError(f"each stop sequence may be at most {MAX_STOP_CHARS} characters long")
        return value

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    def stop_sequences(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


# ---------------------------------------------------------------------- chat
class TextContentPart(Strict):
    type: Literal["text"]
    text: str


class ChatMessage(Strict):
    # "tool" and "function" are OpenAI's roles, so they get `unsupported_parameter`, not a type error.
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextContentPart] | None = None
    # MESSAGE_UNSUPPORTED_FIELDS: accepted only empty.
    name: str | None = None
    tool_calls: list[Any] | None = None
    tool_call_id: str | None = None
    function_call: Any = None
    refusal: str | None = None
    audio: Any = None

    def unsupported_field(self) -> str | None:
        """The first part of this message loragate does not serve: its role, or a field set."""
        if self.role in UNSUPPORTED_ROLES:
            return "role"
        return next((name for name in MESSAGE_UNSUPPORTED_FIELDS if getattr(self, name) not in _EMPTY_VALUES), None)

    @property
    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class ChatCompletionRequest(SamplingFields):
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=MAX_LOGPROBS)

    @property
    def top_logprobs_requested(self) -> int | None:
        return (self.top_logprobs or 0) if self.logprobs else None

    def unsupported_field(self) -> str | None:
        """A top-level field first, else the first message's (`messages[2].role`, OpenAI's `param`)."""
        return super().unsupported_field() or next(
            (f"messages[{i}].{name}" for i, m in enumerate(self.messages) if (name := m.unsupported_field())), None)

    @property
    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


class PromptTokensDetails(Strict):
    cached_tokens: int  # prompt tokens read from the prefix cache instead of computed


class Usage(Strict):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    # OpenAI's field (vLLM's with --enable-prompt-tokens-details); left out of the JSON when the
    # engine did not report the cached tokens.
    prompt_tokens_details: PromptTokensDetails | None = Field(None, exclude_if=lambda value: value is None)


class AssistantMessage(Strict):
    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: str | None = None


class TopLogprob(Strict):
    token: str
    logprob: float
    bytes: list[int] | None


class ChatTokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChatLogprobs(Strict):
    content: list[ChatTokenLogprob] | None


class ChatChoice(Strict):
    index: int
    message: AssistantMessage
    finish_reason: Literal["stop", "length", "abort"] | None
    logprobs: ChatLogprobs | None = None


class ChatCompletionResponse(Strict):
    id: str = Field(default_factory=lambda: _new_id("chatcmpl"))
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChatChoice]
    usage: Usage


class ChatDelta(Strict):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatChunkChoice(Strict):
    index: int
    delta: ChatDelta
    finish_reason: Literal["stop", "length", "abort"] | None = None
    logprobs: ChatLogprobs | None = None


class ChatCompletionChunk(Strict):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None
    # loragate extra, on the last chunk of a structured stream: the output's validation verdict.
    structured_output: Literal["valid", "invalid", "truncated", "unchecked"] | None = None


# ------------------------------------------------------------ text completion
class CompletionRequest(SamplingFields):
    prompt: str = Field(min_length=1)
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=MAX_LOGPROBS)

    @property
    def top_logprobs_requested(self) -> int | None:
        return self.logprobs


class CompletionLogprobs(Strict):
    text_offset: list[int]
    token_logprobs: list[float | None]
    tokens: list[str]
    top_logprobs: list[dict[str, float] | None]


class CompletionChoice(Strict):
    index: int
    text: str
    finish_reason: Literal["stop", "length", "abort"] | None
    logprobs: CompletionLogprobs | None = None


class CompletionResponse(Strict):
    id: str = Field(default_factory=lambda: _new_id("cmpl"))
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    structured_output: Literal["valid", "invalid", "truncated", "unchecked"] | None = None  # as in chat chunks


# -------------------------------------------------------------------- models
class ModelCard(Strict):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "loragate"
    root: str | None = None
    parent: str | None = None


class ModelList(Strict):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int | None = None) -> Usage:
    details = PromptTokensDetails(cached_tokens=cached_tokens) if cached_tokens is not None else None
    return Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                 total_tokens=prompt_tokens + completion_tokens, prompt_tokens_details=details)


# Protocol models that do not forbid unknown fields, and why (tests/unit/api/test_protocol_strict.py
# reads this): the request bodies collect unknown top-level fields so that `translate.check_fields`
# refuses them with OpenAI's own answer, 400 `unrecognized_argument` or `unsupported_parameter`
# naming the field, and lets the documented harmless ones (IGNORED_FIELDS, "off" values) through.
EXTRA_ALLOWED: dict[type[BaseModel], str] = {
    model: "request body: unknown top-level fields are refused by translate.check_fields (400 naming them)"
    for model in (SamplingFields, ChatCompletionRequest, CompletionRequest)
}
