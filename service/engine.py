"""The vLLM engine behind loragate. This is the only module that imports vLLM.

It speaks in plain pydantic objects (`SamplingOptions`, `AdapterHandle`, `GenerationDelta`) so
the HTTP layer, the registry and the tests never see vLLM types.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

logger = logging.getLogger(__name__)


class EngineState(str, enum.Enum):
    STOPPED = "stopped"
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    DEAD = "dead"


class EngineOptions(BaseModel):
    """What the engine is built from (a projection of `Settings`)."""

    model_dir: Path
    served_model_name: str
    max_model_len: int = 2048
    max_num_seqs: int = 16
    max_num_batched_tokens: int = 1024
    kv_cache_space_gib: float = 1.0
    dtype: str = "bfloat16"
    tensor_parallel_size: int = 1
    structured_output_backend: str = "xgrammar"
    enforce_eager: bool = True
    max_loras: int = 4
    max_cpu_loras: int = 8
    max_lora_rank: int = 64
    grammar_cache_mib: int = 64
    seed: int = 0


class StructuredConstraint(BaseModel):
    """One constrained-decoding rule; exactly one of the fields is set."""

    json_schema: dict[str, Any] | None = None
    json_object: bool | None = None
    regex: str | None = None
    choice: list[str] | None = None
    grammar: str | None = None
    backend: str | None = None  # None: the engine's configured default


class SamplingOptions(BaseModel):
    max_tokens: int = Field(ge=1)
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
    structured: StructuredConstraint | None = None


class AdapterHandle(BaseModel):
    """A LoRA adapter as the engine knows it: a unique integer id and a local folder."""

    name: str
    version: int = Field(1, ge=1)
    engine_id: int = Field(ge=1)
    path: Path


# (running requests, waiting requests, KV cache usage 0-1)
StatsCallback = Callable[[int, int, float], None]

FinishReason = Literal["stop", "length", "abort"]


class GenerationDelta(BaseModel):
    """New output for one choice since the previous delta."""

    index: int
    text: str
    token_count: int
    finish_reason: FinishReason | None = None


class GenerationUpdate(BaseModel):
    """Everything one engine step produced for a request."""

    deltas: list[GenerationDelta]
    finished: bool
    prompt_tokens: int
    queue_seconds: float | None = None  # set once, with the first update


class EngineUnavailableError(RuntimeError):
    """The engine is not (or no longer) able to serve."""


class EngineRequestError(ValueError):
    """vLLM refused the request's parameters (a client error)."""


class GenerationFailedError(RuntimeError):
    """The engine failed this one request (for example, its grammar did not compile)."""


STRUCTURED_OUTPUT_BACKENDS = ("xgrammar", "guidance", "outlines")
WHITESPACE_FREE_BACKENDS = ("xgrammar", "guidance")


