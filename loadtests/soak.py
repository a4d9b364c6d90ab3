"""A soak with faults: mixed traffic for a fixed time, then a SIGTERM drain and a restart.

    .venv/bin/python -m loadtests.soak --duration-s 1800 --out loadtests/results/soak/   # the committed run
    .venv/bin/python -m loadtests.soak --duration-s 180 --out /tmp/soak                  # what `make test` runs

It starts its own service (service/testing/process.py: keyless on 127.0.0.1, like the bench) on a
throw-away adapter store, registers two generated adapters and a route over the base model and
both, then for `--duration-s` runs `--concurrency` clients (asyncio, httpx) mixing chat (base,
adapters, the route), streaming chat, text completions, triage, bad inputs that must get one
documented 4xx, and clients that leave mid-stream or before the reply; beside them an admin client
swaps each adapter to a new version, changes the route's weights (PATCH) and registers, uses and
removes a short-lived adapter. Every `--sample-interval-s` it reads the service's process tree
from /proc: RSS and open file descriptors. After the traffic: the engine must hold no request,
the registry and routes are read, SIGTERM goes to the main process with requests in flight (they
must complete, readiness and new requests get 503, exit code 0), and a restart on the same store
must list the same adapters and routes and serve them.

Writes soak.json (figures, targets, machine, command, per-window series), soak.md, soak.png and
soak-requests.jsonl.gz (every request) to `--out`; exits 0 when every target is met, else 1.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from loadtests.bench_servers import proc_table, tree_members, tree_rss
from loadtests.bench_triage import load_tickets
from loadtests.common import REPO_ROOT, RESULTS_DIR, machine_info, progress
from loadtests.soak_report import (
    LATENCY_KINDS, Outcome, Result, Sample, counts, differences, growth, markdown, missing_kinds, p95_series, plot,
    registry_state, targets,
)
from loadtests.soak_traffic import LONG_TOKENS, Traffic
from service.config import Settings
from service.testing import TICKETS_FILE
from service.testing.adapters import make_peft_adapter
from service.testing.process import ServiceProcess

ADAPTERS = ("soak-a", "soak-b")
# Triage goes to the base model and the project's trained triage adapter: a random-weight adapter
# writes no schema-valid triage within the budget (a 502 by contract, which the soak would count
# against the service).
TRIAGE_ADAPTER = "ticket-triage"
ROUTE, SHORT_LIVED = "soak-route", "soak-tmp"
# What must have happened at least once for the soak to say anything (kinds and labels).
WANTED = ("chat", "stream", "completion", "triage", "bad", "disconnect", "drain", "restart",
          "swap soak-a", "swap soak-b", "route weights", "register a short-lived adapter", "remove an adapter",
          "disconnect left mid-stream", "disconnect waiting for the reply")
PROGRESS_EVERY_S = 60.0  # a progress line at most this often during the traffic


# ------------------------------------------------------------------------- the process
def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:  # gone, or not ours to read
        return 0


def sample_tree(root: int, t_s: float) -> Sample:
    """RSS (VmRSS summed, as the bench reads it) and open fds of the service's whole process tree."""
    table = proc_table()
    members = tree_members(root, table)
    return Sample(t_s=round(t_s, 2), rss_bytes=tree_rss(root, table), open_fds=sum(fd_count(p) for p in members),
                  processes=len(members))


def make_sources(model_dir: Path, root: Path) -> dict[str, list[Path]]:
    """Two weight sets per adapter (each swap alternates them, so every version really differs) and
    one for the short-lived adapter. Half-strength random weights: visibly different output that
    still triages within its token budget (as tests/integration/test_triage.py's adapter)."""
    made: dict[str, list[Path]] = {}
    for i, name in enumerate((*ADAPTERS, SHORT_LIVED)):
        sides = ("1", "2") if name in ADAPTERS else ("1",)
        made[name] = [make_peft_adapter(model_dir, root / f"{name}-{side}", seed=100 + 10 * i + int(side),
                                        weight_scale=0.5) for side in sides]
        progress(f"made {name} ({len(sides)} weight set{'s' if len(sides) > 1 else ''})")
    made[TRIAGE_ADAPTER] = [Path(shutil.copytree(REPO_ROOT / "adapters" / TRIAGE_ADAPTER, root / TRIAGE_ADAPTER))]
    return made


