"""`loragate bench`'s peer command: every layout-relevant engine argument loragate sets reaches vLLM's
own server in the same-layout leg (read back with vLLM's own argument parser), the defaults leg
leaves the layout to vLLM, and the LoRA rank is the adapters' own."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any

import pytest

from loadtests.bench_layout import (
    LORA_RANKS, MULTIPROCESSING_ENV, LoraServing, ProcessFacts, adapter_rank, layout_record, logged_config,
    model_threads, peer_lora_rank, peer_spec, process_facts, resolve_layout,
)
from service.engine import Engine
from service.engine.types import EngineOptions
from service.testing.process import VllmServer

# Engine arguments loragate sets that are not the engine's layout, each with why the peer may differ.
NOT_LAYOUT = {
    "served_model_name": "the peer serves the same name through --served-model-name, parsed as a frontend flag",
    "structured_outputs_config": "loragate's constrained-decoding backend defaults; requests choose per request",
    "disable_log_stats": "logging only",
    "max_lora_rank": "the peer gets the rank of the adapters it serves (checked below), not loragate's ceiling",
}


def options(**changes: Any) -> EngineOptions:
    return EngineOptions(model_dir=Path("/models/m"), served_model_name="m", **changes)


def parsed(args: list[str], tmp_path: Path) -> Any:
    """vLLM's OpenAI server's exact command line with these engine flags, as vLLM reads it."""
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    command = VllmServer(tmp_path / "peer.log", Path("/models/m"), "m", engine_args=args).command()
    assert command[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    return AsyncEngineArgs.from_cli_args(make_arg_parser(FlexibleArgumentParser()).parse_args(command[3:]))


def changed(args: Any, reference: Any) -> dict[str, Any]:
    """The engine arguments `args` sets to something else than `reference` has."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(args)
            if getattr(args, f.name) != getattr(reference, f.name)}


@pytest.mark.parametrize("changes", [
    {}, {"distributed_executor_backend": "mp"},
    {"max_model_len": 1024, "kv_cache_space_gib": 2.0, "enforce_eager": False, "max_num_seqs": 8, "dtype": "float32"},
])
def test_same_layout_peer_gets_every_layout_argument(changes: dict[str, Any], tmp_path: Path) -> None:
    from vllm.engine.arg_utils import AsyncEngineArgs

    opts = options(**changes)
    lora = LoraServing(modules={"bench-a0": tmp_path / "a0", "ticket-triage": tmp_path / "tt"}, max_lora_rank=8)
    spec = peer_spec(resolve_layout(opts, environ={}), "same-layout", lora)
    ours, peer = Engine(opts).engine_args(), parsed(spec.args, tmp_path)
    # Every argument loragate sets (away from vLLM's defaults) the peer sets alike, unless it is not layout.
    ours_set = changed(ours, AsyncEngineArgs(model=str(opts.model_dir)))
    assert "scheduling_policy" in ours_set and "distributed_executor_backend" in ours_set
    mismatched = {name: (value, getattr(peer, name)) for name, value in ours_set.items()
                  if name not in NOT_LAYOUT and getattr(peer, name) != value}
    assert mismatched == {}
    # ... and the peer sets nothing loragate does not (its command line against a bare one).
    assert set(changed(peer, parsed([], tmp_path))) - set(NOT_LAYOUT) <= set(ours_set)
    assert peer.max_lora_rank == 8 and peer.enable_lora
    at = spec.args.index("--lora-modules")
    assert spec.args[at + 1:at + 3] == [f"bench-a0={tmp_path / 'a0'}", f"ticket-triage={tmp_path / 'tt'}"]


def test_same_layout_environment_matches_the_engines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    opts = options(kv_cache_space_gib=2.0)
    spec = peer_spec(resolve_layout(opts), "same-layout", None)
    # What Engine._build puts in its environment for the `uni` executor, and the KV cache size.
    assert spec.env[MULTIPROCESSING_ENV] == "0" and spec.env["VLLM_CPU_KVCACHE_SPACE"] == "2"
    assert spec.env["OMP_NUM_THREADS"] == "2" and spec.drop_env == []
    mp = peer_spec(resolve_layout(options(distributed_executor_backend="mp")), "same-layout", None)
    assert MULTIPROCESSING_ENV not in mp.env


def test_without_lora_only_the_lora_arguments_differ(tmp_path: Path) -> None:
    from vllm.engine.arg_utils import AsyncEngineArgs

    opts = options()
    ours = Engine(opts).engine_args()
    peer = parsed(peer_spec(resolve_layout(opts, {}), "same-layout", None).args, tmp_path)
    lora_fields = {"enable_lora", "max_loras", "max_cpu_loras"}
    mismatched = {f.name for f in dataclasses.fields(ours) if getattr(ours, f.name) != getattr(peer, f.name)}
    assert mismatched - set(changed(parsed([], tmp_path), AsyncEngineArgs(model=str(opts.model_dir)))) <= (
        set(NOT_LAYOUT) | lora_fields)
    assert not peer.enable_lora


