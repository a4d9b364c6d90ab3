"""`loragate bench --smoke` end to end: it starts loragate and vLLM's own server without and with LoRA,
each in loragate's layout and at vLLM's defaults, runs every comparison with one server at a time (the
others paused) under the CPU-steal check (peer-base, peer-adapter, adapters, structured, swaps, triage) with a few requests
under py-spy (`--profile`), stops the servers, and writes bench.json, bench.md and one chart per
comparison.

Only that the benchmark works is checked, not its figures: at smoke size on a shared machine the
ratios say nothing (the targets are recorded, met or not)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

COMPARISONS = ("peer-base", "peer-adapter", "adapters", "structured", "swaps", "triage")
RUN_TIMEOUT_S = 2400  # five server start-ups on 2 CPUs, then a few minutes of requests
PEERS = {"vllm": "same-layout", "vllm-lora": "same-layout", "vllm-defaults": "defaults",
         "vllm-lora-defaults": "defaults"}
LAYOUT_FIELDS = ("executor", "vllm_enable_v1_multiprocessing", "omp_num_threads", "torch_threads",
                 "scheduling_policy", "prefix_caching", "dtype", "max_lora_rank", "cpu_model", "command")


@pytest.mark.timeout(RUN_TIMEOUT_S + 180)
def test_bench_smoke_runs_every_comparison(tmp_path: Path) -> None:
    out = tmp_path / "results"
    log = tmp_path / "bench.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "service", "bench", "--smoke", "--profile", "--out-dir", str(out)],
                                cwd=REPO_ROOT, stdout=sink, stderr=subprocess.STDOUT)
        try:
            code = proc.wait(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)  # the bench stops its servers on SIGTERM; SIGKILL would orphan them
            try:
                proc.wait(timeout=150)
            except subprocess.TimeoutExpired:
                proc.kill()
            pytest.fail(f"bench --smoke still running after {RUN_TIMEOUT_S} s:\n{_tail(log)}")
    assert code == 0, _tail(log)

    report = json.loads((out / "bench.json").read_text())
    assert list(report["comparisons"]) == list(COMPARISONS)
    for name, result in report["comparisons"].items():
        assert result["error"] is None, (name, result["error"])
        assert result["rows"], name
        assert all(row["requests"] > 0 for row in result["rows"]), (name, result["rows"])
        assert result["ratios"] and all(result["ratios"].values()), (name, result["ratios"])
        assert (out / f"bench-{name}.png").stat().st_size > 0
    for name in ("peer-base", "peer-adapter", "adapters"):  # fixed-length streamed requests
        for row in report["comparisons"][name]["rows"]:
            assert row["tokens_per_s"] and row["ttft_p50_s"] and row["wrong_length"] == 0, (name, row)
    # Both peer legs ran, and the ratios name them.
    assert {row["system"] for row in report["comparisons"]["peer-base"]["rows"]} == {
        "loragate", "vllm", "vllm-lora", "vllm-defaults"}
    assert {row["system"] for row in report["comparisons"]["peer-adapter"]["rows"]} == {
        "loragate", "vllm-lora", "vllm-lora-defaults"}
    assert {"loragate/vllm", "loragate/vllm-lora", "loragate/vllm-defaults"} <= set(
        report["comparisons"]["peer-base"]["ratios"])
    # Every server's layout is recorded; the same-layout peers run loragate's executor.
    servers = report["servers"]
    assert set(servers) == {"loragate", *PEERS}
    for name, server in servers.items():
        assert all(key in server["layout"] for key in LAYOUT_FIELDS), (name, server["layout"])
        assert server["command"] and server["layout"]["processes"], name
    ours = servers["loragate"]["layout"]
    for name, leg in PEERS.items():
        layout = servers[name]["layout"]
        if leg == "same-layout":
            assert (layout["executor"], layout["scheduling_policy"]) == (ours["executor"], ours["scheduling_policy"])
            assert layout["vllm_enable_v1_multiprocessing"] == ours["vllm_enable_v1_multiprocessing"]
        else:
            assert layout["executor"] == "mp (vLLM default)", layout
    # The rank of the adapters it serves (the bench adapters are made at the shipped triage adapter's), not 64
    assert servers["vllm-lora"]["layout"]["max_lora_rank"] == 16
    # Each measured phase ran alone on the machine.
    check = report["cpu_check"]
    assert check["passed"] and check["enforced"] and check["phases"], check
    assert "## Server layouts" in (out / "bench.md").read_text()
    base = report["comparisons"]["peer-base"]["rows"]
    assert all(row["peak_rss_mib"] and row["peak_rss_mib"] > 100 for row in base), base
    assert report["failed_requests"] == 0, _tail(log)
    zero_failed = next(t for t in report["targets"] if t["name"] == "zero failed requests")
    assert zero_failed["met"] is True
    assert report["machine"]["nproc"] >= 1 and report["versions"]["vllm"]
    assert report["command"].startswith("loragate bench --smoke")

    # Triage side by side: loragate's endpoint, vLLM's server with the same prompt and schema, and loragate
    # with its prefix cache defeated (cache_salt); the shared system prompt is read from the cache, the
    # salted requests read nothing from it.
    rows = report["comparisons"]["triage"]["rows"]
    assert {row["system"] for row in rows} == {"loragate", "vllm-lora", "loragate, no prefix reuse"}, rows
    # At concurrency 1 every ticket comes after the warm-up, so its system prompt is in the cache
    # (tickets sent together compute it side by side, so higher levels read less).
    alone = {row["system"]: row for row in rows if row["concurrency"] == 1}
    assert alone["loragate"]["schema_valid"] == alone["loragate"]["requests"], alone["loragate"]
    assert alone["vllm-lora"]["schema_valid"] is not None
    assert alone["loragate"]["prefix_cache_hit_ratio"] > 0.5, alone["loragate"]
    assert alone["vllm-lora"]["prefix_cache_hit_ratio"] > 0.5, alone["vllm-lora"]
    salted = next(row for row in rows if row["system"] == "loragate, no prefix reuse")
    assert salted["prefix_cache_hit_ratio"] == 0, salted
    assert {"loragate/vllm-lora", "loragate/loragate, no prefix reuse"} <= set(
        report["comparisons"]["triage"]["ratios"])

    text = (out / "bench.md").read_text()
    assert all(f"## {name}" in text for name in COMPARISONS) and "## Targets" in text

    # The profile names every server's processes, and the engine's work shows in vLLM's code.
    profiles = report["profiles"]["peer-base"]
    assert {p["server"] for p in profiles} == set(report["servers"]), profiles
    loragate = next(p for p in profiles if p["server"] == "loragate")
    assert len(loragate["processes"]) >= 2 and all((out / p["raw_file"]).stat().st_size > 0 for p in profiles)
    assert any("vllm/" in f["function"] for proc in loragate["processes"] for f in proc["self_time"]), loragate
    assert "Where the CPU time goes" in text

    # Every server it started has stopped (each served on its own port, recorded in the report).
    ports = [server["url"].rsplit(":", 1)[1] for server in report["servers"].values()]
    assert len(ports) == 5
    running = subprocess.run(["pgrep", "-af", f"port ({'|'.join(ports)})( |$)"], capture_output=True,
                             text=True).stdout
    assert running == "", running


def _tail(log: Path, lines: int = 80) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
