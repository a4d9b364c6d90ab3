"""Settings precedence: defaults < YAML config file < LORAGATE_* env < CLI flags."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from service.cli import main
from service.config import CONFIG_FILE_ENV, load_settings


def test_defaults_run_on_a_small_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_FILE_ENV, raising=False)
    settings = load_settings([])
    assert (settings.host, settings.port, settings.max_model_len) == ("127.0.0.1", 8000, 2048)
    assert settings.model_name == "SmolLM2-135M-Instruct"


def test_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "loragate.yaml"
    config.write_text("port: 9001\nmax_n: 3\nmax_model_len: 1024\nadapter_roots: [/srv/adapters]\n")
    monkeypatch.setenv(CONFIG_FILE_ENV, str(config))
    monkeypatch.setenv("LORAGATE_MAX_N", "2")
    settings = load_settings(["--max-model-len", "512"])
    assert settings.port == 9001  # file
    assert settings.max_n == 2  # env beats file
    assert settings.max_model_len == 512  # flag beats file
    assert settings.adapter_roots == [Path("/srv/adapters")]


def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(CONFIG_FILE_ENV, raising=False)
    with pytest.raises(ValidationError, match="port"):
        load_settings(["--port", "not-a-port"])
    assert main(["serve", "--port", "not-a-port"]) == 2
    assert "port" in capsys.readouterr().err
    monkeypatch.setenv("LORAGATE_STRUCTURED_OUTPUT_BACKEND", "nope")
    with pytest.raises(ValidationError, match="structured_output_backend"):
        load_settings()
