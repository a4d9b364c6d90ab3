"""Settings left unset take the platform's defaults (service/engine/platform.py), decided in one place:
CPU keeps eager mode and a 1 GiB KV cache; a GPU gets CUDA graphs and a KV cache sized by vLLM from
`gpu_memory_utilization`. The platform detection is faked, so these run on the CPU machine."""

from __future__ import annotations

import pytest

from service.api.bootstrap import engine_options
from service.config import load_settings
from service.engine import Engine
from service.engine import engine as engine_module
from service.engine.platform import CPU, detect_platform, engine_layout


def _engine(flags: list[str], platform: str | None = None) -> Engine:
    return Engine(engine_options(load_settings(flags)), platform=platform)


def test_cpu_defaults_are_eager_and_one_gib() -> None:
    layout = _engine([], CPU).layout
    assert layout.enforce_eager is True
    assert layout.kv_cache_bytes == 2**30 and layout.gpu_memory_utilization is None
    assert layout.cpu_kv_cache_space_env == "1"
    args = _engine([], CPU).engine_args()
    assert args.enforce_eager is True and args.kv_cache_memory_bytes == 2**30
    assert layout.block_size == args.block_size == 32  # the triage prompt's shared part in whole blocks


def test_block_size_is_vllms_on_gpu_and_a_setting_wins() -> None:
    assert _engine([], "cuda").layout.block_size is None
    assert _engine([], "cuda").engine_args().block_size is None
    assert _engine(["--block-size", "64"], CPU).engine_args().block_size == 64


def test_gpu_defaults_are_cuda_graphs_and_gpu_memory_utilization() -> None:
    layout = _engine([], "cuda").layout
    assert layout.enforce_eager is False
    assert layout.kv_cache_bytes is None and layout.gpu_memory_utilization == 0.9
    assert layout.cpu_kv_cache_space_env is None  # VLLM_CPU_KVCACHE_SPACE is not set on GPU
    args = _engine(["--gpu-memory-utilization", "0.85"], "cuda").engine_args()
    assert args.enforce_eager is False
    assert args.kv_cache_memory_bytes is None and args.gpu_memory_utilization == 0.85


@pytest.mark.parametrize("platform", ["rocm", "xpu", "tpu"])
def test_every_accelerator_gets_the_gpu_defaults(platform: str) -> None:
    layout = _engine([], platform).layout
    assert not layout.enforce_eager and layout.gpu_memory_utilization == 0.9


@pytest.mark.parametrize("platform", [CPU, "cuda"])
def test_explicit_settings_win_on_every_platform(platform: str) -> None:
    engine = _engine(["--kv-cache-space-gib", "16", "--enforce-eager"], platform)
    assert engine.layout.enforce_eager is True and engine.layout.kv_cache_bytes == 16 * 2**30
    assert engine.layout.gpu_memory_utilization is None
    args = engine.engine_args()
    assert args.kv_cache_memory_bytes == 16 * 2**30 and args.enforce_eager is True
    assert not _engine(["--no-enforce-eager"], platform).layout.enforce_eager


def test_environment_settings_reach_the_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORAGATE_ENFORCE_EAGER", "false")
    monkeypatch.setenv("LORAGATE_KV_CACHE_SPACE_GIB", "2.5")
    layout = _engine([], CPU).layout
    assert layout.enforce_eager is False and layout.kv_cache_bytes == int(2.5 * 2**30)
    assert layout.cpu_kv_cache_space_env == "2"


@pytest.mark.parametrize("platform", [CPU, "cuda"])
def test_prefix_caching_is_on_explicitly_on_every_platform(platform: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """On by default (not left to vLLM's per-model default); off by flag or environment."""
    assert _engine([], platform).engine_args().enable_prefix_caching is True
    assert _engine(["--no-enable-prefix-caching"], platform).engine_args().enable_prefix_caching is False
    assert _engine(["--enable-prefix-caching"], platform).engine_args().enable_prefix_caching is True
    monkeypatch.setenv("LORAGATE_ENABLE_PREFIX_CACHING", "false")
    assert _engine([], platform).engine_args().enable_prefix_caching is False


def test_vllm_keys_cached_blocks_per_adapter_and_salt() -> None:
    """The engine's comment relies on this: an adapter (and a cache_salt) changes the block hashes."""
    from types import SimpleNamespace

    from vllm.v1.core.kv_cache_utils import generate_block_hash_extra_keys

    lora = SimpleNamespace(lora_name="triage", lora_path="/store/triage/1")
    request = SimpleNamespace(lora_request=lora, cache_salt="tenant-a", mm_features=[], prompt_embeds=None)
    keys, _ = generate_block_hash_extra_keys(request, 0, 16, 0)  # type: ignore[arg-type]
    assert keys is not None and ("lora", "triage", "/store/triage/1") in keys and ("cache_salt", "tenant-a") in keys
    base = SimpleNamespace(lora_request=None, cache_salt=None, mm_features=[], prompt_embeds=None)
    assert generate_block_hash_extra_keys(base, 0, 16, 0)[0] is None  # type: ignore[arg-type]


def test_the_detected_platform_is_used_when_none_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "detect_platform", lambda: "cuda")
    assert _engine([]).layout.platform == "cuda" and not _engine([]).layout.enforce_eager
    monkeypatch.setattr(engine_module, "detect_platform", lambda: CPU)
    assert _engine([]).layout.enforce_eager


def test_detection_reads_vllms_platform() -> None:
    from vllm.platforms import current_platform

    assert detect_platform() == (CPU if current_platform.is_cpu() else current_platform.device_type)


def test_bad_utilization_is_refused() -> None:
    with pytest.raises((ValueError, SystemExit)):
        load_settings(["--gpu-memory-utilization", "1.5"])


def test_layout_is_a_function_of_the_settings_alone() -> None:
    settings = load_settings([]).engine
    assert engine_layout(settings, CPU) == engine_layout(settings, CPU)
    assert engine_layout(settings, CPU) != engine_layout(settings, "cuda")