class Engine:
    """Owns one vLLM `AsyncLLM`: start, generate, adapters, health, shutdown."""

    def __init__(self, options: EngineOptions, on_stats: StatsCallback | None = None) -> None:
        self.options = options
        self._on_stats = on_stats
        self.state = EngineState.STOPPED
        self._llm: Any = None
        self._tokenizer: Any = None
        self.start_seconds: float | None = None
        self.started_at: float | None = None  # wall clock, for /v1/models `created`

    # ----------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        self.state = EngineState.STARTING
        started = time.monotonic()
        try:
            self._llm = await asyncio.to_thread(self._build)
            self._tokenizer = self._llm.get_tokenizer()
        except Exception:
            self.state = EngineState.DEAD
            raise
        self.start_seconds = time.monotonic() - started
        self.started_at = time.time()
        logger.info("engine started in %.1f s", self.start_seconds)

    def mark_ready(self) -> None:
        """Open for traffic; the app calls this once what depends on the engine is set up too."""
        if self.state == EngineState.STARTING and self._llm is not None:
            self.state = EngineState.READY

    def _build(self) -> Any:
        opts = self.options
        # Read by vLLM's CPU backend when it sizes the KV cache (GiB, whole numbers).
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(max(1, round(opts.kv_cache_space_gib))))
        os.environ.setdefault("VLLM_ALLOW_RUNTIME_LORA_UPDATING", "True")
        # A CPU step under load can take minutes; vLLM's 300 s default would declare the engine dead.
        os.environ.setdefault("VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS", "1800")
        # Bounds xgrammar's cache of compiled grammars (vLLM's default is 512 MiB).
        os.environ.setdefault("VLLM_XGRAMMAR_CACHE_MB", str(opts.grammar_cache_mib))

        from vllm.config import StructuredOutputsConfig
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        args = AsyncEngineArgs(
            model=str(opts.model_dir),
            served_model_name=opts.served_model_name,
            max_model_len=opts.max_model_len,
            max_num_seqs=opts.max_num_seqs,
            max_num_batched_tokens=opts.max_num_batched_tokens,
            kv_cache_memory_bytes=int(opts.kv_cache_space_gib * 2**30),
            dtype=opts.dtype,
            tensor_parallel_size=opts.tensor_parallel_size,
            enforce_eager=opts.enforce_eager,
            enable_lora=True,
            max_loras=opts.max_loras,
            max_cpu_loras=opts.max_cpu_loras,
            max_lora_rank=opts.max_lora_rank,
            structured_outputs_config=StructuredOutputsConfig(
                backend=opts.structured_output_backend,
                # Compact JSON: a small model can otherwise emit whitespace until max_tokens.
                disable_any_whitespace=opts.structured_output_backend in WHITESPACE_FREE_BACKENDS,
            ),
            seed=opts.seed,
            disable_log_stats=False,
        )
        stat_loggers = [_stats_forwarder(self._on_stats)] if self._on_stats else None
        return AsyncLLM.from_engine_args(args, stat_loggers=stat_loggers)

    async def shutdown(self) -> None:
        if self._llm is not None:
            llm, self._llm = self._llm, None
            await asyncio.to_thread(llm.shutdown)
        self.state = EngineState.STOPPED

    def begin_drain(self) -> None:
        if self.state == EngineState.READY:
            self.state = EngineState.DRAINING

    @property
    def is_ready(self) -> bool:
        return self.state == EngineState.READY and not self._engine_errored()

    def _engine_errored(self) -> bool:
        return self._llm is not None and bool(self._llm.errored)

    async def check_health(self) -> bool:
        if self._llm is None or self._engine_errored():
            if self.state == EngineState.READY:
                self.state = EngineState.DEAD
            return False
        try:
            await self._llm.check_health()
        except Exception:
            self.state = EngineState.DEAD
            return False
        return self.state == EngineState.READY

    # -------------------------------------------------------------- tokenization
    def render_chat(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """Apply the model's chat template and tokenize, ready for generation."""
        text = self._tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=True
        )
        return self.tokenize(text)

    def tokenize(self, text: str) -> list[int]:
        # The chat template already writes the special tokens it needs.
        return list(self._tokenizer.encode(text, add_special_tokens=False))

    # ---------------------------------------------------------------- generation
    async def generate(
        self,
        prompt_token_ids: list[int],
        options: SamplingOptions,
        adapter: AdapterHandle | None = None,
        request_id: str | None = None,
    ) -> AsyncIterator[GenerationUpdate]:
        """Stream deltas. Closing or cancelling the iterator aborts the request in the engine."""
        if self._llm is None or self.state not in (EngineState.READY, EngineState.DRAINING):
            raise EngineUnavailableError(f"engine is {self.state.value}")
        from vllm import TokensPrompt
        from vllm.exceptions import VLLMValidationError
        from vllm.v1.engine.exceptions import EngineDeadError

        request_id = request_id or uuid.uuid4().hex
        first = True
        try:
            params = self._sampling_params(options)
            async for output in self._llm.generate(
                TokensPrompt(prompt_token_ids=prompt_token_ids),
                params,
                request_id,
                lora_request=self._lora_request(adapter) if adapter else None,
            ):
                if getattr(output, "error", None) is not None or any(
                    choice.finish_reason == "error" for choice in output.outputs
                ):
                    # e.g. a grammar the backend failed to compile: this request only.
                    error = getattr(output, "error", None)
                    raise GenerationFailedError(error.message if error is not None else "generation failed")
                deltas = [
                    GenerationDelta(
                        index=choice.index,
                        text=choice.text,
                        token_count=len(choice.token_ids),
                        finish_reason=_finish_reason(choice.finish_reason),
                    )
                    for choice in output.outputs
                ]
                queue_seconds = _queue_seconds(output) if first else None
                first = False
                yield GenerationUpdate(
                    deltas=deltas,
                    finished=output.finished,
                    prompt_tokens=len(prompt_token_ids),
                    queue_seconds=queue_seconds,
                )
        except EngineDeadError as exc:
            self.state = EngineState.DEAD
            raise EngineUnavailableError("the engine stopped unexpectedly") from exc
        except (VLLMValidationError, ValueError) as exc:
            raise EngineRequestError(str(exc)) from exc

    def _sampling_params(self, options: SamplingOptions) -> Any:
        from vllm.sampling_params import RequestOutputKind, SamplingParams

        return SamplingParams(
            n=options.n,
            max_tokens=options.max_tokens,
            temperature=options.temperature,
            top_p=options.top_p,
            seed=options.seed,
            stop=options.stop or None,
            frequency_penalty=options.frequency_penalty,
            presence_penalty=options.presence_penalty,
            repetition_penalty=options.repetition_penalty,
            min_tokens=options.min_tokens,
            ignore_eos=options.ignore_eos,
            structured_outputs=self._structured_params(options.structured),
            output_kind=RequestOutputKind.DELTA,
        )

    def _structured_params(self, constraint: StructuredConstraint | None) -> Any:
        if constraint is None:
            return None
        from vllm.sampling_params import StructuredOutputsParams

        params = StructuredOutputsParams(
            json=constraint.json_schema,
            json_object=constraint.json_object,
            regex=constraint.regex,
            choice=constraint.choice,
            grammar=constraint.grammar,
            disable_any_whitespace=True,
        )
        if constraint.backend and constraint.backend != self.options.structured_output_backend:
            # Read by the loragate vLLM plugin (register_vllm_plugin) to pick this backend.
            params._backend = constraint.backend
        return params

    def _lora_request(self, adapter: AdapterHandle) -> Any:
        from vllm.lora.request import LoRARequest

        return LoRARequest(
            lora_name=adapter.name, lora_int_id=adapter.engine_id, lora_path=str(adapter.path)
        )

    # ------------------------------------------------------------------ adapters
    async def load_adapter(self, adapter: AdapterHandle) -> None:
        """Load into the engine's adapter cache now (rather than on first request)."""
        self._require_llm()
        await self._llm.add_lora(self._lora_request(adapter))

    async def unload_adapter(self, engine_id: int) -> None:
        self._require_llm()
        await self._llm.remove_lora(engine_id)

    async def resident_adapter_ids(self) -> set[int]:
        self._require_llm()
        return set(await self._llm.list_loras())

    def _require_llm(self) -> None:
        if self._llm is None:
            raise EngineUnavailableError(f"engine is {self.state.value}")

    # ------------------------------------------------------------------- gauges
    def unfinished_requests(self) -> int:
        return self._llm.get_num_unfinished_requests() if self._llm is not None else 0


