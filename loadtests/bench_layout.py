"""How each server of `loragate bench` runs the model: loragate's resolved engine layout, the one
function that turns it into vLLM's own server command (same layout, or vLLM's defaults), and what
bench.json records about every server's layout.

The peer's command comes only from `peer_spec`, built from loragate's resolved settings, so the two
cannot drift; tests/unit/test_bench_layout.py parses it with vLLM's own argument parser and compares
every layout-relevant field with loragate's `Engine.engine_args()`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from service.engine import Engine
from service.engine.types import EngineOptions

PeerLeg = Literal["same-layout", "defaults"]
LEGS: tuple[PeerLeg, ...] = ("same-layout", "defaults")
# vLLM's accepted --max-lora-rank values (vllm.config.lora.MaxLoRARanks; a unit test checks the copy).
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# Engine.engine_args() sets this; the unit test fails if the two differ.
SCHEDULING_POLICY = "priority"
THREAD_ENV = ("OMP_NUM_THREADS", "VLLM_CPU_OMP_THREADS_BIND", "VLLM_CPU_NUM_OF_RESERVED_CPU")
MULTIPROCESSING_ENV = "VLLM_ENABLE_V1_MULTIPROCESSING"


class LoragateLayout(BaseModel):
    """loragate's engine layout as `loragate serve` resolves it from its settings and environment."""

    executor: str | None  # None: vLLM chooses (`mp` on CPU)
    multiprocessing_env: str | None  # VLLM_ENABLE_V1_MULTIPROCESSING as the engine sets it
    kv_cache_bytes: int | None  # None: sized by vLLM from gpu_memory_utilization (GPU default)
    gpu_memory_utilization: float | None = None
    kv_cache_space_env: str | None  # VLLM_CPU_KVCACHE_SPACE (whole GiB; vLLM's CPU platform reads it over the flag)
    max_model_len: int
    max_num_seqs: int
    max_num_batched_tokens: int
    dtype: str
    enforce_eager: bool
    block_size: int | None  # None: vLLM's default for the platform
    seed: int
    tensor_parallel_size: int
    pipeline_parallel_size: int
    scheduling_policy: str
    enable_prefix_caching: bool | None  # None: vLLM's default
    max_loras: int
    max_cpu_loras: int
    max_lora_rank: int
    thread_env: dict[str, str]  # OMP/vLLM thread settings of the environment (both servers inherit them)


def resolve_layout(opts: EngineOptions, environ: dict[str, str] | None = None) -> LoragateLayout:
    """What `Engine._build` and `Engine.engine_args` make of `opts` (without importing vLLM)."""
    env = dict(os.environ if environ is None else environ)
    engine = Engine(opts)
    executor, platform = engine.executor_backend, engine.layout  # the platform's defaults filled in
    cpu_space = platform.cpu_kv_cache_space_env
    return LoragateLayout(
        executor=executor, multiprocessing_env="0" if executor == "uni" else env.get(MULTIPROCESSING_ENV),
        kv_cache_bytes=platform.kv_cache_bytes, gpu_memory_utilization=platform.gpu_memory_utilization,
        kv_cache_space_env=env.get("VLLM_CPU_KVCACHE_SPACE", cpu_space) if cpu_space else None,
        max_model_len=opts.max_model_len, max_num_seqs=opts.max_num_seqs,
        max_num_batched_tokens=opts.max_num_batched_tokens, dtype=opts.dtype, enforce_eager=platform.enforce_eager,
        block_size=platform.block_size, seed=opts.seed, tensor_parallel_size=opts.tensor_parallel_size,
        pipeline_parallel_size=opts.pipeline_parallel_size, scheduling_policy=SCHEDULING_POLICY,
        enable_prefix_caching=opts.enable_prefix_caching, max_loras=opts.max_loras, max_cpu_loras=opts.max_cpu_loras,
        max_lora_rank=opts.max_lora_rank, thread_env={k: env[k] for k in THREAD_ENV if k in env},
    )


# ------------------------------------------------------------------------- adapter rank
def adapter_rank(folder: Path) -> int:
    """The largest rank in a PEFT adapter's adapter_config.json (`r` and any `rank_pattern`)."""
    config = json.loads((folder / "adapter_config.json").read_text())
    return max([int(config["r"]), *(int(r) for r in (config.get("rank_pattern") or {}).values())])