def service_env(store: Path, sources: Path, drain_timeout_s: float) -> dict[str, str]:
    return {
        "LORAGATE_ADAPTER_STORE": str(store),
        "LORAGATE_ADAPTER_ROOTS": json.dumps([str(sources)]),
        "LORAGATE_ADAPTER_MAX_BYTES": str(200 * 2**20),
        "LORAGATE_DRAIN_TIMEOUT_S": str(drain_timeout_s),
        "LORAGATE_INITIAL_ADAPTERS": "{}",  # exactly what the soak registers
    }


def engine_unfinished(metrics_text: str) -> float | None:
    """`loragate_engine_requests_unfinished` summed over its series; None when it is not exported."""
    values = [sample.value for family in text_string_to_metric_families(metrics_text) for sample in family.samples
              if sample.name == "loragate_engine_requests_unfinished"]
    return sum(values) if values else None


async def wait_engine_idle(client: httpx.AsyncClient, timeout_s: float = 60) -> float | None:
    """After the traffic: abandoned requests must have been aborted in the engine, not left running."""
    deadline, value = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        value = engine_unfinished((await client.get("/metrics", timeout=30)).text)
        if value == 0:
            return value
        await asyncio.sleep(1)
    return value


async def snapshot(client: httpx.AsyncClient) -> dict[str, Any]:
    adapters = (await client.get("/admin/adapters", timeout=60)).raise_for_status().json()
    routes = (await client.get("/admin/routes", timeout=60)).raise_for_status().json()
    return registry_state(adapters, routes)


def client_for(proc: ServiceProcess) -> httpx.AsyncClient:
    # Idle connections are dropped after 2 s, before uvicorn's 5 s keep-alive closes them from its
    # side: a request sent on a connection the server is closing would fail for the client's sake.
    return httpx.AsyncClient(base_url=proc.base_url, timeout=300,
                             limits=httpx.Limits(max_connections=64, keepalive_expiry=2.0))