def _stats_forwarder(callback: StatsCallback) -> Any:
    """A vLLM stat logger class that hands scheduler gauges to `callback` after every step."""
    from vllm.v1.metrics.loggers import StatLoggerBase

    class _Forwarder(StatLoggerBase):
        def __init__(self, vllm_config: Any, engine_index: int = 0) -> None:
            pass

        def record(self, scheduler_stats: Any, iteration_stats: Any, mm_cache_stats: Any = None,
                   engine_idx: int = 0) -> None:
            if scheduler_stats is not None:
                callback(scheduler_stats.num_running_reqs, scheduler_stats.num_waiting_reqs,
                         float(scheduler_stats.kv_cache_usage))

        def log_engine_initialized(self) -> None:
            pass

    return _Forwarder


def _finish_reason(reason: str | None) -> FinishReason | None:
    if reason is None:
        return None
    if reason in ("stop", "length", "abort"):
        return reason  # type: ignore[return-value]
    return "stop"


def _queue_seconds(output: Any) -> float | None:
    stats = getattr(output, "metrics", None)
    queued, scheduled = getattr(stats, "queued_ts", 0.0), getattr(stats, "scheduled_ts", 0.0)
    if queued and scheduled and scheduled >= queued:
        return scheduled - queued
    return None


# ------------------------------------------------------------------ vLLM plugin
def register_vllm_plugin() -> None:
    """vLLM general plugin (entry point `vllm.general_plugins`), loaded in every vLLM process.

    vLLM 0.32 gives one engine one structured-output backend, fixed by the first structured
    request. loragate needs to retry a schema on another backend when the first fails to compile
    it or its output fails validation, so this lets each request name its backend: the frontend
    validates the request for that backend, and the engine core keeps one backend instance per
    name. Backends share vLLM's packed int32 token bitmask format.
    """
    import dataclasses
    from concurrent.futures import Future

    from vllm.sampling_params import SamplingParams
    from vllm.v1.structured_output import StructuredOutputManager

    if getattr(StructuredOutputManager, "_loragate_multi_backend", False):
        return

    original_validate = SamplingParams._validate_structured_outputs

    def validate(self: Any, model_config: Any, so_config: Any, tokenizer: Any) -> None:
        params = self.structured_outputs
        wanted = getattr(params, "_backend", None) if params is not None else None
        if so_config is not None and wanted and wanted != so_config.backend and not params._backend_was_auto:
            params._backend = None
            so_config = dataclasses.replace(
                so_config, backend=wanted,
                disable_any_whitespace=so_config.disable_any_whitespace and wanted in WHITESPACE_FREE_BACKENDS,
            )
        original_validate(self, model_config, so_config, tokenizer)

    def backend_for(manager: Any, name: str) -> Any:
        backends = manager.__dict__.setdefault("_loragate_backends", {})
        if name not in backends:
            vocab_size = manager.vllm_config.model_config.get_vocab_size()
            backends[name] = _make_structured_backend(name, manager.vllm_config, manager.tokenizer, vocab_size)
            if manager.backend is None:
                manager.backend = backends[name]  # allocates the shared bitmask
        return backends[name]

    def grammar_init(self: Any, request: Any) -> None:
        if request.structured_output_request is None:
            return
        backend_for(self, request.sampling_params.structured_outputs._backend)
        if self._use_async_grammar_compilation:
            grammar: Any = self.executor.submit(self._create_grammar, request)
        else:
            try:
                grammar = self._create_grammar(request)
            except Exception as exc:
                grammar = Future()
                grammar.set_exception(exc)
        request.structured_output_request.grammar = grammar

    def create_grammar(self: Any, request: Any) -> Any:
        backend = backend_for(self, request.sampling_params.structured_outputs._backend)
        request_type, grammar_spec = request.structured_output_request.structured_output_key
        stop_token_ids = request.sampling_params.all_stop_token_ids
        return backend.compile_grammar(request_type, grammar_spec, stop_token_ids=stop_token_ids)

    SamplingParams._validate_structured_outputs = validate
    StructuredOutputManager.grammar_init = grammar_init
    StructuredOutputManager._create_grammar = create_grammar
    StructuredOutputManager._loragate_multi_backend = True
    _patch_cpu_lora_ops()


