"""`loragate bench --smoke` end to end: it starts loragate, vLLM's own server without and with LoRA,
runs every comparison (peer-base, peer-adapter, adapters, structured, swaps, triage) with a few requests
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
RUN_TIMEOUT_S = 1500  # three server start-ups on 2 CPUs, then about two minutes of requests


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
    base = report["comparisons"]["peer-base"]["rows"]
    assert all(row["peak_rss_mib"] and row["peak_rss_mib"] > 100 for row in base), base
    assert report["failed_requests"] == 0, _tail(log)
    zero_failed = next(t for t in report["targets"] if t["name"] == "zero failed requests")
    assert zero_failed["met"] is True
    assert report["machine"]["nproc"] >= 1 and report["versions"]["vllm"]
    assert report["command"].startswith("loragate bench --smoke")

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
    assert len(ports) == 3
    running = subprocess.run(["pgrep", "-af", f"port ({'|'.join(ports)})( |$)"], capture_output=True,
                             text=True).stdout
    assert running == "", running


def _tail(log: Path, lines: int = 80) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
