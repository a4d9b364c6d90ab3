"""loragate's vLLM plugin, loaded through the `vllm.general_plugins` entry point.

vLLM loads general plugins in every vLLM process of the environment, vLLM's own server included,
so the plugin acts only where loragate's engine asked for it (`ACTIVATION_ENV`, set by `Engine`
before vLLM starts and inherited by its engine-core processes) and only on the vLLM version its
patches were written against; anywhere else it logs once and leaves vLLM untouched.
"""

from __future__ import annotations

import logging
import os

__all__ = ["ACTIVATION_ENV", "SUPPORTED_VLLM_VERSION", "plugin_active", "register_vllm_plugin"]

ACTIVATION_ENV = "LORAGATE_VLLM_PLUGIN"
SUPPORTED_VLLM_VERSION = "0.32.0"

logger = logging.getLogger(__name__)


def plugin_active() -> bool:
    """Whether this process should be patched (and why not, logged once)."""
    if os.environ.get(ACTIVATION_ENV) != "1":
        return False
    import vllm

    version = getattr(vllm, "__version__", "unknown").split("+")[0]
    if version != SUPPORTED_VLLM_VERSION:
        logger.warning("loragate's vLLM plugin is written for vLLM %s, found %s: staying off (per-request "
                       "structured backends and grouped CPU LoRA ops disabled)", SUPPORTED_VLLM_VERSION, version)
        return False
    return True


def register_vllm_plugin() -> None:
    """vLLM general plugin (entry point `vllm.general_plugins`): per-request structured-output
    backends and grouped CPU LoRA ops, inside loragate's engine only."""
    if not plugin_active():
        return
    from service.engine.plugins.cpu_lora_ops import patch_cpu_lora_ops
    from service.engine.plugins.structured_backends import patch_structured_backends

    patch_structured_backends()
    patch_cpu_lora_ops()