def peer_lora_rank(folders: list[Path]) -> int:
    """The smallest --max-lora-rank vLLM accepts that holds the largest of these adapters."""
    largest = max(adapter_rank(folder) for folder in folders)
    return next((r for r in LORA_RANKS if r >= largest), LORA_RANKS[-1])


# ------------------------------------------------------------------------- peer command
class LoraServing(BaseModel):
    modules: dict[str, Path]  # served as these model names (`--lora-modules name=path ...`)
    max_lora_rank: int  # peer_lora_rank of the adapters the bench uses


class PeerSpec(BaseModel):
    """vLLM's own server for one leg: its engine flags and the environment it starts with."""

    leg: PeerLeg
    lora: bool
    args: list[str]  # after `--model ... --served-model-name ... --host ... --port ...`
    env: dict[str, str] = Field(default_factory=dict)  # set for the server
    drop_env: list[str] = Field(default_factory=list)  # removed from the inherited environment


def peer_spec(layout: LoragateLayout, leg: PeerLeg, lora: LoraServing | None) -> PeerSpec:
    """The one place the peer's command line is built from loragate's resolved layout.

    Both legs share the sizes (context, sequences, batch tokens, KV cache bytes, dtype, eager, seed),
    so they fit the same memory and do the same work per step. `same-layout` also takes loragate's
    executor, multiprocessing setting, scheduling policy and prefix caching; `defaults` leaves those to
    vLLM, as users start it (on CPU: the `mp` executor, FCFS scheduling)."""
    args = [
        "--max-model-len", str(layout.max_model_len), "--max-num-seqs", str(layout.max_num_seqs),
        "--max-num-batched-tokens", str(layout.max_num_batched_tokens),
        *(["--kv-cache-memory-bytes", str(layout.kv_cache_bytes)] if layout.kv_cache_bytes is not None
          else ["--gpu-memory-utilization", str(layout.gpu_memory_utilization)]),
        "--dtype", layout.dtype,
        "--seed", str(layout.seed), "--enforce-eager" if layout.enforce_eager else "--no-enforce-eager",
        "--tensor-parallel-size", str(layout.tensor_parallel_size),
        "--pipeline-parallel-size", str(layout.pipeline_parallel_size),
        # usage.prompt_tokens_details.cached_tokens, as loragate reports it (a reply field, no engine work)
        "--enable-prompt-tokens-details",
    ]
    env = {**({"VLLM_CPU_KVCACHE_SPACE": layout.kv_cache_space_env} if layout.kv_cache_space_env else {}),
           **layout.thread_env}
    drop: list[str] = []
    if leg == "same-layout":
        if layout.executor is not None:
            args += ["--distributed-executor-backend", layout.executor]
        args += ["--scheduling-policy", layout.scheduling_policy]
        if layout.block_size is not None:
            args += ["--block-size", str(layout.block_size)]
        if layout.enable_prefix_caching is not None:
            args.append("--enable-prefix-caching" if layout.enable_prefix_caching else "--no-enable-prefix-caching")
        if layout.multiprocessing_env is not None:
            env[MULTIPROCESSING_ENV] = layout.multiprocessing_env
    else:
        drop.append(MULTIPROCESSING_ENV)  # vLLM's default, whatever the bench's own environment says
    if lora is not None:
        args += ["--enable-lora", "--max-lora-rank", str(lora.max_lora_rank), "--max-loras", str(layout.max_loras),
                 "--max-cpu-loras", str(layout.max_cpu_loras),
                 "--lora-modules", *(f"{name}={path}" for name, path in lora.modules.items())]
    return PeerSpec(leg=leg, lora=lora is not None, args=args, env=env, drop_env=drop)


# ------------------------------------------------------------------------ what is recorded
class ProcessFacts(BaseModel):
    pid: int
    command: str
    threads: int | None  # /proc/<pid>/status Threads: (OMP workers, Python and vLLM threads)
    env: dict[str, str]  # the layout variables in its environment at exec (/proc/<pid>/environ)