# --------------------------------------------------------------------------- workload
class Soak:
    def __init__(self, args: argparse.Namespace, sources: dict[str, list[Path]], origin: float) -> None:
        self.args, self.sources, self.origin = args, sources, origin
        self.results: list[Result] = []
        self.samples: list[Sample] = []
        self.proc: subprocess.Popen[bytes] | None = None

    def clock_s(self) -> float:
        return time.monotonic() - self.origin

    async def setup(self, traffic: Traffic) -> None:
        for name in (*ADAPTERS, TRIAGE_ADAPTER):
            self.results.append(await traffic.register(name, self.sources[name][0], f"register {name}"))
        self.results.append(await traffic.set_route({traffic.base: 2, ADAPTERS[0]: 1, ADAPTERS[1]: 1}, create=True))
        if failed := [r for r in self.results if r.outcome is not Outcome.OK]:
            raise RuntimeError(f"setting up the adapters and the route failed: {[r.detail for r in failed]}")

    def running(self, deadline: float) -> bool:
        """Until the deadline, while the service is alive (a dead one would only add failures)."""
        return self.clock_s() < deadline and self.proc is not None and self.proc.poll() is None

    async def worker(self, traffic: Traffic, rng: random.Random, deadline: float) -> None:
        while self.running(deadline):
            self.results.append(await traffic.one(rng))

    async def churn(self, traffic: Traffic, rng: random.Random, deadline: float) -> None:
        """Admin changes while the traffic runs, one every `--admin-interval-s`."""
        steps = ("swap a", "route weights", "swap b", "short-lived adapter", "route weights")
        weights = {traffic.base: 2, ADAPTERS[0]: 1, ADAPTERS[1]: 1}
        swaps = {name: 0 for name in ADAPTERS}
        step = 0
        while self.running(deadline - self.args.admin_interval_s):
            await asyncio.sleep(self.args.admin_interval_s)
            action = steps[step % len(steps)]
            step += 1
            if action.startswith("swap"):
                name = ADAPTERS[0] if action == "swap a" else ADAPTERS[1]
                swaps[name] += 1
                folder = self.sources[name][swaps[name] % 2]
                self.results.append(await traffic.register(name, folder, f"swap {name}"))
            elif action == "route weights":
                new = dict(weights)
                while new == weights:  # an unchanged PATCH would not raise the route's version
                    new = {target: rng.randint(1, 9) for target in weights}
                weights = new
                self.results.append(await traffic.set_route(weights))
            else:
                registered = await traffic.register(SHORT_LIVED, self.sources[SHORT_LIVED][0],
                                                    "register a short-lived adapter")
                self.results.append(registered)
                if registered.outcome is Outcome.OK:
                    self.results.append(await traffic.chat(SHORT_LIVED, rng))
                    self.results.append(await traffic.remove(SHORT_LIVED))

    async def sampler(self, root: int, stop: asyncio.Event) -> None:
        reported = 0.0
        while not stop.is_set():
            sample = await asyncio.to_thread(sample_tree, root, self.clock_s())
            self.samples.append(sample)
            if sample.t_s - reported >= PROGRESS_EVERY_S:  # a long run shows it is alive and how it goes
                reported = sample.t_s
                outcomes = Counter(result.outcome.value for result in self.results)
                progress(f"{sample.t_s:.0f} s: {len(self.results)} requests ({dict(outcomes)}), "
                         f"RSS {sample.rss_bytes / 2**20:.0f} MiB, {sample.open_fds} fds")
            try:
                await asyncio.wait_for(stop.wait(), self.args.sample_interval_s)
            except asyncio.TimeoutError:
                pass

    async def run(self, proc: ServiceProcess) -> dict[str, Any]:
        """Setup, traffic, then the drain. Returns the figures of the drain and the snapshot."""
        assert proc.process is not None
        args, self.proc = self.args, proc.process
        async with client_for(proc) as client:
            base = (await client.get("/v1/models")).json()["data"][0]["id"]  # the base model comes first
            traffic = Traffic(client, base, ADAPTERS, ROUTE, load_tickets(60, TICKETS_FILE), args.max_tokens,
                              triage_adapter=TRIAGE_ADAPTER,
                              origin=self.origin)
            await self.setup(traffic)
            stop = asyncio.Event()
            sampler = asyncio.create_task(self.sampler(proc.process.pid, stop))
            deadline = self.clock_s() + args.duration_s
            progress(f"traffic for {args.duration_s:.0f} s at concurrency {args.concurrency}")
            rngs = [random.Random(args.seed + i) for i in range(args.concurrency + 1)]
            await asyncio.gather(self.churn(traffic, rngs[-1], deadline),
                                 *(self.worker(traffic, rngs[i], deadline) for i in range(args.concurrency)))
            stop.set()
            await sampler
            if proc.process.poll() is not None:
                raise RuntimeError(f"the service exited with code {proc.process.returncode} during the traffic "
                                   f"({len(self.results)} requests sent):\n{proc.log_tail()}")
            progress(f"traffic done: {len(self.results)} requests; waiting for the engine to be idle")
            idle = await wait_engine_idle(client)
            before = await snapshot(client)
            drain = await self.drain(traffic, proc, rngs[0])
        return {"engine_unfinished_after_traffic": idle, "before": before, "drain": drain, "base": base}

    async def drain(self, traffic: Traffic, proc: ServiceProcess, rng: random.Random) -> dict[str, Any]:
        """SIGTERM to the main process (as Docker and Kubernetes send it) with three requests in
        flight: they must complete; readiness and a new request get 503 meanwhile; exit code 0."""
        assert proc.process is not None
        first = asyncio.Event()
        long = {"max_tokens": LONG_TOKENS, "min_tokens": LONG_TOKENS, "ignore_eos": True}
        in_flight = [
            asyncio.create_task(traffic.stream(traffic.base, rng, kind="drain", first_event=first, **long)),
            asyncio.create_task(traffic.chat(ADAPTERS[0], rng, kind="drain", **long)),
            # The base model: a random adapter's triage can run to its retry, longer than a drain should.
            asyncio.create_task(traffic.triage(traffic.base, rng, kind="drain")),
        ]
        try:
            await asyncio.wait_for(first.wait(), 120)
        except asyncio.TimeoutError:
            progress("no stream event within 120 s; sending SIGTERM anyway")
        await asyncio.sleep(1.0)  # the non-streaming ones are admitted by now
        running = sum(not task.done() for task in in_flight)
        progress(f"SIGTERM to {proc.process.pid} with {running} requests in flight")
        sent = time.monotonic()
        os.kill(proc.process.pid, signal.SIGTERM)
        await asyncio.sleep(0.3)
        async with client_for(proc) as fresh:  # new connections: the pooled ones may be closing
            probing = Traffic(fresh, traffic.base, ADAPTERS, ROUTE, traffic.tickets, self.args.max_tokens,
                              triage_adapter=TRIAGE_ADAPTER,
                              origin=self.origin)
            probes = [await probing.probe_ready(), await probing.refused_after_sigterm(rng)]
        done = list(await asyncio.gather(*in_flight))
        try:
            code: int | None = await asyncio.to_thread(proc.process.wait, self.args.drain_timeout_s + 90)
        except subprocess.TimeoutExpired:
            code = None
        stopped_s = round(time.monotonic() - sent, 1)
        self.results += done + probes
        progress(f"exit code {code} {stopped_s} s after SIGTERM; in flight: {[r.outcome.value for r in done]}")
        return {"in_flight_at_sigterm": running, "in_flight": [r.outcome.value for r in done],
                "in_flight_completed": running > 0 and all(r.outcome is Outcome.OK for r in done),
                "probes": {r.label: r.outcome.value for r in probes}, "exit_code": code, "stopped_after_s": stopped_s}

    async def after_restart(self, proc: ServiceProcess, base: str) -> dict[str, Any]:
        """The restarted service lists the same adapters and routes and serves each of them."""
        async with client_for(proc) as client:
            after = await snapshot(client)
            traffic = Traffic(client, base, ADAPTERS, ROUTE, load_tickets(60, TICKETS_FILE), self.args.max_tokens,
                              triage_adapter=TRIAGE_ADAPTER,
                              origin=self.origin)
            rng = random.Random(self.args.seed - 1)
            for target in (base, *ADAPTERS, TRIAGE_ADAPTER, ROUTE):
                self.results.append(await traffic.chat(target, rng, kind="restart"))
            self.results.append(await traffic.stream(ROUTE, rng, kind="restart"))
            self.results.append(await traffic.triage(ROUTE, rng, kind="restart"))
        return after


