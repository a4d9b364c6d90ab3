"""Service configuration: defaults < config file < `LORAGATE_*` environment < CLI flags."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
CONFIG_FILE_ENV = "LORAGATE_CONFIG_FILE"

StructuredOutputBackend = Literal["xgrammar", "outlines", "guidance"]


def default_cache_dir() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "loragate"


def default_adapter_store(data: dict[str, Any]) -> Path:
    """`adapter-store` in the (validated) cache directory: runtime state stays out of the source tree."""
    return data["cache_dir"] / "adapter-store"


class Settings(BaseSettings):
    """Everything `loragate serve` can be told. Defaults run on a 2-core CPU machine."""

    model_config = SettingsConfigDict(
        env_prefix="LORAGATE_",
        extra="ignore",
        cli_kebab_case=True,
        cli_implicit_flags=True,
        protected_namespaces=(),
    )

    # HTTP
    host: str = Field("127.0.0.1", description="Interface to listen on (0.0.0.0 in containers).")
    port: int = Field(8000, ge=0, le=65535, description="TCP port to listen on.")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")

    # Model
    model: Path | None = Field(
        None,
        description="Local Hugging Face-format model folder to serve. Default: the SmolLM2-135M-Instruct "
        "folder made by `loragate prepare-model` in the cache directory.",
    )
    served_model_name: str | None = Field(
        None, description="Name clients use in `model`. Default: the model folder's name."
    )
    cache_dir: Path = Field(
        default_factory=default_cache_dir,
        description="Where prepared models are kept.",
    )

    # Engine
    max_model_len: int = Field(2048, ge=64, description="Context length (prompt + completion tokens).")
    max_tokens_limit: int = Field(
        1024, ge=1, description="Largest `max_tokens` a request may ask for; also the default."
    )
    max_n: int = Field(4, ge=1, description="Largest `n` (choices per request).")
    max_num_seqs: int = Field(16, ge=1, description="Sequences the engine runs at once.")
    max_num_batched_tokens: int = Field(
        1024, ge=64, description="Tokens per engine step (long prompts are prefilled in chunks)."
    )
    kv_cache_space_gib: float = Field(1.0, gt=0, description="KV cache memory in GiB.")
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
    structured_output_fallbacks: list[StructuredOutputBackend] = Field(
        default_factory=lambda: ["guidance"],
        description="Backends tried, in order, when the default cannot compile a constraint or its "
        "output fails validation. outlines builds a full automaton per schema: costly on the CPU.",
    )
    schema_max_bytes: int = Field(64 * 1024, ge=1, description="Largest JSON schema accepted (bytes).")
    schema_max_depth: int = Field(32, ge=1, description="Deepest JSON schema nesting accepted.")
    schema_max_enum_values: int = Field(1024, ge=1, description="Most values in one schema enum.")
    schema_max_properties: int = Field(512, ge=1, description="Most properties declared in one schema.")
    regex_max_length: int = Field(2048, ge=1, description="Longest regex constraint accepted.")
    grammar_max_bytes: int = Field(64 * 1024, ge=1, description="Largest EBNF grammar accepted (bytes).")
    structured_compile_timeout_s: float = Field(
        5.0, gt=0, description="A constraint that takes longer to compile is refused (400)."
    )
    constraint_workers: int = Field(2, ge=1, description="Worker processes trial-compiling constraints at once.")
    constraint_wait_s: float = Field(
        5.0, ge=0, description="Longest wait for a free constraint worker; then 503 with Retry-After."
    )
    constraint_max_waiting: int = Field(
        32, ge=0, description="Requests that may wait for a constraint worker; more get 503 with Retry-After."
    )
    constraint_cache_size: int = Field(
        1024, ge=1, description="Constraint verdicts remembered (passes, and refusals), each."
    )
    triage_batch_max: int = Field(32, ge=1, description="Most tickets in one /v1/tickets/triage/batch call.")
    triage_batch_concurrency: int = Field(8, ge=1, description="Tickets of one batch generated at once.")
    grammar_cache_mib: int = Field(64, ge=1, description="Memory for cached compiled grammars (MiB).")
    outlines_compile_timeout_s: int = Field(
        30, ge=1, description="Longest outlines index build in the engine (vLLM's default, 5 s, is less than "
        "a four-field schema takes on a loaded CPU); it runs off the scheduling loop.",
    )
    enforce_eager: bool = Field(True, description="Skip graph capture/compilation (faster start on CPU).")
    drain_timeout_s: float = Field(
        30.0, ge=0, description="On SIGTERM: longest wait for requests in flight before the process stops.",
    )
    engine_watchdog_interval_s: float = Field(
        2.0, gt=0, description="How often the watchdog checks the engine; a dead engine stops the process (exit 3).",
    )
    request_timeout_s: float = Field(
        600.0, gt=0, description="Longest a generation request may take; then 504 and the engine request is aborted.",
    )
    vllm_plugin: bool = Field(
        True, description="loragate's vLLM plugin: per-request structured-output backends (the fallback chain) "
        "and grouped CPU LoRA ops. Off: one backend per engine, vLLM's own LoRA ops.",
    )

    # LoRA adapters
    max_loras: int = Field(4, ge=1, description="Adapters resident in one engine batch.")
    max_cpu_loras: int = Field(8, ge=1, description="Adapters kept loaded in the engine's cache.")
    max_lora_rank: int = Field(64, ge=1, description="Largest adapter rank accepted.")
    adapter_store: Path = Field(
        default_factory=default_adapter_store,
        description="Adapter store folder (manifest, versions, audit log); share it between replicas. "
        "Default: `adapter-store` in the cache directory.",
    )
    adapter_roots: list[Path] = Field(
        default_factory=lambda: [PROJECT_ROOT / "adapters"],
        description="Folders adapters may be registered from by path (JSON list in the env var).",
    )
    adapter_max_bytes: int = Field(256 * 2**20, ge=1, description="Largest adapter (folder or upload), bytes.")
    adapter_drain_timeout_s: float = Field(
        60.0, gt=0, description="How long a swap or removal waits for the old version's requests."
    )
    registry_sync_interval_s: float = Field(
        5.0, gt=0, description="How often to pick up adapter changes made by other replicas."
    )

    # A/B routes and the project's own adapters
    routes_file: Path | None = Field(
        None, description="YAML or JSON file of routes (`{name: {variants: [...], shadow, guard}}`) applied at "
        "start when they differ from the stored ones.",
    )
    initial_adapters: dict[str, Path] = Field(
        default_factory=dict,
        description="Adapters registered at start when the store lacks the name (JSON object name -> folder "
        "inside an allowed root); `make serve` passes the project's trained adapters.",
    )

    # Admission control (service/api/admission.py): generation endpoints are chat, completions, triage
    max_concurrent_requests: int = Field(
        32, ge=1, description="Generation requests handled at once; more wait for a slot (streams hold theirs "
        "until the last chunk).",
    )
    max_queued_requests: int = Field(
        64, ge=0, description="Generation requests that may wait for a slot; more get 429 with Retry-After."
    )
    queue_timeout_s: float = Field(30.0, ge=0, description="Longest wait for a slot; then 429 with Retry-After.")
    rate_limit_rpm: int = Field(
        0, ge=0, description="Generation requests per minute per API key (else client IP); 0: no limit."
    )
    rate_limit_tpm: int = Field(
        0, ge=0, description="Estimated tokens per minute per API key (else client IP): prompt bytes / 4 + "
        "max_tokens x n, counted at admission; 0: no limit.",
    )
    max_body_bytes: int = Field(
        4 * 2**20, ge=1, description="Largest request body (bytes); adapter uploads are capped by adapter_max_bytes."
    )
    max_prompt_chars: int = Field(
        100_000, ge=1, description="Most prompt characters: all message contents of a chat, or a completion's prompt."
    )
    max_messages: int = Field(256, ge=1, description="Most messages in one chat request.")

    # Observability
    stats_window_s: float = Field(
        900.0, ge=1, description="Longest window GET /v1/stats can report on (seconds of requests kept)."
    )
    access_log: bool = Field(
        True, description="One JSON line per request on the `loragate.access` logger (replaces uvicorn's)."
    )
    access_log_bodies: bool = Field(
        False, description="Also log request and response bodies in access log lines, each cut to 2 KiB."
    )
    log_format: Literal["json", "text"] = Field(
        "json", description="Service log lines: one JSON object each, or plain text."
    )

    # Authentication (service/api/auth.py): keys are read once at start
    api_keys: list[str] = Field(
        default_factory=list, repr=False, description="API keys for /v1/* (JSON list in the env var); sent as "
        "`Authorization: Bearer KEY`.",
    )
    api_keys_file: Path | None = Field(
        None, description="File of API keys, one per line (`id:key` names a key; blank lines and # comments "
        "are skipped).",
    )
    admin_keys: list[str] = Field(
        default_factory=list, repr=False, description="Admin keys for /admin/* (they also work on /v1/*); JSON list in "
        "the env var.",
    )
    admin_keys_file: Path | None = Field(None, description="File of admin keys, same format as api_keys_file.")
    auth_disabled: bool = Field(
        False, description="Serve without keys (every endpoint open); refused on a non-loopback host unless "
        "allow_insecure_bind. `make serve` sets it when no keys are given.",
    )
    allow_insecure_bind: bool = Field(
        False, description="Allow auth_disabled on a host other than 127.0.0.1, ::1 or localhost.",
    )
    metrics_require_key: bool = Field(False, description="GET /metrics needs a key (any valid key).")

    @field_validator("model", "cache_dir", "adapter_store", "routes_file", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @field_validator("adapter_roots", mode="after")
    @classmethod
    def _expand_roots(cls, value: list[Path]) -> list[Path]:
        return [root.expanduser() for root in value]

    @model_validator(mode="after")
    def _one_process_runs_one_worker(self) -> Settings:
        if self.distributed_executor_backend == "uni" and self.tensor_parallel_size * self.pipeline_parallel_size > 1:
            raise ValueError("distributed_executor_backend `uni` runs one worker: tensor and pipeline parallel size "
                             "must be 1 (use `mp` or `ray`)")
        return self

    @property
    def default_model_dir(self) -> Path:
        return self.cache_dir / "models" / DEFAULT_MODEL_NAME

    @property
    def model_dir(self) -> Path:
        return self.model if self.model is not None else self.default_model_dir

    @property
    def model_name(self) -> str:
        return self.served_model_name or self.model_dir.name

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_FILE_ENV)
        if config_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)


def load_settings(cli_args: list[str] | None = None, **overrides: Any) -> Settings:
    """Build settings; `cli_args` (without the subcommand) are parsed as flags, with `--help`."""
    if cli_args is None:
        return Settings(**overrides)
    return Settings(_cli_parse_args=cli_args, _cli_prog_name="loragate serve", **overrides)
