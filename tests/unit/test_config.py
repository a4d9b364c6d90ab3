"""Settings precedence: defaults < YAML config file < LORAGATE_* env < CLI flags."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.adapters import AdapterSettings
from service.cli import main
from service.config import CONFIG_FILE_ENV, FLAT_FIELDS, SETTING_NAMES, Settings, load_settings
from service.engine import EngineSettings
from service.generation import GenerationSettings
from service.structured import StructuredSettings
from service.tasks.triage import TriageSettings


def test_defaults_run_on_a_small_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_FILE_ENV, raising=False)
    settings = load_settings([])
    assert (settings.host, settings.port, settings.engine.max_model_len) == ("127.0.0.1", 8000, 2048)
    assert settings.model_name == "SmolLM2-135M-Instruct"


def test_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "loragate.yaml"
    config.write_text("port: 9001\nmax_n: 3\nmax_model_len: 1024\nadapter_roots: [/srv/adapters]\n")
    monkeypatch.setenv(CONFIG_FILE_ENV, str(config))
    monkeypatch.setenv("LORAGATE_MAX_N", "2")
    settings = load_settings(["--max-model-len", "512"])
    assert settings.port == 9001  # file
    assert settings.generation.max_n == 2  # env beats file
    assert settings.engine.max_model_len == 512  # flag beats file
    assert settings.adapters.allowed_roots == [Path("/srv/adapters")]


def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(CONFIG_FILE_ENV, raising=False)
    with pytest.raises(ValidationError, match="port"):
        load_settings(["--port", "not-a-port"])
    assert main(["serve", "--port", "not-a-port"]) == 2
    assert "port" in capsys.readouterr().err
    monkeypatch.setenv("LORAGATE_STRUCTURED_OUTPUT_BACKEND", "nope")
    with pytest.raises(ValidationError, match="structured_output_backend"):
        load_settings()


# ------------------------------------------------------------------ nested settings, flat names
@pytest.fixture()
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("LORAGATE_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_each_group_is_its_packages_options_class() -> None:
    settings = Settings()
    assert type(settings.engine) is EngineSettings and type(settings.structured) is StructuredSettings
    assert type(settings.generation) is GenerationSettings and type(settings.adapters) is AdapterSettings
    assert type(settings.triage) is TriageSettings
    # Defaults are stated once, in the package: the settings are the package's own defaults.
    assert settings.engine == EngineSettings() and settings.structured == StructuredSettings()
    # the store's default is the one derived setting: the cache directory's adapter-store
    assert settings.adapters == AdapterSettings(store=settings.cache_dir / "adapter-store")


def test_every_flat_name_has_one_place() -> None:
    assert len(SETTING_NAMES) == len(set(SETTING_NAMES)) == 82
    assert FLAT_FIELDS["max_model_len"][0] == ("engine", "max_model_len")
    assert FLAT_FIELDS["schema_max_bytes"][0] == ("structured", "max_schema_bytes")
    assert FLAT_FIELDS["adapter_roots"][0] == ("adapters", "allowed_roots")
    assert FLAT_FIELDS["adapter_resolver_uri"][0] == ("adapters", "resolver_uri")
    assert FLAT_FIELDS["port"][0] == ("port",)
    assert FLAT_FIELDS["triage_urgent_threshold"][0] == ("triage", "urgent_threshold")
    for name, (path, info) in FLAT_FIELDS.items():
        assert info.description, f"{name} has no description (--help shows it)"
        assert len(path) in (1, 2)


FLAT_ENV = {  # one per group, with the value types that need decoding
    "LORAGATE_MAX_MODEL_LEN": ("512", lambda s: s.engine.max_model_len, 512),
    "LORAGATE_VLLM_PLUGIN": ("false", lambda s: s.engine.vllm_plugin, False),
    "LORAGATE_MAX_N": ("2", lambda s: s.generation.max_n, 2),
    "LORAGATE_SCHEMA_MAX_DEPTH": ("7", lambda s: s.structured.max_depth, 7),
    "LORAGATE_STRUCTURED_OUTPUT_FALLBACKS": ('["outlines"]', lambda s: s.structured.fallback_backends, ["outlines"]),
    "LORAGATE_TRIAGE_BATCH_MAX": ("5", lambda s: s.triage.batch_max, 5),
    "LORAGATE_ADAPTER_ROOTS": ('["/srv/a"]', lambda s: s.adapters.allowed_roots, [Path("/srv/a")]),
    "LORAGATE_INITIAL_ADAPTERS": ('{"x": "/srv/a/x"}', lambda s: s.adapters.initial, {"x": Path("/srv/a/x")}),
    "LORAGATE_RATE_LIMIT_RPM": ("60", lambda s: s.limits.rate_limit_rpm, 60),
    "LORAGATE_API_KEYS": ('["k-0123456789abcdef"]', lambda s: s.auth.api_keys, ["k-0123456789abcdef"]),
    "LORAGATE_PORT": ("9002", lambda s: s.port, 9002),
}


@pytest.mark.parametrize("name", sorted(FLAT_ENV))
def test_flat_env_names_still_work(name: str, clean_env: pytest.MonkeyPatch) -> None:
    value, read, expected = FLAT_ENV[name]
    clean_env.setenv(name, value)
    assert read(load_settings()) == expected


def test_nested_env_names_work_too(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("LORAGATE_ENGINE__MAX_MODEL_LEN", "768")
    clean_env.setenv("LORAGATE_ADAPTERS__ALLOWED_ROOTS", '["/srv/b"]')
    clean_env.setenv("LORAGATE_LIMITS__MAX_MESSAGES", "9")
    settings = load_settings()
    assert (settings.engine.max_model_len, settings.adapters.allowed_roots, settings.limits.max_messages) == (
        768, [Path("/srv/b")], 9)
    assert settings.engine.max_num_seqs == EngineSettings().max_num_seqs  # the rest of the group keeps its defaults
    clean_env.setenv("LORAGATE_MAX_MODEL_LEN", "640")  # both in one source: the flat name wins
    assert load_settings().engine.max_model_len == 640


def test_config_file_takes_flat_and_nested_keys(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    config = tmp_path / "loragate.yaml"
    config.write_text("max_model_len: 1024\nschema_max_bytes: 100\nauth_disabled: true\n"
                      "engine: {dtype: float32}\nstructured: {max_depth: 3}\n")
    clean_env.setenv(CONFIG_FILE_ENV, str(config))
    clean_env.setenv("LORAGATE_ENGINE__MAX_NUM_SEQS", "3")
    settings = load_settings(["--max-num-batched-tokens", "128"])
    assert (settings.engine.max_model_len, settings.engine.dtype) == (1024, "float32")
    assert (settings.structured.max_schema_bytes, settings.structured.max_depth) == (100, 3)
    assert settings.auth.auth_disabled is True
    assert (settings.engine.max_num_seqs, settings.engine.max_num_batched_tokens) == (3, 128)  # env, flag


def test_flags_keep_their_flat_names(clean_env: pytest.MonkeyPatch) -> None:
    settings = load_settings(["--max-model-len", "512", "--no-vllm-plugin", "--adapter-roots", '["/srv/c"]',
                              "--constraint-workers", "3", "--triage-batch-concurrency", "2", "--auth-disabled",
                              "--max-body-bytes", "100", "--served-model-name", "m"])
    assert (settings.engine.max_model_len, settings.engine.vllm_plugin) == (512, False)
    assert settings.adapters.allowed_roots == [Path("/srv/c")] and settings.structured.compile_workers == 3
    assert settings.triage.batch_concurrency == 2 and settings.auth.auth_disabled is True
    assert settings.limits.max_body_bytes == 100 and settings.model_name == "m"
    assert load_settings(["--max-n", "3"], max_n=2, port=9003).generation.max_n == 3  # flags beat overrides


def test_help_lists_every_flag_with_its_description(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        load_settings(["--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for name, (_, info) in FLAT_FIELDS.items():
        assert f"--{name.replace('_', '-')}" in text, name
        assert " ".join(str(info.description).split()) in text, name


def test_init_takes_flat_and_nested_names() -> None:
    settings = Settings(max_model_len=300, engine=EngineSettings(dtype="float16"), rate_limit_tpm=5)
    assert (settings.engine.max_model_len, settings.engine.dtype, settings.limits.rate_limit_tpm) == (300, "float16", 5)
    with pytest.raises(ValidationError, match="max_model_len"):
        Settings(max_model_len=1)


def test_the_adapter_store_defaults_to_the_cache_directory_and_a_setting_wins(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("LORAGATE_CACHE_DIR", str(tmp_path / "cache"))
    assert load_settings().adapters.store == tmp_path / "cache" / "adapter-store"  # never inside the source tree
    monkeypatch.setenv("LORAGATE_ADAPTER_STORE", str(tmp_path / "shared"))
    assert load_settings().adapters.store == tmp_path / "shared"
    assert load_settings(["--adapter-store", str(tmp_path / "flag")]).adapters.store == tmp_path / "flag"


def test_adapter_uri_settings_from_flags_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORAGATE_ADAPTER_URI_ALLOW", '["team-*"]')
    settings = load_settings(["--adapter-resolver-uri", "s3://team-a/adapters/", "--adapter-download-timeout-s", "5",
                              "--adapter-uri-schemes", '["s3"]'])
    adapters = settings.adapters
    assert (adapters.uri_allow, adapters.resolver_uri, adapters.download_timeout_s, adapters.uri_schemes) == (
        ["team-*"], "s3://team-a/adapters/", 5.0, ["s3"])
    assert Settings().adapters.uri_schemes == ["s3", "gs", "az", "hf", "https", "file"]