class ServerLayout(BaseModel):
    """One server's layout as bench.json records it."""

    role: str  # "loragate", "vllm same-layout", "vllm defaults"
    lora: bool
    executor: str  # as configured; "mp (vLLM default)" when left to vLLM
    vllm_enable_v1_multiprocessing: str  # the variable's value, or "unset (1)"
    omp_num_threads: str  # the environment's value, or "unset"; vLLM's `mp` worker sets its own (see processes)
    torch_threads: int | None  # torch's thread count in a process started with this server's environment
    model_threads: int | None = None  # see `model_threads`
    scheduling_policy: str
    prefix_caching: str  # as configured, and as the engine logged it
    block_size: str  # KV cache block tokens as configured, or "vLLM default"
    dtype: str
    max_lora_rank: int | None
    max_loras: int | None
    kv_cache_bytes: int | None  # None: sized from gpu_memory_utilization (GPU)
    max_num_seqs: int
    max_num_batched_tokens: int
    max_model_len: int
    enforce_eager: bool
    cpu_model: str
    command: list[str]
    env: dict[str, str]  # what the bench set or removed ("<unset>") for this server
    processes: list[ProcessFacts] = Field(default_factory=list)


def layout_record(role: str, layout: LoragateLayout, spec: PeerSpec | None, command: list[str],
                  cpu_model: str, torch_threads: int | None, log_text: str = "") -> ServerLayout:
    """bench.json's record of one server: loragate (`spec` None) or a peer leg."""
    logged = logged_config(log_text)
    same = spec is None or spec.leg == "same-layout"
    if spec is None:
        multiprocessing, env = layout.multiprocessing_env, {}
    else:
        multiprocessing = spec.env.get(MULTIPROCESSING_ENV)
        env = spec.env | {name: "<unset>" for name in spec.drop_env}
    policy = layout.scheduling_policy if same else "fcfs (vLLM default)"
    configured = "vLLM default" if layout.enable_prefix_caching is None or not same else str(
        layout.enable_prefix_caching)
    lora = spec is None or spec.lora
    rank = layout.max_lora_rank if spec is None else _flag(spec.args, "--max-lora-rank")
    return ServerLayout(
        role=role, lora=lora,
        executor=(layout.executor if same else None) or "mp (vLLM default)",
        vllm_enable_v1_multiprocessing=multiprocessing if multiprocessing is not None else "unset (1)",
        omp_num_threads=layout.thread_env.get("OMP_NUM_THREADS", "unset"), torch_threads=torch_threads,
        scheduling_policy=policy,
        prefix_caching=f"{configured}; engine: {logged.get('enable_prefix_caching', 'not logged')}",
        block_size=str(layout.block_size) if same and layout.block_size is not None else "vLLM default",
        dtype=layout.dtype, max_lora_rank=int(rank) if lora and rank else None,
        max_loras=layout.max_loras if lora else None, kv_cache_bytes=layout.kv_cache_bytes,
        max_num_seqs=layout.max_num_seqs, max_num_batched_tokens=layout.max_num_batched_tokens,
        max_model_len=layout.max_model_len, enforce_eager=layout.enforce_eager, cpu_model=cpu_model,
        command=command, env=env,
    )


def _flag(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


_LOGGED = re.compile(r"\b(enable_prefix_caching|dtype|distributed_executor_backend)=([\w.]+)")


def logged_config(log_text: str) -> dict[str, str]:
    """Settings vLLM's engine core logs at start (`Initializing a V1 LLM engine ... with config:`)."""
    return {key: value for key, value in _LOGGED.findall(log_text)}


def process_facts(pids: set[int]) -> list[ProcessFacts]:
    """Thread counts and layout variables of a server's processes (ours: their environ is readable)."""
    wanted = (*THREAD_ENV, MULTIPROCESSING_ENV)
    facts = []
    for pid in sorted(pids):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        env = dict(item.decode(errors="replace").split("=", 1) for item in environ if b"=" in item)
        threads = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("Threads:")), None)
        facts.append(ProcessFacts(pid=pid, command=command.strip()[:160], threads=threads,
                                  env={k: env[k] for k in wanted if k in env}))
    return facts


def model_threads(processes: list[ProcessFacts], torch_default: int | None) -> int | None:
    """Threads the model computes on: the smallest OMP_NUM_THREADS among the server's processes (vLLM's
    `mp` executor sets it for its worker: the cores left after those it reserves), else torch's default."""
    values = [int(p.env["OMP_NUM_THREADS"]) for p in processes if p.env.get("OMP_NUM_THREADS", "").isdigit()]
    return min(values) if values else torch_default


def torch_threads(env: dict[str, str], drop: list[str] | None = None) -> int | None:
    """torch's default thread count in a fresh process with this environment (a few seconds)."""
    full = {k: v for k, v in (os.environ | env).items() if k not in (drop or [])}
    try:
        out = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"], env=full,
                             capture_output=True, text=True, timeout=120, check=True)
        return int(out.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError, OSError):
        return None