# ------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration-s", type=float, default=1800, help="how long the traffic runs")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "soak", help="folder for soak.json, .md, .png")
    parser.add_argument("--concurrency", type=int, default=4, help="clients sending the mixed traffic")
    parser.add_argument("--max-tokens", type=int, default=16, help="max_tokens of chat and completions")
    parser.add_argument("--admin-interval-s", type=float, default=None,
                        help="seconds between admin changes (default: duration / 20, within 5-20 s)")
    parser.add_argument("--sample-interval-s", type=float, default=5.0, help="RSS and fd sampling interval")
    parser.add_argument("--window-s", type=float, default=None, help="p95 window (default: duration / 30, >= 30 s)")
    parser.add_argument("--warmup-s", type=float, default=None,
                        help="excluded from the RSS growth (default: a third of the run, at most 300 s)")
    parser.add_argument("--span-s", type=float, default=None,
                        help="RSS baseline and end are medians over this long (default: duration / 10, >= 30 s)")
    parser.add_argument("--drain-timeout-s", type=float, default=30.0, help="the service's drain timeout")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--keep-work", action="store_true", help="keep the store, adapters and service logs")
    args = parser.parse_args(argv)
    d = args.duration_s
    args.admin_interval_s = args.admin_interval_s or min(20.0, max(5.0, d / 20))
    args.window_s = args.window_s or max(30.0, d / 30)
    args.warmup_s = args.warmup_s if args.warmup_s is not None else min(300.0, d / 3)
    args.span_s = args.span_s or max(30.0, d / 10)
    return args