def _grouped_lora_matmul(inputs: Any, weights: Any, indices: Any, dtype: Any) -> Any:
    """`inputs[t] @ weights[indices[t]].T` for every token t, as one matrix product per
    distinct adapter instead of a per-token gather (vLLM's CPU ops copy the adapter matrices
    for every token). Same indexing as vLLM's ops, including its negative "no adapter" slot."""
    import torch

    stacked = weights.squeeze(1) if weights.dim() == 4 else weights  # (adapters, out, in)
    x = inputs.to(dtype)
    distinct = torch.unique(indices)
    if distinct.numel() == 1:
        return x @ stacked[distinct[0]].to(dtype).T
    out = torch.empty((x.shape[0], stacked.shape[1]), dtype=dtype, device=x.device)
    for index in distinct.tolist():
        rows = (indices == index).nonzero(as_tuple=True)[0]
        out[rows] = x[rows] @ stacked[index].to(dtype).T
    return out


def _patch_cpu_lora_ops() -> None:
    """Swap vLLM's CPU LoRA kernels for grouped matrix products (2-3x faster on CPU in the
    platform measurements; identical results up to float rounding)."""
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return
    from vllm.lora.ops.torch_ops import lora_ops
    from vllm.lora.punica_wrapper import punica_cpu

    def bgmv_shrink(inputs: Any, lora_a_weights: Any, output_tensor: Any, lora_indices_tensor: Any,
                    scaling: float = 1.0) -> None:
        outputs = _grouped_lora_matmul(inputs, lora_a_weights, lora_indices_tensor, output_tensor.dtype)
        output_tensor[:, : outputs.shape[1]] = scaling * outputs

    def bgmv_expand(inputs: Any, lora_b_weights: Any, output_tensor: Any, lora_indices_tensor: Any,
                    add_inputs: bool = True) -> None:
        outputs = _grouped_lora_matmul(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
        limit = 1 if outputs.shape[0] == 1 and output_tensor.shape[0] != 1 else output_tensor.shape[0]
        common = min(outputs.shape[1], output_tensor.shape[1])
        if add_inputs:
            output_tensor[:, :common] += outputs[:limit, :common]
        else:
            output_tensor[:, :common] = outputs[:limit, :common]

    def bgmv_expand_slice(inputs: Any, lora_b_weights: Any, output_tensor: Any, lora_indices_tensor: Any,
                          slice_offset: int, slice_size: int, add_inputs: bool = True) -> None:
        outputs = _grouped_lora_matmul(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
        if add_inputs:
            output_tensor[:, slice_offset: slice_offset + slice_size] += outputs
        else:
            output_tensor[:, slice_offset: slice_offset + slice_size] = outputs

    # lora_ops' sgmv_* call these through module globals; punica_cpu imported them by name.
    for module in (lora_ops, punica_cpu):
        module.bgmv_shrink = bgmv_shrink
        module.bgmv_expand = bgmv_expand
        module.bgmv_expand_slice = bgmv_expand_slice


def _make_structured_backend(name: str, vllm_config: Any, tokenizer: Any, vocab_size: int) -> Any:
    if name == "xgrammar":
        from vllm.v1.structured_output.backend_xgrammar import XgrammarBackend as backend_class
    elif name == "guidance":
        from vllm.v1.structured_output.backend_guidance import GuidanceBackend as backend_class
    elif name == "outlines":
        from vllm.v1.structured_output.backend_outlines import OutlinesBackend as backend_class
    else:
        raise ValueError(f"unsupported structured output backend: {name}")
    return backend_class(vllm_config, tokenizer=tokenizer, vocab_size=vocab_size)