def test_defaults_leg_leaves_the_layout_to_vllm(tmp_path: Path) -> None:
    from vllm.engine.arg_utils import AsyncEngineArgs

    opts = options()
    spec = peer_spec(resolve_layout(opts, {MULTIPROCESSING_ENV: "0"}), "defaults", None)
    peer, stock = parsed(spec.args, tmp_path), AsyncEngineArgs(model="/models/m")
    layout = ("distributed_executor_backend", "scheduling_policy", "enable_prefix_caching")
    assert {name: getattr(peer, name) for name in layout} == {name: getattr(stock, name) for name in layout}
    assert MULTIPROCESSING_ENV in spec.drop_env and MULTIPROCESSING_ENV not in spec.env
    # The sizes are loragate's, so both legs fit the same memory.
    ours = Engine(opts).engine_args()
    for name in ("max_model_len", "max_num_seqs", "max_num_batched_tokens", "kv_cache_memory_bytes", "dtype",
                 "enforce_eager", "seed"):
        assert getattr(peer, name) == getattr(ours, name), name


@pytest.mark.parametrize("on", [True, False])
def test_same_layout_peer_gets_loragates_prefix_caching(on: bool, tmp_path: Path) -> None:
    opts = options(enable_prefix_caching=on)
    layout = resolve_layout(opts, {})
    assert layout.enable_prefix_caching is on
    peer = parsed(peer_spec(layout, "same-layout", None).args, tmp_path)
    assert peer.enable_prefix_caching is on is Engine(opts).engine_args().enable_prefix_caching
    assert layout_record("vllm defaults", layout, peer_spec(layout, "defaults", None), [], "cpu", 2).prefix_caching \
        == "vLLM default; engine: not logged"


def test_rank_ladder_is_vllms() -> None:
    from vllm.config.lora import MaxLoRARanks

    assert LORA_RANKS == typing.get_args(MaxLoRARanks)


def test_lora_rank_is_the_largest_adapters(tmp_path: Path) -> None:
    def adapter(name: str, r: int, pattern: dict[str, int] | None = None) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "adapter_config.json").write_text(json.dumps({"r": r, "rank_pattern": pattern or {}}))
        return folder

    small, big = adapter("a", 8), adapter("b", 4, {"q_proj": 12})
    assert adapter_rank(small) == 8 and adapter_rank(big) == 12
    assert peer_lora_rank([small]) == 8
    assert peer_lora_rank([small, big]) == 16  # the next rank vLLM accepts


def test_layout_record_fields(tmp_path: Path) -> None:
    layout = resolve_layout(options(), {"OMP_NUM_THREADS": "2"})
    lora = LoraServing(modules={"a": tmp_path}, max_lora_rank=8)
    log = "Initializing a V1 LLM engine (v0.32.0) with config: dtype=torch.bfloat16, enable_prefix_caching=True, x=1"
    same = layout_record("vllm same-layout", layout, peer_spec(layout, "same-layout", lora), ["python", "-m", "x"],
                         "AMD EPYC", 2, log)
    assert (same.executor, same.vllm_enable_v1_multiprocessing, same.scheduling_policy) == ("uni", "0", "priority")
    assert same.omp_num_threads == "2" and same.torch_threads == 2 and same.max_lora_rank == 8
    assert same.prefix_caching == "True; engine: True" and same.cpu_model == "AMD EPYC"
    assert same.command == ["python", "-m", "x"] and same.env[MULTIPROCESSING_ENV] == "0"
    defaults = layout_record("vllm defaults", layout, peer_spec(layout, "defaults", None), [], "AMD EPYC", 2)
    assert defaults.executor == "mp (vLLM default)" and defaults.vllm_enable_v1_multiprocessing == "unset (1)"
    assert defaults.env[MULTIPROCESSING_ENV] == "<unset>" and defaults.max_lora_rank is None
    ours = layout_record("loragate", layout, None, ["python", "-m", "service", "serve"], "AMD EPYC", 2)
    assert ours.max_lora_rank == 64 and ours.lora and ours.executor == "uni"
    assert logged_config(log) == {"dtype": "torch.bfloat16", "enable_prefix_caching": "True"}


def test_model_threads_are_the_mp_workers_own() -> None:
    procs = [ProcessFacts(pid=1, command="api", threads=9, env={}),
             ProcessFacts(pid=2, command="VLLM::Worker", threads=3, env={"OMP_NUM_THREADS": "1"})]
    assert model_threads(procs, 2) == 1  # vLLM's mp worker: the cores it did not reserve
    assert model_threads(procs[:1], 2) == 2  # uni: torch's default in the engine-core process


def test_process_facts_read_our_own_process() -> None:
    import os

    facts = process_facts({os.getpid()})
    assert facts[0].pid == os.getpid() and (facts[0].threads or 0) >= 1 and "python" in facts[0].command


def test_gpu_peer_sizes_its_kv_cache_as_loragate_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a GPU loragate leaves the KV cache to gpu_memory_utilization, and so does the peer."""
    from service.engine import engine as engine_module

    monkeypatch.setattr(engine_module, "detect_platform", lambda: "cuda")
    opts = options(gpu_memory_utilization=0.8)
    spec = peer_spec(resolve_layout(opts, {}), "same-layout", None)
    ours, peer = Engine(opts).engine_args(), parsed(spec.args, tmp_path)
    assert (peer.gpu_memory_utilization, peer.kv_cache_memory_bytes) == (0.8, None)
    assert (ours.gpu_memory_utilization, ours.kv_cache_memory_bytes) == (0.8, None)
    assert peer.enforce_eager is ours.enforce_eager is False
    assert "VLLM_CPU_KVCACHE_SPACE" not in spec.env
