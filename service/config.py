"""Service configuration: defaults < config file < `LORAGATE_*` environment < CLI flags.

`Settings` holds the process's own settings and one group per package that owns its options:
`engine` (`EngineSettings`), `generation`, `structured`, `triage`, `adapters`, each defined (with
its defaults and descriptions) in its package and handed to it as it is, and the HTTP layer's
`limits` and `auth`, defined here because the API layer sits above this module.

Every setting also has a flat name, the one the CLI, the Makefile, the deploy manifests and the
README use: the field's own name (`max_model_len` is `engine.max_model_len`) or the legacy name in
`RENAMED`. Flat names work everywhere: `loragate serve --max-model-len 512` (the only form of the
flags), `LORAGATE_MAX_MODEL_LEN=512`, `max_model_len: 512` in the config file, `Settings(max_model_len=512)`;
so do nested ones: `LORAGATE_ENGINE__MAX_MODEL_LEN=512`, `engine: {max_model_len: 512}`,
`Settings(engine=...)`. Within one source a flat name wins over its nested form.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    CliSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from service.adapters import AdapterSettings
from service.engine import EngineSettings
from service.generation import GenerationSettings
from service.structured import StructuredSettings
from service.tasks.triage import TriageSettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
CONFIG_FILE_ENV = "LORAGATE_CONFIG_FILE"
ENV_PREFIX = "LORAGATE_"


def default_cache_dir() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "loragate"


class AdmissionLimits(BaseModel):
    """`Settings.limits`: admission control of the generation endpoints and the body-size cap
    (service/api/admission.py, service/api/body_limit.py)."""

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


class AuthSettings(BaseModel):
    """`Settings.auth`: API keys (service/api/keys.py, auth.py); keys are read once at start."""

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


class Settings(BaseSettings):
    """Everything `loragate serve` can be told. Defaults run on a 2-core CPU machine."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="ignore",
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

    # The packages' own options
    engine: EngineSettings = Field(default_factory=EngineSettings)
    generation: GenerationSettings = Field(default_factory=GenerationSettings)
    structured: StructuredSettings = Field(default_factory=StructuredSettings)
    triage: TriageSettings = Field(default_factory=TriageSettings)

    # The process
    drain_timeout_s: float = Field(
        30.0, ge=0, description="On SIGTERM: longest wait for requests in flight before the process stops.",
    )
    engine_watchdog_interval_s: float = Field(
        2.0, gt=0, description="How often the watchdog checks the engine; a dead engine stops the process (exit 3).",
    )
    request_timeout_s: float = Field(
        600.0, gt=0, description="Longest a generation request may take; then 504 and the engine request is aborted.",
    )

    # LoRA adapters and A/B routes
    adapters: AdapterSettings = Field(default_factory=AdapterSettings)
    routes_file: Path | None = Field(
        None, description="YAML or JSON file of routes (`{name: {variants: [...], shadow, guard}}`) applied at "
        "start when they differ from the stored ones.",
    )

    # The HTTP layer: admission control and keys
    limits: AdmissionLimits = Field(default_factory=AdmissionLimits)
    auth: AuthSettings = Field(default_factory=AuthSettings)

    # Observability
    stats_window_s: float = Field(
        900.0, ge=1, description="Longest window GET /v1/stats can report on (seconds of requests kept)."
    )
    prometheus_url: str | None = Field(
        None, description="Prometheus server (e.g. http://prometheus:9090) that scrapes every replica: route guards "
        "and reports then judge the whole fleet's figures from it (PromQL over the route_version-labelled series); "
        "unset, each replica judges its own in-process samples. Unreachable, the guards hold.",
    )
    prometheus_timeout_s: float = Field(
        2.0, gt=0, description="Longest wait for one Prometheus query of a route guard or report.",
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

    @field_validator("model", "cache_dir", "routes_file", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @model_validator(mode="after")
    def _store_in_the_cache(self) -> Settings:
        # Runtime state stays out of the source tree: the store defaults to the cache directory.
        if self.adapters.store is None:
            self.adapters.store = self.cache_dir / "adapter-store"
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
        # Highest priority first; each source's flat names are nested before the sources are merged,
        # so a flat name in one source and the nested form in another keep their sources' order.
        sources: list[PydanticBaseSettingsSource] = [
            _Nested(init_settings), _Nested(EnvSettingsSource(FlatSettings)), env_settings]
        config_file = os.environ.get(CONFIG_FILE_ENV)
        if config_file:
            sources.append(_Nested(YamlConfigSettingsSource(settings_cls, yaml_file=config_file)))
        return tuple(sources)


# ------------------------------------------------------------------ flat names
# Flat names whose nested field is named otherwise; every other field's flat name is its own.
RENAMED = {
    "structured_output_fallbacks": "structured.fallback_backends",
    "schema_max_bytes": "structured.max_schema_bytes",
    "schema_max_depth": "structured.max_depth",
    "schema_max_enum_values": "structured.max_enum_values",
    "schema_max_properties": "structured.max_properties",
    "regex_max_length": "structured.max_regex_length",
    "grammar_max_bytes": "structured.max_grammar_bytes",
    "constraint_max_choices": "structured.max_choices",
    "structured_compile_timeout_s": "structured.compile_timeout_s",
    "constraint_workers": "structured.compile_workers",
    "constraint_wait_s": "structured.compile_wait_s",
    "constraint_max_waiting": "structured.compile_max_waiting",
    "constraint_cache_size": "structured.cache_entries",
    "engine_stall_timeout_s": "engine.stall_timeout_s",
    "triage_batch_max": "triage.batch_max",
    "triage_batch_concurrency": "triage.batch_concurrency",
    "triage_urgent_threshold": "triage.urgent_threshold",
    "triage_review_threshold": "triage.review_threshold",
    "triage_priority_review_threshold": "triage.priority_review_threshold",
    "adapter_store": "adapters.store",
    "adapter_roots": "adapters.allowed_roots",
    "adapter_max_bytes": "adapters.max_adapter_bytes",
    "adapter_drain_timeout_s": "adapters.drain_timeout_s",
    "registry_sync_interval_s": "adapters.sync_interval_s",
    "initial_adapters": "adapters.initial",
    "adapter_uri_schemes": "adapters.uri_schemes",
    "adapter_uri_allow": "adapters.uri_allow",
    "adapter_download_timeout_s": "adapters.download_timeout_s",
    "adapter_resolver_uri": "adapters.resolver_uri",
    "adapter_resolver_negative_ttl_s": "adapters.resolver_negative_ttl_s",
}


def _group(field: FieldInfo) -> type[BaseModel] | None:
    annotation = field.annotation
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _flat_fields() -> dict[str, tuple[tuple[str, ...], FieldInfo]]:
    """Every flat name -> (its path in Settings, its field), in declaration order."""
    flat_of = {path: flat for flat, path in RENAMED.items()}
    fields: dict[str, tuple[tuple[str, ...], FieldInfo]] = {}
    for name, field in Settings.model_fields.items():
        group = _group(field)
        members = [((name,), field)] if group is None else [((name, sub), info) for sub, info in
                                                              group.model_fields.items()]
        for path, info in members:
            flat = flat_of.get(".".join(path), path[-1])
            if flat in fields:
                raise TypeError(f"two settings have the flat name {flat!r}: rename one in RENAMED")
            fields[flat] = (path, info)
    if unknown := set(flat_of) - {".".join(path) for path, _ in fields.values()}:
        raise TypeError(f"RENAMED names no such setting: {sorted(unknown)}")
    return fields


FLAT_FIELDS = _flat_fields()
SETTING_NAMES = tuple(FLAT_FIELDS)  # every flag (`--max-model-len`) and env name (`LORAGATE_MAX_MODEL_LEN`)


def nest(values: Mapping[str, Any]) -> dict[str, Any]:
    """`{"max_model_len": 512}` -> `{"engine": {"max_model_len": 512}}`; other keys stay as they are."""
    nested: dict[str, Any] = {}
    grouped: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        path = FLAT_FIELDS.get(key.lower(), ((key,), None))[0]
        if len(path) == 2:
            grouped.setdefault(path[0], {})[path[1]] = value
        else:
            nested[path[0]] = value
    for group, members in grouped.items():
        given = nested.get(group)
        given = dict(given) if isinstance(given, BaseModel) else given if isinstance(given, dict) else {}
        nested[group] = {**given, **members}
    return nested


class _Nested(PydanticBaseSettingsSource):
    """A settings source whose flat names are moved to their groups."""

    def __init__(self, source: PydanticBaseSettingsSource) -> None:
        super().__init__(source.settings_cls)
        self.source = source

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # __call__ answers for the whole source

    def __call__(self) -> dict[str, Any]:
        return nest(self.source())


def _flat_field(info: FieldInfo) -> tuple[Any, Any]:
    """The flat surface's copy of a field: its type, default and description (validated by Settings)."""
    default: dict[str, Any] = ({"default_factory": info.default_factory} if info.default_factory is not None
                               else {"default": info.default})
    # An optional switch (unset: the platform decides) stays an `--x/--no-x` flag on the command line.
    annotation = bool if info.annotation == bool | None else info.annotation
    return annotation, Field(description=info.description, **default)


# Every setting under its flat name, the surface the CLI flags and the flat env names are read from.
FlatSettings: type[BaseSettings] = create_model(  # type: ignore[call-overload]
    "FlatSettings", __base__=BaseSettings, __doc__=Settings.__doc__,
    **{flat: _flat_field(info) for flat, (_, info) in FLAT_FIELDS.items()},
)
FlatSettings.model_config.update(SettingsConfigDict(
    env_prefix=ENV_PREFIX, extra="ignore", protected_namespaces=(), cli_kebab_case=True, cli_implicit_flags=True))


def load_settings(cli_args: list[str] | None = None, **overrides: Any) -> Settings:
    """Build settings; `cli_args` (without the subcommand) are parsed as flags, with `--help`."""
    if cli_args is None:
        return Settings(**overrides)
    flags = CliSettingsSource(FlatSettings, cli_prog_name="loragate serve", cli_parse_args=cli_args)()
    return Settings(**{**overrides, **flags})  # flags first, as a CLI source would be
