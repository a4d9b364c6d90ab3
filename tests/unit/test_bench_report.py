"""`loragate bench` without servers: ratios, targets, bench.md, charts, and the process-tree RSS."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from loadtests.bench_cpu import Offender, PhaseCpu
from loadtests.bench_layout import layout_record, peer_spec, resolve_layout
from loadtests.bench_report import (
    BenchReport, ComparisonResult, CpuCheck, PhaseStats, add_ratios, evaluate_targets, markdown, write,
)
from loadtests.bench_servers import RssSampler, proc_table, tree_rss
from service.engine.types import EngineOptions


def row(system: str, concurrency: int, tokens_per_s: float, ttft: float, failed: int = 0) -> PhaseStats:
    return PhaseStats(system=system, server=system, concurrency=concurrency, requests=8, failed=failed,
                      tokens_per_s=tokens_per_s, requests_per_s=tokens_per_s / 48, ttft_p50_s=ttft,
                      ttft_p95_s=ttft * 2, latency_p50_s=1.0, latency_p95_s=2.0, peak_rss_mib=1000.0)


def comparisons() -> dict[str, ComparisonResult]:
    peer = ComparisonResult(name="peer-base", description="d", rows=[
        row("loragate", 1, 30.0, 0.10), row("vllm", 1, 30.0, 0.10),
        row("loragate", 8, 90.0, 0.30), row("vllm", 8, 100.0, 0.20),
        row("vllm-lora", 1, 25.0, 0.10), row("vllm-lora", 8, 85.0, 0.20),
        row("vllm-defaults", 1, 20.0, 0.10), row("vllm-defaults", 8, 50.0, 0.20),
    ])
    for other in ("vllm", "vllm-lora", "vllm-defaults"):
        add_ratios(peer, "loragate", other)
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
    assert verdicts["base tokens/s >= 0.97x vLLM same layout without LoRA (c1)"] is True
    assert verdicts["base tokens/s >= 0.97x vLLM same layout without LoRA (c8)"] is False
    assert verdicts["base TTFT p50 <= 1.05x vLLM same layout (c8)"] is False
    assert verdicts["base tokens/s >= 1.1x vLLM same layout with LoRA (c1)"] is True  # 30 / 25
    assert verdicts["base tokens/s >= 1.1x vLLM same layout with LoRA (c8)"] is False  # 90 / 85
    # The defaults leg is context: its ratios are reported, no target uses them.
    assert results["peer-base"].ratios["loragate/vllm-defaults"]["c8"]["tokens_per_s"] == 1.8
    assert not any("defaults" in name for name in verdicts)
    assert verdicts["adapter tokens/s >= 0.9x loragate base (c8)"] is False  # 85 / 100
    assert verdicts["four mixed adapters tokens/s >= 0.95x one adapter (c8)"] is False  # 80 / 85
    # A failed request and a comparison that broke both count against "zero failed requests".
    zero = next(t for t in evaluate_targets(results) if t.name == "zero failed requests")
    assert zero.value == 2 and zero.met is False


def test_targets_only_at_the_levels_the_issue_names() -> None:
    adapter = ComparisonResult(name="peer-adapter", description="d", rows=[
        row("loragate", 1, 10.0, 0.1), row("vllm-lora", 1, 10.0, 0.1),
        row("loragate", 8, 30.0, 0.1), row("vllm-lora", 8, 15.0, 0.1)])
    add_ratios(adapter, "loragate", "vllm-lora")
    triage = ComparisonResult(name="triage", description="d", rows=[
        row("loragate", 1, 10.0, 0.1), row("vllm-lora", 1, 20.0, 0.1),
        row("loragate", 8, 48.0, 0.1), row("vllm-lora", 8, 24.0, 0.1)])
    add_ratios(triage, "loragate", "vllm-lora")
    names = {t.name: t.met for t in evaluate_targets({"peer-adapter": adapter, "triage": triage})}
    assert names == {"adapter tokens/s >= 1.5x vLLM same layout with LoRA (c8)": True,
                     "triage tickets/min >= 1.3x vLLM same layout with LoRA and the schema (c8)": True,
                     "zero failed requests": True}


def test_triage_table_shows_validity_and_the_prefix_cache() -> None:
    triage = ComparisonResult(name="triage", description="d", rows=[PhaseStats(
        system="loragate", server="loragate", concurrency=8, requests=16, requests_per_s=0.5, schema_valid=15,
        latency_p50_s=2.0, latency_p95_s=3.0, prefix_cache_hit_ratio=0.84)])
    report = BenchReport(command="loragate bench", machine={"date": "now", "cpu_model": "cpu", "nproc": 2},
                         versions={}, config={"max_tokens": 48, "rounds": 3}, servers={},
                         comparisons={"triage": triage}, targets=[], failed_requests=0, all_targets_met=True)
    assert "| loragate | 8 | 16 | 0 | 15/16 | 30.0 | 2000 | 3000 | 84% |" in markdown(report)


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


def test_report_records_layouts_and_the_cpu_check(tmp_path: Path) -> None:
    layout = resolve_layout(EngineOptions(model_dir=Path("/m"), served_model_name="m"), {})
    servers = {
        "loragate": {"command": ["python", "-m", "service", "serve"], "layout": layout_record(
            "loragate", layout, None, ["python", "-m", "service", "serve"], "AMD EPYC 7B13", 2).model_dump()},
        "vllm-defaults": {"command": ["python", "-m", "vllm"], "layout": layout_record(
            "vllm defaults", layout, peer_spec(layout, "defaults", None), ["python", "-m", "vllm"], "AMD EPYC 7B13",
            2).model_dump()},
    }
    phase = PhaseCpu(label="peer-base round 1/1 c=8 vllm", server="vllm", wall_s=10.0, samples=11,
                     measured_cores=1.9, bench_cores=0.4, others_cores=0.03,
                     top_others=[Offender(pid=7, command="sshd", cores=0.03)], ok=True)
    report = BenchReport(command="loragate bench", machine={"date": "now", "cpu_model": "AMD EPYC 7B13", "nproc": 2},
                         versions={}, config={"max_tokens": 48, "rounds": 3}, servers=servers,
                         comparisons=comparisons(), targets=[], failed_requests=0, all_targets_met=True,
                         cpu_check=CpuCheck(threshold_cores=0.1, enforced=True, passed=True, phases=[phase]))
    write(report, tmp_path)
    saved = BenchReport.model_validate_json((tmp_path / "bench.json").read_text())
    assert saved.cpu_check is not None and saved.cpu_check.phases[0].top_others[0].command == "sshd"
    fields = saved.servers["vllm-defaults"]["layout"]
    for key in ("executor", "vllm_enable_v1_multiprocessing", "omp_num_threads", "torch_threads",
                "scheduling_policy", "prefix_caching", "dtype", "max_lora_rank", "cpu_model", "command"):
        assert key in fields, key
    assert saved.servers["loragate"]["layout"]["executor"] == "uni"
    text = (tmp_path / "bench.md").read_text()
    assert "## Server layouts" in text and "| executor | uni | mp (vLLM default) |" in text
    assert "sshd (pid 7) at 3.0% of a core" in text and ": passed." in text


def test_peer_gets_loragates_engine_options() -> None:
    opts = EngineOptions(model_dir=Path("/m"), served_model_name="m", max_model_len=1024, kv_cache_space_gib=2.0,
                         enforce_eager=False)
    args = peer_spec(resolve_layout(opts, {}), "same-layout", None).args
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


def test_summary_puts_every_target_in_one_table() -> None:
    results = comparisons()
    report = BenchReport(command="loragate bench", machine={"date": "now", "cpu_model": "cpu", "nproc": 2},
                         versions={}, config={"max_tokens": 48, "rounds": 3}, servers={}, comparisons=results,
                         targets=evaluate_targets(results), failed_requests=2, all_targets_met=False)
    text = markdown(report)
    summary = text[text.index("## Summary"):text.index("## peer-base")]
    assert "| base tokens/s vs vLLM same layout without LoRA | 1.00x | **0.90x (missed)** | >= 0.97x |" in summary
    assert "| base tokens/s vs vLLM at its defaults (context) | 1.50x | 1.80x | - |" in summary
    assert "| adapter tokens/s vs loragate base |  | **0.85x (missed)** | >= 0.9x |" in summary
