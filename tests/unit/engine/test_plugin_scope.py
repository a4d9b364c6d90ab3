"""loragate's vLLM plugin is loaded by every vLLM process of the environment (entry point), so it
must patch only loragate's own engine: a fresh process that loads vLLM's general plugins, as vLLM's
own server does, stays unpatched unless loragate's engine turned the plugin on."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import vllm.plugins
from vllm.v1.structured_output import StructuredOutputManager
from vllm.lora.ops.torch_ops import lora_ops
original = lora_ops.bgmv_shrink
vllm.plugins.load_general_plugins()
print(bool(getattr(StructuredOutputManager, "_loragate_multi_backend", False)), lora_ops.bgmv_shrink is not original)
"""


def probe(env: dict[str, str]) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("LORAGATE_VLLM_PLUGIN", "VLLM_PLUGINS")}
    result = subprocess.run([sys.executable, "-c", PROBE], env=clean | env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(("env", "patched"), [
    ({}, "False False"),  # vLLM's own server started from this environment: pure vLLM
    ({"LORAGATE_VLLM_PLUGIN": "0"}, "False False"),  # loragate with --no-vllm-plugin
    ({"LORAGATE_VLLM_PLUGIN": "1"}, "True True"),  # loragate's engine
])
def test_plugin_patches_only_loragates_engine(env: dict[str, str], patched: str) -> None:
    assert probe(env) == patched


def test_plugin_stays_off_on_another_vllm_version(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    import vllm

    from service.engine.plugins import ACTIVATION_ENV, SUPPORTED_VLLM_VERSION, plugin_active

    monkeypatch.setenv(ACTIVATION_ENV, "1")
    monkeypatch.setattr(vllm, "__version__", SUPPORTED_VLLM_VERSION)
    assert plugin_active()
    monkeypatch.setattr(vllm, "__version__", "0.33.0")
    assert not plugin_active()
    assert "staying off" in caplog.text
