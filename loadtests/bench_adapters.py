"""Adapter registration latency and the cost of hot swaps for base-model traffic.

Starts its own service (service/testing/process.py) on a throw-away adapter store, then
measures, in one run:

1. registration latency - the wall time of POST /admin/adapters (validate + copy + engine load) -
   p50/p95 over N registrations for each rank (rank 64 targets all 7 modules, as a worst case);
2. base-model request latency (chat, max_tokens 16, temperature 0, concurrency 2) with no swaps
   and while one adapter name is re-registered back to back, reported as swap / no-swap ratios.

    .venv/bin/python -m loadtests.bench_adapters --registrations 10 --requests 60

Writes loadtests/results/adapters.json (figures + machine info) and loadtests/results/adapters.png.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from loadtests.common import REPO_ROOT, RESULTS_DIR, machine_info, percentile, progress, run_pool
from service.config import Settings
from service.testing.adapters import ALL_MODULES, DEFAULT_TARGETS, make_peft_adapter
from service.testing.process import ServiceProcess

PROMPT = [{"role": "user", "content": "Name three colors."}]






def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50_s": percentile(values, 50), "p95_s": percentile(values, 95),
            "min_s": min(values, default=float("nan")), "max_s": max(values, default=float("nan"))}




# --------------------------------------------------------------------------------- adapters
def make_adapters(model_dir: Path, root: Path, ranks: list[int], swap_rank: int) -> dict[str, Path]:
    made: dict[str, Path] = {}
    for rank in ranks:
        targets = ALL_MODULES if rank >= 64 else DEFAULT_TARGETS
        progress(f"making rank-{rank} adapter ({len(targets)} modules)")
        made[f"r{rank}"] = make_peft_adapter(model_dir, root / f"rank{rank}", rank=rank, seed=rank, targets=targets)
    return made | make_swap_pair(model_dir, root, swap_rank)


def make_swap_pair(model_dir: Path, root: Path, rank: int) -> dict[str, Path]:
    """`swap-a` and `swap-b`: what bench_swaps re-registers under one name."""
    # Two different weights, so every swap really changes the adapter.
    return {f"swap-{side}": make_peft_adapter(model_dir, root / f"swap-{side}", rank=rank, seed=1000 + ord(side))
            for side in ("a", "b")}


def register(client: httpx.Client, name: str, path: Path) -> float:
    started = time.perf_counter()
    response = client.post("/admin/adapters", json={"name": name, "path": str(path)})
    elapsed = time.perf_counter() - started
    if response.status_code != 201:
        raise RuntimeError(f"registering {name} failed: {response.status_code} {response.text}")
    return elapsed


def bench_registrations(client: httpx.Client, adapters: dict[str, Path], ranks: list[int], count: int,
                        warmup: int) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for rank in ranks:
        name, path = f"bench-r{rank}", adapters[f"r{rank}"]
        size = (path / "adapter_model.safetensors").stat().st_size
        for _ in range(warmup):
            register(client, name, path)
        # The same name each time: every registration is a new version swapped in (the old one is
        # retired in the background), which is how adapters are updated in practice.
        timings = []
        for i in range(count):
            timings.append(register(client, name, path))
            progress(f"rank {rank}: registration {i + 1}/{count} {timings[-1] * 1000:.0f} ms")
        client.delete(f"/admin/adapters/{name}")
        results[f"rank{rank}"] = {"rank": rank, "size_bytes": size, **summary(timings), "samples_s": timings}
    return results


# ----------------------------------------------------------------------------- requests
def request_latencies(base_url: str, model: str, count: int, concurrency: int, max_tokens: int,
                      label: str, extra: dict[str, Any] | None = None) -> list[float]:
    """End-to-end latencies of `count` chat requests; `extra` adds body fields (e.g. min_tokens)."""
    def one(_: int) -> float:
        with httpx.Client(base_url=base_url, timeout=300) as http:
            started = time.perf_counter()
            response = http.post("/v1/chat/completions", json={
                "model": model, "messages": PROMPT, "max_tokens": max_tokens, "temperature": 0, **(extra or {}),
            })
            elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"base request failed: {response.status_code} {response.text}")
        return elapsed

    def report(done: int, total: int, _: int, __: float) -> None:
        if done % max(1, total // 5) == 0 or done == total:
            progress(f"{label}: {done}/{total} requests")

    return run_pool(list(range(count)), concurrency, one, report)


class Swapper(threading.Thread):
    """Re-registers one adapter name back to back, alternating two weight files, until stopped."""

    def __init__(self, base_url: str, sources: tuple[Path, Path]) -> None:
        super().__init__(daemon=True)
        self.base_url, self.sources = base_url, sources
        self.stop_event = threading.Event()
        self.timings: list[float] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with httpx.Client(base_url=self.base_url, timeout=300) as client:
                while not self.stop_event.is_set():
                    self.timings.append(register(client, "bench-swap", self.sources[len(self.timings) % 2]))
        except BaseException as exc:  # reported by the main thread
            self.error = exc


def bench_swaps(base_url: str, model: str, adapters: dict[str, Path], requests: int, rounds: int,
                concurrency: int, max_tokens: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Alternate no-swap and swap phases so slow drift (thermal, caches) hits both alike."""
    quiet: list[float] = []
    swapping: list[float] = []
    swap_timings: list[float] = []
    per_round = max(1, requests // rounds)
    with httpx.Client(base_url=base_url, timeout=300) as client:
        register(client, "bench-swap", adapters["swap-a"])  # the name exists in both phases
    for round_ in range(1, rounds + 1):
        quiet += request_latencies(base_url, model, per_round, concurrency, max_tokens,
                                   f"round {round_}/{rounds} no swaps", extra)
        swapper = Swapper(base_url, (adapters["swap-b"], adapters["swap-a"]))
        swapper.start()
        try:
            swapping += request_latencies(base_url, model, per_round, concurrency, max_tokens,
                                          f"round {round_}/{rounds} with swaps", extra)
        finally:
            swapper.stop_event.set()
            swapper.join(300)
        if swapper.error is not None:
            raise RuntimeError(f"swapping failed: {swapper.error}") from swapper.error
        swap_timings += swapper.timings
        progress(f"round {round_}/{rounds}: {len(swapper.timings)} swaps during the swap phase")
    with httpx.Client(base_url=base_url, timeout=300) as client:
        client.delete("/admin/adapters/bench-swap")
    no_swaps, with_swaps = summary(quiet), summary(swapping)
    return {
        "no_swaps": {**no_swaps, "samples_s": quiet},
        "with_swaps": {**with_swaps, "samples_s": swapping},
        "ratio_p50": with_swaps["p50_s"] / no_swaps["p50_s"],
        "ratio_p95": with_swaps["p95_s"] / no_swaps["p95_s"],
        "swaps": {"count": len(swap_timings), **summary(swap_timings)},
    }


# ------------------------------------------------------------------------------- report
def print_table(results: dict[str, Any]) -> None:
    print("\nAdapter registration (POST /admin/adapters wall time)")
    print(f"{'rank':>6} {'size MB':>8} {'n':>4} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9}")
    for row in results["registration"].values():
        print(f"{row['rank']:>6} {row['size_bytes'] / 2**20:>8.1f} {row['n']:>4} {row['p50_s'] * 1000:>9.0f} "
              f"{row['p95_s'] * 1000:>9.0f} {row['max_s'] * 1000:>9.0f}")
    swaps = results["base_latency"]
    print(f"\nBase-model chat latency (max_tokens {results['config']['max_tokens']}, "
          f"concurrency {results['config']['concurrency']})")
    print(f"{'phase':>12} {'n':>4} {'p50 ms':>9} {'p95 ms':>9}")
    for phase in ("no_swaps", "with_swaps"):
        row = swaps[phase]
        print(f"{phase:>12} {row['n']:>4} {row['p50_s'] * 1000:>9.0f} {row['p95_s'] * 1000:>9.0f}")
    print(f"{'ratio':>12} {'':>4} {swaps['ratio_p50']:>9.2f} {swaps['ratio_p95']:>9.2f}")
    print(f"swaps during the swap phases: {swaps['swaps']['count']} "
          f"(p50 {swaps['swaps']['p50_s'] * 1000:.0f} ms each)")


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on a server
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    rows = list(results["registration"].values())
    x = range(len(rows))
    left.bar([i - 0.2 for i in x], [r["p50_s"] * 1000 for r in rows], 0.4, label="p50")
    left.bar([i + 0.2 for i in x], [r["p95_s"] * 1000 for r in rows], 0.4, label="p95")
    left.set_xticks(list(x), [f"rank {r['rank']}\n{r['size_bytes'] / 2**20:.1f} MB" for r in rows])
    left.set_ylabel("ms")
    left.set_title("Registration latency (validate + copy + load)")
    left.legend()

    swaps = results["base_latency"]
    phases = ("no_swaps", "with_swaps")
    right.bar([-0.2, 0.8], [swaps[p]["p50_s"] * 1000 for p in phases], 0.4, label="p50")
    right.bar([0.2, 1.2], [swaps[p]["p95_s"] * 1000 for p in phases], 0.4, label="p95")
    right.set_xticks([0, 1], ["no swaps", f"continuous swaps\n({swaps['swaps']['count']} swaps)"])
    right.set_ylabel("ms")
    right.set_title(f"Base chat latency: ratio p50 {swaps['ratio_p50']:.2f}, p95 {swaps['ratio_p95']:.2f}")
    right.legend()
    info = results["machine"]
    fig.suptitle(f"loragate adapters - {info['cpu_model']} ({info['nproc']} CPUs), {info['date']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registrations", type=int, default=10, help="timed registrations per rank")
    parser.add_argument("--warmup", type=int, default=1, help="untimed registrations per rank first")
    parser.add_argument("--ranks", default="8,16,64", help="comma-separated ranks (64 targets all 7 modules)")
    parser.add_argument("--requests", type=int, default=60, help="base requests per phase (split over rounds)")
    parser.add_argument("--rounds", type=int, default=2, help="alternations of no-swap / swap phases")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--swap-rank", type=int, default=8, help="rank of the adapter swapped in the swap phase")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--keep-work", action="store_true", help="keep the temp store, adapters and service log")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    ranks = [int(r) for r in args.ranks.split(",") if r.strip()]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-adapters-"))
    sources, store = work / "sources", work / "store"
    sources.mkdir()
    model_dir = Settings().model_dir
    adapters = make_adapters(model_dir, sources, ranks, args.swap_rank)  # before the engine takes the CPUs

    env = {
        "LORAGATE_ADAPTER_STORE": str(store),
        "LORAGATE_ADAPTER_ROOTS": json.dumps([str(sources)]),
        "LORAGATE_ADAPTER_MAX_BYTES": str(200 * 2**20),
        "LORAGATE_MAX_LORA_RANK": str(max([64, *ranks])),
    }
    proc = ServiceProcess(work / "service.log", env=env).start()
    progress(f"starting the service on {proc.base_url} (log {work / 'service.log'})")
    try:
        started = time.monotonic()
        proc.wait_ready()
        progress(f"service ready after {time.monotonic() - started:.0f} s")
        with httpx.Client(base_url=proc.base_url, timeout=300) as client:
            model = client.get("/v1/models").json()["data"][0]["id"]  # the base model comes first
            request_latencies(proc.base_url, model, 4, args.concurrency, args.max_tokens, "warm-up")
            registration = bench_registrations(client, adapters, ranks, args.registrations, args.warmup)
        base_latency = bench_swaps(proc.base_url, model, adapters, args.requests, args.rounds,
                                   args.concurrency, args.max_tokens)
    except BaseException:
        progress(f"failed; service log and store kept in {work}")
        raise
    finally:
        proc.stop()
    if not args.keep_work:
        shutil.rmtree(work, ignore_errors=True)  # ~100 MB of adapters and store per run

    results = {
        "machine": machine_info(),
        "config": {"registrations_per_rank": args.registrations, "warmup": args.warmup, "ranks": ranks,
                   "requests_per_phase": args.requests, "rounds": args.rounds, "concurrency": args.concurrency,
                   "max_tokens": args.max_tokens, "swap_rank": args.swap_rank, "model": model},
        "registration": registration,
        "base_latency": base_latency,
    }
    json_path, png_path = args.out_dir / "adapters.json", args.out_dir / "adapters.png"
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, png_path)
    print_table(results)
    print(f"\nwrote {json_path.relative_to(REPO_ROOT) if json_path.is_relative_to(REPO_ROOT) else json_path} "
          f"and {png_path.name}")


if __name__ == "__main__":
    main()