def _interrupt(signum: int, _: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds through the `finally` that stops the services


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    (work / "sources").mkdir()
    env = service_env(work / "store", work / "sources", args.drain_timeout_s)
    sources = make_sources(Settings().model_dir, work / "sources")  # before the engine takes the CPUs
    first = ServiceProcess(work / "service.log", env=env)
    second = ServiceProcess(work / "service-restart.log", env=env)
    failed = True
    try:
        progress(f"starting the service on {first.base_url} (log {first.log_path})")
        first.start_ready()
        soak = Soak(args, sources, time.monotonic())
        ran = asyncio.run(soak.run(first))
        progress(f"restarting on the same store (log {second.log_path})")
        started = time.monotonic()
        second.start_ready()
        restart = {"ready_s": round(time.monotonic() - started, 1)}
        after = asyncio.run(soak.after_restart(second, ran["base"]))
        report = build_report(args, soak, ran, after, restart)
        failed = not report["passed"]
    finally:
        for proc in (first, second):
            proc.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if failed or args.keep_work:
            progress(f"store, adapters and service logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    write(report, soak.results, args.out)
    return 0 if report["passed"] else 1


def build_report(args: argparse.Namespace, soak: Soak, ran: dict[str, Any], after: dict[str, Any],
                 restart: dict[str, Any]) -> dict[str, Any]:
    workload = [s for s in soak.samples if s.t_s <= args.duration_s + 60]
    rss = growth([(s.t_s, s.rss_bytes) for s in workload], args.warmup_s, args.span_s)
    fds = growth([(s.t_s, s.open_fds) for s in workload], args.warmup_s, args.span_s)
    figures_counts = counts(soak.results)
    figures_counts["missing_kinds"] = missing_kinds(soak.results, WANTED)
    idle = ran["engine_unfinished_after_traffic"]
    figures = {
        "counts": figures_counts, "rss": rss.model_dump(), "fds": fds.model_dump(), "drain": ran["drain"],
        "restart": restart, "engine_unfinished_after_traffic": idle,
        "registry": {"compared": True, "differences": differences(ran["before"], after),
                     "adapters": sorted(after["adapters"]), "routes": sorted(after["routes"])},
    }
    met = [t.model_dump() for t in targets(figures)]
    met.append({"name": "engine requests left after the traffic (disconnects aborted)", "target": "0",
                "value": idle, "met": idle == 0})
    end_s = max((r.started_s for r in soak.results if r.kind in LATENCY_KINDS), default=0.0) + 1e-6
    return {
        "command": machine_info()["command"], "machine": machine_info(), "passed": all(t["met"] for t in met),
        "config": {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()}
        | {"model": ran["base"], "adapters": list(ADAPTERS), "route": ROUTE, "short_lived_adapter": SHORT_LIVED},
        "targets": met, "figures": figures,
        "series": {"p95": p95_series(soak.results, args.window_s, end_s), "samples": [s.model_dump() for s in soak.samples]},
    }


def write(report: dict[str, Any], results: list[Result], out: Path) -> None:
    (out / "soak.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "soak.md").write_text(markdown(report))
    plot(report, out / "soak.png")
    with gzip.open(out / "soak-requests.jsonl.gz", "wt") as sink:
        for result in results:
            sink.write(result.model_dump_json() + "\n")
    shown = out.resolve().relative_to(REPO_ROOT) if out.resolve().is_relative_to(REPO_ROOT) else out
    print(markdown(report))
    print(f"wrote {shown}/soak.json, soak.md, soak.png and soak-requests.jsonl.gz")


if __name__ == "__main__":
    raise SystemExit(main())
