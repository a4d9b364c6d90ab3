"""The engine's vocabulary: plain pydantic values every layer passes to and from the engine.

No vLLM here, so importing a type never imports the engine.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class EngineState(str, enum.Enum):
    STOPPED = "stopped"
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    DEAD = "dead"


StructuredOutputBackend = Literal["xgrammar", "outlines", "guidance"]


class EngineSettings(BaseModel):
    """`Settings.engine`: how the engine runs the model (`loragate serve --max-model-len ...`)."""

    max_model_len: int = Field(2048, ge=64, description="Context length (prompt + completion tokens).")
    max_num_seqs: int = Field(16, ge=1, description="Sequences the engine runs at once.")
    max_num_batched_tokens: int = Field(
        1024, ge=64, description="Tokens per engine step (long prompts are prefilled in chunks)."
    )
    kv_cache_space_gib: float | None = Field(
        None, gt=0, description="KV cache memory per device in GiB; unset: 1 GiB on CPU, on GPU what "
        "`gpu_memory_utilization` leaves after the weights (service/engine/platform.py).",
    )
    gpu_memory_utilization: float = Field(
        0.9, gt=0, le=1, description="GPU only, when `kv_cache_space_gib` is unset: the share of each GPU's memory "
        "the engine may use (weights, activations, CUDA graphs, KV cache); vLLM sizes the KV cache to fill it.",
    )
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field("bfloat16", description="Weights dtype.")
    tensor_parallel_size: int = Field(1, ge=1, description="vLLM tensor parallel size.")
    pipeline_parallel_size: int = Field(1, ge=1, description="vLLM pipeline parallel size (stages, e.g. nodes).")
    distributed_executor_backend: Literal["uni", "mp", "ray"] | None = Field(
        None, description="How vLLM runs the model: `uni` (inside the engine-core process: one process fewer, "
        "one model copy, tensor x pipeline size 1), `mp` (worker processes on this node), `ray` (a Ray cluster, "
        "needed when tensor x pipeline size exceeds this node's GPUs); unset: `uni` for one worker, else vLLM chooses.",
    )
    structured_output_backend: StructuredOutputBackend = Field(
        "xgrammar", description="Default constrained-decoding backend."
    )
    enforce_eager: bool | None = Field(
        None, description="Skip graph capture/compilation; unset: on for CPU (faster start), off on GPU (CUDA graphs).",
    )
    block_size: int | None = Field(
        None, ge=16, multiple_of=16, description="Tokens per KV cache block, the prefix cache's unit (only whole "
        "blocks are reused); unset: 32 on CPU (vLLM's CPU default is 128), vLLM's default (16) on GPU.",
    )
    enable_prefix_caching: bool = Field(
        True, description="Reuse the KV cache of a prompt prefix another request computed (e.g. the triage "
        "prompt's shared instructions), on CPU and GPU; cached blocks are keyed per adapter and per `cache_salt`.",
    )
    max_loras: int = Field(4, ge=1, description="Adapters resident in one engine batch.")
    max_cpu_loras: int = Field(8, ge=1, description="Adapters kept loaded in the engine's cache.")
    max_lora_rank: int = Field(64, ge=1, description="Largest adapter rank accepted.")
    grammar_cache_mib: int = Field(64, ge=1, description="Memory for cached compiled grammars (MiB).")
    outlines_compile_timeout_s: int = Field(
        30, ge=1, description="Longest outlines index build in the engine (vLLM's default, 5 s, is less than "
        "a four-field schema takes on a loaded CPU); it runs off the scheduling loop.",
    )
    stall_timeout_s: float = Field(
        120.0, gt=0, description="An engine with work that finishes no step for this long is stalled: readiness "
        "turns 503, and if it stalls twice as long the process exits with code 4 so a supervisor restarts it.",
    )
    vllm_plugin: bool = Field(
        True, description="loragate's vLLM plugin: per-request structured-output backends (the fallback chain) "
        "and grouped CPU LoRA ops. Off: one backend per engine, vLLM's own LoRA ops.",
    )

    @model_validator(mode="after")
    def _one_process_runs_one_worker(self) -> Self:
        if self.distributed_executor_backend == "uni" and self.tensor_parallel_size * self.pipeline_parallel_size > 1:
            raise ValueError("distributed_executor_backend `uni` runs one worker: tensor and pipeline parallel size "
                             "must be 1 (use `mp` or `ray`)")
        return self


class EngineOptions(EngineSettings):
    """What the engine is built from: its settings and the model it serves (named by `Settings`)."""

    model_dir: Path
    served_model_name: str
    seed: int = 0


class StructuredConstraint(BaseModel):
    """One constrained-decoding rule; exactly one of the fields is set."""

    json_schema: dict[str, Any] | None = None
    json_object: bool | None = None
    regex: str | None = None
    choice: list[str] | None = None
    grammar: str | None = None
    backend: str | None = None  # None: the engine's configured default
    # Compact JSON by default: a small model can otherwise emit whitespace until max_tokens.
    disable_any_whitespace: bool = True


class SamplingOptions(BaseModel):
    """How to sample one request: built once from the request at the edge, carried unchanged to the
    engine, which alone maps it to vLLM's `SamplingParams`. Field names and defaults are vLLM's
    (`SamplingParams`), so the mapping is by name; a new sampling field is added here and where a
    request carries it."""

    max_tokens: int | None = Field(None, ge=1)  # None: what the context leaves (the generation service decides)
    temperature: float = 1.0
    top_p: float = 1.0
    n: int = 1
    seed: int | None = None
    stop: list[str] = Field(default_factory=list)
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    repetition_penalty: float = 1.0
    min_tokens: int = 0
    ignore_eos: bool = False
    # vLLM's options beyond OpenAI's (defaults: off)
    top_k: int = 0  # 0 or -1: all tokens
    min_p: float = 0.0
    stop_token_ids: list[int] = Field(default_factory=list)
    include_stop_str_in_output: bool = False
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    logprobs: int | None = None  # top alternatives per sampled token (0: the sampled token only)
    logit_bias: dict[int, float] | None = None
    allowed_token_ids: list[int] | None = None
    bad_words: list[str] = Field(default_factory=list)
    structured: StructuredConstraint | None = None  # set by the generation service for each decoding attempt

    def named_token_ids(self) -> dict[str, list[int]]:
        """Every token id the client named, by field (checked against the vocabulary)."""
        return {"logit_bias": list(self.logit_bias or {}), "allowed_token_ids": self.allowed_token_ids or [],
                "stop_token_ids": self.stop_token_ids}


class AdapterHandle(BaseModel):
    """A LoRA adapter as the engine knows it: a unique integer id and a local folder."""

    name: str
    version: int = Field(1, ge=1)
    engine_id: int = Field(ge=1)
    path: Path


class SchedulerStep(BaseModel):
    """What vLLM's scheduler reported after one engine step (vLLM's own `vllm:*` metrics carry the
    same figures)."""

    model_config = ConfigDict(frozen=True)

    running: int = Field(ge=0, description="Requests in the running batch.")
    waiting: int = Field(ge=0, description="Requests queued, those deferred (e.g. waiting for a LoRA slot) "
                         "included, as vLLM's `vllm:num_requests_waiting` counts them.")
    kv_cache_usage: float = Field(ge=0, description="Fraction of the KV cache in use (0-1).")


# Called after every engine step that carried scheduler figures.
StatsCallback = Callable[[SchedulerStep], None]

FinishReason = Literal["stop", "length", "abort"]


class TopToken(BaseModel):
    token_id: int
    token: str
    logprob: float


class TokenLogprob(TopToken):
    """A sampled token's log probability and the most likely alternatives at its position."""

    top: list[TopToken] = Field(default_factory=list)


class GenerationDelta(BaseModel):
    """New output for one choice since the previous delta."""

    index: int
    text: str
    token_count: int
    finish_reason: FinishReason | None = None
    logprobs: list[TokenLogprob] | None = None  # one per new token, when the request asked


class GenerationUpdate(BaseModel):
    """Everything one engine step produced for a request."""

    deltas: list[GenerationDelta]
    prompt_tokens: int
    queue_seconds: float | None = None  # set once, with the first update
    # Prompt tokens read from the prefix cache (vLLM's `num_cached_tokens`, known once the prompt is
    # prefilled); None when vLLM does not report it.
    cached_prompt_tokens: int | None = None


class EngineUnavailableError(RuntimeError):
    """The engine is not (or no longer) able to serve."""


class EngineRequestError(ValueError):
    """vLLM refused the request's parameters (a client error)."""


class GenerationFailedError(RuntimeError):
    """The engine failed this one request (for example, its grammar did not compile)."""


STRUCTURED_OUTPUT_BACKENDS = ("xgrammar", "guidance", "outlines")
WHITESPACE_FREE_BACKENDS = ("xgrammar", "guidance")
