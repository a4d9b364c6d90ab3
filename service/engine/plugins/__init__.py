"""loragate's vLLM plugin, loaded through the `vllm.general_plugins` entry point."""

from __future__ import annotations

from service.engine.plugins.cpu_lora_ops import patch_cpu_lora_ops
from service.engine.plugins.structured_backends import patch_structured_backends

__all__ = ["register_vllm_plugin"]


def register_vllm_plugin() -> None:
    """vLLM general plugin (entry point `vllm.general_plugins`), loaded in every vLLM process:
    per-request structured-output backends and grouped CPU LoRA ops."""
    patch_structured_backends()
    patch_cpu_lora_ops()
