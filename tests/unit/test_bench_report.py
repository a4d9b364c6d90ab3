"""`loragate bench` without servers: ratios, targets, bench.md, charts, and the process-tree RSS."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from loadtests.bench_report import (
    BenchReport, ComparisonResult, PhaseStats, add_ratios, evaluate_targets, markdown, write,
)
from loadtests.bench_servers import RssSampler, proc_table, peer_engine_args, tree_rss
from service.engine.types import EngineOptions


def row(system: str, concurrency: int, tokens_per_s: float, ttft: float, failed: int = 0) -> PhaseStats:
    return PhaseStats(system=system, server=system, concurrency=concurrency, requests=8, failed=failed,
                      tokens_per_s=tokens_per_s, requests_per_s=tokens_per_s / 48, ttft_p50_s=ttft,
                      ttft_p95_s=ttft * 2, latency_p50_s=1.0, latency_p95_s=2.0, peak_rss_mib=1000.0)


def comparisons() -> dict[str, ComparisonResult]:
    peer = ComparisonResult(name="peer-base", description="d", rows=[
        row("loragate", 1, 30.0, 0.10), row("vllm", 1, 30.0, 0.10),
        row("loragate", 8, 90.0, 0.30), row("vllm", 8, 100.0, 0.20),
    ])
    add_ratios(peer, "loragate", "vllm")
    mixed = ComparisonResult(name="adapters", description="d", rows=[
        row("base", 8, 100.0, 0.2), row("one adapter", 8, 85.0, 0.2), row("four adapters", 8, 80.0, 0.2, failed=1),
    ])
    add_ratios(mixed, "one adapter", "base")
    add_ratios(mixed, "four adapters", "one adapter")
    broken = ComparisonResult(name="swaps", description="d", error="RuntimeError: boom")
    return {"peer-base": peer, "adapters": mixed, "swaps": broken}


def test_ratios_and_targets() -> None:
    results = comparisons()
    assert results["peer-base"].ratios["loragate/vllm"]["c8"]["tokens_per_s"] == 0.9
    verdicts = {t.name: t.met for t in evaluate_targets(results)}
    assert verdicts["base tokens/s >= 0.97x vLLM (c1)"] is True
    assert verdicts["base tokens/s >= 0.97x vLLM (c8)"] is False
    assert verdicts["base TTFT p50 <= 1.05x vLLM (c8)"] is False
    assert verdicts["adapter tokens/s >= 0.8x loragate base (c8)"] is True
    assert verdicts["four mixed adapters tokens/s >= 0.9x one adapter (c8)"] is True
    # A failed request and a comparison that broke both count against "zero failed requests".
    zero = next(t for t in evaluate_targets(results) if t.name == "zero failed requests")
    assert zero.value == 2 and zero.met is False


def test_report_files(tmp_path: Path) -> None:
    results = comparisons()
    targets = evaluate_targets(results)
    report = BenchReport(command="loragate bench", machine={"date": "now", "cpu_model": "cpu", "nproc": 2},
                         versions={"vllm": "0.32.0", "loragate": "0.1.0"}, config={"max_tokens": 48, "rounds": 3},
                         servers={}, comparisons=results, targets=targets, failed_requests=2, all_targets_met=False)
    written = write(report, tmp_path)
    assert {p.name for p in written} == {"bench.json", "bench.md", "bench-peer-base.png", "bench-adapters.png",
                                         "bench-swaps.png"}
    assert all(p.stat().st_size > 0 for p in written)
    text = markdown(report)
    assert "| loragate | 8 |" in text and "**missed**" in text and "RuntimeError: boom" in text
    assert BenchReport.model_validate_json((tmp_path / "bench.json").read_text()).failed_requests == 2


def test_peer_gets_loragates_engine_options() -> None:
    opts = EngineOptions(model_dir=Path("/m"), served_model_name="m", max_model_len=1024, kv_cache_space_gib=2.0,
                         enforce_eager=False)
    args = peer_engine_args(opts)
    assert args[args.index("--max-model-len") + 1] == "1024"
    assert args[args.index("--kv-cache-memory-bytes") + 1] == str(2 * 2**30)
    assert "--no-enforce-eager" in args and args[args.index("--dtype") + 1] == "bfloat16"


def test_tree_rss_counts_children() -> None:
    # A child holding ~64 MiB: the tree's RSS includes it.
    child = subprocess.Popen([sys.executable, "-c", "import time; b = bytearray(64 * 2**20); time.sleep(30)"])
    try:
        deadline = time.monotonic() + 20
        alone = tree_rss(child.pid, proc_table())
        while alone < 64 * 2**20 and time.monotonic() < deadline:
            time.sleep(0.1)
            alone = tree_rss(child.pid, proc_table())
        assert alone >= 64 * 2**20
        assert tree_rss(os.getpid(), proc_table()) >= alone
    finally:
        child.kill()
        child.wait()


def test_rss_sampler_peaks_per_window() -> None:
    sampler = RssSampler({"me": os.getpid()}, interval=0.05)
    sampler.start()
    since = time.monotonic()
    time.sleep(0.3)
    sampler.stop()
    assert not sampler.is_alive()
    assert len(sampler.samples) >= 2
    assert (sampler.peak("me", since) or 0) > 10 * 2**20
    assert sampler.peak("me", until=since - 60) is None and sampler.peak("other") is None
