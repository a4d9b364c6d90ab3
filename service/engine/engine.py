"""The vLLM engine behind loragate: the only code that imports vLLM (with `plugins/`).

It speaks in the plain values of `service.engine.types` (`SamplingOptions`, `AdapterHandle`,
`GenerationUpdate`) so the layers above and the tests never see vLLM types.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from service.engine.outputs import cached_tokens, finish_reason, finite, queue_seconds
from service.engine.platform import EngineLayout, detect_platform, engine_layout
from service.engine.progress import ProgressMonitor
from service.engine.step_stats import step_listener
from service.engine.streams import until_dead
from service.engine.types import (
    WHITESPACE_FREE_BACKENDS,
    AdapterHandle,
    EngineOptions,
    EngineRequestError,
    EngineState,
    EngineUnavailableError,
    GenerationDelta,
    GenerationFailedError,
    GenerationUpdate,
    SamplingOptions,
    SchedulerStep,
    StatsCallback,
    StructuredConstraint,
    TokenLogprob,
    TopToken,
)

logger = logging.getLogger(__name__)


class Engine:
    """Owns one vLLM `AsyncLLM`: start, generate, adapters, health, shutdown."""

    def __init__(self, options: EngineOptions, on_stats: StatsCallback | None = None,
                 platform: str | None = None) -> None:
        self.options = options
        self._platform = platform  # None: vLLM's platform, detected on first use
        self._on_stats = on_stats
        self.progress = ProgressMonitor()
        self._state = EngineState.STOPPED
        # Set once the engine is known dead: vLLM leaves a request of a killed engine process waiting
        # forever, so every stream in flight also waits on this (see `until_dead`).
        self._died = asyncio.Event()
        self._llm: Any = None
        self._tokenizer: Any = None
        self.start_seconds: float | None = None
        self.started_at: float | None = None  # wall clock, for /v1/models `created`

    @property
    def state(self) -> EngineState:
        return self._state

    @state.setter
    def state(self, value: EngineState) -> None:
        self._state = value
        if value == EngineState.DEAD:
            self._died.set()

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
        if (space := self.layout.cpu_kv_cache_space_env) is not None:
            # Read by vLLM's CPU backend when it sizes the KV cache (GiB, whole numbers).
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", space)
        os.environ.setdefault("VLLM_ALLOW_RUNTIME_LORA_UPDATING", "True")
        # A CPU step under load can take minutes; vLLM's 300 s default would declare the engine dead.
        os.environ.setdefault("VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS", "1800")
        # Bounds xgrammar's cache of compiled grammars (vLLM's default is 512 MiB).
        os.environ.setdefault("VLLM_XGRAMMAR_CACHE_MB", str(opts.grammar_cache_mib))
        # outlines builds its index in a grammar thread, so a long build delays only its request.
        os.environ.setdefault("VLLM_REGEX_COMPILATION_TIMEOUT_S", str(opts.outlines_compile_timeout_s))
        # Turns loragate's vLLM plugin on in this process and the engine processes it starts
        # (the plugin stays off in any other vLLM process of the environment).
        from service.engine.plugins import ACTIVATION_ENV

        os.environ[ACTIVATION_ENV] = "1" if opts.vllm_plugin else "0"
        if self.executor_backend == "uni":
            # Without this vLLM's CPU platform replaces `uni` with `mp`; AsyncLLM keeps its
            # engine-core process either way (only vLLM's offline LLMEngine reads it otherwise).
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"

        from vllm.v1.engine.async_llm import AsyncLLM

        args = self.engine_args()
        stat_loggers = [step_listener(self._on_step)]
        return AsyncLLM.from_engine_args(args, stat_loggers=stat_loggers)

    @property
    def layout(self) -> EngineLayout:
        """The settings with this platform's defaults (eager mode, KV cache size) filled in."""
        return engine_layout(self.options, self._platform or detect_platform())

    @property
    def executor_backend(self) -> str | None:
        """The configured backend; unset and one worker: `uni`, the model in the engine-core
        process. vLLM's CPU default (`mp`) adds a worker process, and the engine core busy-polls
        it for every step's result (about a whole core on the 2-core machine, profiled in
        loadtests/results), so on small CPU machines the model computed on half the cores."""
        opts = self.options
        one_worker = opts.tensor_parallel_size * opts.pipeline_parallel_size == 1
        if opts.distributed_executor_backend is None and one_worker:
            return "uni"
        return opts.distributed_executor_backend

    def engine_args(self) -> Any:
        """vLLM's engine arguments for these options (cheap: nothing is loaded)."""
        from vllm.config import StructuredOutputsConfig
        from vllm.engine.arg_utils import AsyncEngineArgs

        opts, layout = self.options, self.layout
        memory: dict[str, Any] = ({"kv_cache_memory_bytes": layout.kv_cache_bytes} if layout.kv_cache_bytes
                                  else {"gpu_memory_utilization": layout.gpu_memory_utilization})
        return AsyncEngineArgs(
            model=str(opts.model_dir),
            served_model_name=opts.served_model_name,
            max_model_len=opts.max_model_len,
            max_num_seqs=opts.max_num_seqs,
            max_num_batched_tokens=opts.max_num_batched_tokens,
            **memory,
            dtype=opts.dtype,
            tensor_parallel_size=opts.tensor_parallel_size,
            pipeline_parallel_size=opts.pipeline_parallel_size,
            distributed_executor_backend=self.executor_backend,
            enforce_eager=layout.enforce_eager,
            block_size=layout.block_size,
            # Explicit, not vLLM's per-model default. Cached blocks are keyed per adapter: vLLM's
            # `generate_block_hash_extra_keys` (v1/core/kv_cache_utils.py) adds the LoRA name and path
            # (`_gen_lora_extra_hash_keys`) and the request's `cache_salt` to every block hash.
            enable_prefix_caching=opts.enable_prefix_caching,
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
            # Lower-priority work (a route's shadow requests) waits behind client requests.
            scheduling_policy="priority",
            disable_log_stats=False,
        )

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

    @property
    def stalled(self) -> bool:
        """The engine has had work for `stall_timeout_s` without finishing a step (hung, not dead)."""
        return self.progress.stalled_seconds() >= self.options.stall_timeout_s

    def _on_step(self, step: SchedulerStep | None) -> None:
        self.progress.step(None if step is None else step.running + step.waiting)
        if step is None:
            return
        if self._on_stats is not None:
            self._on_stats(step)

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

    def detokenize(self, token_ids: list[int]) -> str:
        return str(self._tokenizer.decode(list(token_ids)))

    # ---------------------------------------------------------------- generation
    async def generate(
        self,
        prompt_token_ids: list[int],
        options: SamplingOptions,
        adapter: AdapterHandle | None = None,
        request_id: str | None = None,
        priority: int = 0,
        cache_salt: str | None = None,
    ) -> AsyncIterator[GenerationUpdate]:
        """Stream deltas. Closing or cancelling the iterator aborts the request in the engine.
        `cache_salt` salts the prefix-cache keys of the prompt's blocks (none shared across salts)."""
        if self._llm is None or self.state not in (EngineState.READY, EngineState.DRAINING):
            raise EngineUnavailableError(f"engine is {self.state.value}")
        from vllm import TokensPrompt
        from vllm.exceptions import VLLMValidationError
        from vllm.v1.engine.exceptions import EngineDeadError

        request_id = request_id or uuid.uuid4().hex
        first = True
        self.progress.request_started()
        try:
            params = self._sampling_params(options)
            prompt = (TokensPrompt(prompt_token_ids=prompt_token_ids, cache_salt=cache_salt) if cache_salt
                      else TokensPrompt(prompt_token_ids=prompt_token_ids))
            async for output in until_dead(self._died, self._llm.generate(
                prompt,
                params,
                request_id,
                lora_request=self._lora_request(adapter) if adapter else None,
                priority=priority,
            )):
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
                        finish_reason=finish_reason(choice.finish_reason),
                        logprobs=self._logprobs(choice) if options.logprobs is not None else None,
                    )
                    for choice in output.outputs
                ]
                queued = queue_seconds(output) if first else None
                first = False
                yield GenerationUpdate(deltas=deltas, prompt_tokens=len(prompt_token_ids),
                                       queue_seconds=queued, cached_prompt_tokens=cached_tokens(output))
        except EngineDeadError as exc:
            self.state = EngineState.DEAD
            raise EngineUnavailableError("the engine stopped unexpectedly") from exc
        except VLLMValidationError as exc:
            raise EngineRequestError(str(exc)) from exc
        except ValueError as exc:
            if not first:  # after output began it is a bug, not the request's fault: a 500
                raise
            # vLLM validates a request's parameters with plain ValueErrors while admitting it.
            raise EngineRequestError(str(exc)) from exc
        finally:
            self.progress.request_ended()

    def _logprobs(self, choice: Any) -> list[TokenLogprob]:
        """The new tokens' logprobs: the sampled token plus the top alternatives by rank."""
        out = []
        for token_id, position in zip(choice.token_ids, choice.logprobs or []):
            ranked = sorted(position.items(), key=lambda item: item[1].rank or 0)
            top = [TopToken(token_id=tid, token=self._token_text(tid, lp), logprob=finite(lp.logprob))
                   for tid, lp in ranked if lp.rank is not None and lp.rank >= 1]
            chosen = position.get(token_id)
            out.append(TokenLogprob(
                token_id=token_id, token=self._token_text(token_id, chosen),
                logprob=finite(chosen.logprob) if chosen is not None else -9999.0, top=top,
            ))
        return out

    def _token_text(self, token_id: int, logprob: Any) -> str:
        decoded = getattr(logprob, "decoded_token", None)
        return decoded if decoded is not None else self._tokenizer.decode([token_id])

    @property
    def vocab_size(self) -> int:
        """Token ids a request may name (logit_bias, stop_token_ids, allowed_token_ids)."""
        if self._llm is None:
            raise EngineUnavailableError(f"engine is {self.state.value}")
        return int(self._llm.model_config.get_vocab_size())

    def _sampling_params(self, options: SamplingOptions) -> Any:
        """The one mapping to vLLM: SamplingOptions' fields are SamplingParams' own names."""
        from vllm.sampling_params import RequestOutputKind, SamplingParams

        if options.max_tokens is None:
            raise EngineRequestError("max_tokens must be decided before a request reaches the engine")
        fields = options.model_dump(exclude={"structured"})
        return SamplingParams(**fields, structured_outputs=self._structured_params(options.structured),
                              output_kind=RequestOutputKind.DELTA)

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
            disable_any_whitespace=constraint.disable_any_whitespace,
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

    async def pin_adapter(self, engine_id: int) -> None:
        """Keep a loaded adapter out of the engine's LRU eviction (vLLM unpins it when it is removed)."""
        self._require_llm()
        await self._llm.pin_lora(engine_id)

    async def resident_adapter_ids(self) -> set[int]:
        self._require_llm()
        return set(await self._llm.list_loras())

    def _require_llm(self) -> None:
        if self._llm is None:
            raise EngineUnavailableError(f"engine is {self.state.value}")

    # ------------------------------------------------------------------- gauges
    def unfinished_requests(self) -> int:
        return self._llm.get_num_unfinished_requests() if self._llm is not None else 0
