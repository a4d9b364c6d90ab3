"""The servers `loragate bench` compares: loragate itself and vLLM's own OpenAI server as a peer,
started together, watched for memory, and stopped together (also on error, Ctrl-C or SIGTERM)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from loadtests.bench_layout import PeerLeg, PeerSpec
from loadtests.common import progress
from service.api.bootstrap import engine_options
from service.config import Settings
from service.engine.types import EngineOptions
from service.testing.process import ServiceProcess, VllmServer

LORAGATE = "loragate"
PEER, PEER_LORA = "vllm", "vllm-lora"  # vLLM's own server in loragate's layout, without and with LoRA
PEER_DEFAULTS, PEER_LORA_DEFAULTS = "vllm-defaults", "vllm-lora-defaults"  # the same at vLLM's defaults
# server name -> (leg, serves an adapter)
PEERS: dict[str, tuple[PeerLeg, bool]] = {
    PEER: ("same-layout", False), PEER_LORA: ("same-layout", True),
    PEER_DEFAULTS: ("defaults", False), PEER_LORA_DEFAULTS: ("defaults", True),
}


# ------------------------------------------------------------------------------ memory
def stat_fields(pid: int | str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (which may contain spaces), or None
    once the process is gone: [0] state, [1] ppid, [2] pgid, ... [11] utime, [12] stime."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()


def proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, pgid) for every process we can read."""
    table: dict[int, tuple[int, int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (fields := stat_fields(entry.name)) is not None:
            table[int(entry.name)] = (int(fields[1]), int(fields[2]))
    return table


def _rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_members(root: int, table: dict[int, tuple[int, int]]) -> set[int]:
    """`root`, its descendants and its process group (vLLM's EngineCore and workers are children)."""
    members = {pid for pid, (_, pgid) in table.items() if pgid == root} | {root}
    frontier = list(members)
    while frontier:  # descendants of every member, also those that left the group
        parent = frontier.pop()
        for pid, (ppid, _) in table.items():
            if ppid == parent and pid not in members:
                members.add(pid)
                frontier.append(pid)
    return members


def tree_rss(root: int, table: dict[int, tuple[int, int]]) -> int:
    """VmRSS summed over the server's process tree (shared pages count once per process, as `ps`
    would show them)."""
    return sum(_rss_bytes(pid) for pid in tree_members(root, table))


class RssSampler(threading.Thread):
    """Samples each server's process-tree RSS every `interval` seconds (and on demand)."""

    def __init__(self, roots: dict[str, int], interval: float = 0.5) -> None:
        super().__init__(daemon=True, name="rss-sampler")
        self.roots, self.interval = roots, interval
        self.samples: list[tuple[float, dict[str, int]]] = []
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def sample_now(self) -> None:
        table = proc_table()
        point = (time.monotonic(), {name: tree_rss(pid, table) for name, pid in self.roots.items()})
        with self._lock:
            self.samples.append(point)

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self.sample_now()

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    def peak(self, server: str, since: float = 0.0, until: float = float("inf")) -> int | None:
        with self._lock:
            values = [rss[server] for t, rss in self.samples if since <= t <= until and server in rss]
        return max(values) if values else None


# ------------------------------------------------------------------------------- fleet
@dataclass
class Fleet:
    """The running servers by name, their start-up figures and the memory sampler. One server runs
    at a time: `activate` stops (SIGSTOP) every other server's process group before it continues
    (SIGCONT) the one about to be measured, so an idle engine core's busy-polling takes no core."""

    servers: dict[str, ServiceProcess] = field(default_factory=dict)
    commands: dict[str, list[str]] = field(default_factory=dict)
    ready_s: dict[str, float] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    sampler: RssSampler | None = None
    paused: set[str] = field(default_factory=set)
    active: str | None = None
    send: Callable[[int, int], None] = os.killpg  # (process group, signal); each server leads its own session

    def url(self, name: str) -> str:
        return self.servers[name].base_url

    def pids(self) -> dict[str, int]:
        return {name: proc.process.pid for name, proc in self.servers.items() if proc.process is not None}

    def activate(self, name: str) -> None:
        """Pause every other server first, then resume `name` (no moment with two running)."""
        if name not in self.servers:
            raise KeyError(f"server {name} is not running")
        for other, pid in self.pids().items():
            if other != name and other not in self.paused:
                self._signal(other, pid, signal.SIGSTOP)
                self.paused.add(other)
        if name in self.paused:
            self._signal(name, self.pids()[name], signal.SIGCONT)
            self.paused.discard(name)
        if self.active != name:
            progress(f"running {name} alone ({', '.join(sorted(self.paused)) or 'nothing'} paused)")
        self.active = name

    def resume_all(self) -> None:
        """Before stopping: a stopped process would not act on SIGTERM."""
        for name in sorted(self.paused):
            if (pid := self.pids().get(name)) is not None:
                self._signal(name, pid, signal.SIGCONT)
        self.paused.clear()
        self.active = None

    def _signal(self, name: str, pid: int, sig: int) -> None:
        try:
            self.send(pid, sig)
        except ProcessLookupError:
            progress(f"{name}: process group {pid} is gone")

    def tree(self, name: str) -> set[int]:
        return tree_members(self.pids()[name], proc_table())


def _interrupt(signum: int, _: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds through the `finally` that stops the servers


@contextmanager
def fleet(wanted: list[str], work: Path, model_dir: Path, served_name: str, sources: Path,
          peers: dict[str, PeerSpec]) -> Iterator[Fleet]:
    """Start the `wanted` servers at once (their start-ups overlap), wait until each is ready,
    pause all of them, yield, and stop every one of them whatever happens."""
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    made = Fleet()
    try:
        for name in wanted:
            log = work / f"{name}.log"
            if name == LORAGATE:
                proc: ServiceProcess = ServiceProcess(log, env={
                    "LORAGATE_ADAPTER_STORE": str(work / "store"),
                    "LORAGATE_ADAPTER_ROOTS": json.dumps([str(sources)]),
                    "LORAGATE_ADAPTER_MAX_BYTES": str(200 * 2**20),
                })
            else:
                spec = peers[name]
                proc = VllmServer(log, model_dir, served_name, engine_args=spec.args, drop_env=spec.drop_env)
                proc.extra_env.update(spec.env)
            made.commands[name] = proc.command()
            made.servers[name] = proc.start()
            progress(f"starting {name} on {proc.base_url} (log {log})")
        started = time.monotonic()
        for name, proc in made.servers.items():
            proc.wait_ready()
            made.ready_s[name] = round(time.monotonic() - started, 1)
            progress(f"{name} ready after {made.ready_s[name]:.0f} s")
            made.versions[name] = _server_version(proc.base_url)
        for name in made.servers:  # nothing runs until a comparison activates its server
            made._signal(name, made.pids()[name], signal.SIGSTOP)
            made.paused.add(name)
        made.sampler = RssSampler(made.pids())
        made.sampler.start()
        yield made
    finally:
        if made.sampler is not None:
            made.sampler.stop()
        made.resume_all()
        _stop_all(made.servers)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _server_version(base_url: str) -> str | None:
    try:
        response = httpx.get(f"{base_url}/version", timeout=5)
        return response.json().get("version") if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


def _stop_all(servers: dict[str, ServiceProcess]) -> None:
    if not servers:
        return
    progress(f"stopping {', '.join(servers)}")
    with ThreadPoolExecutor(max_workers=len(servers)) as pool:  # each may wait for its drain
        for name, error in zip(servers, pool.map(_stop_one, servers.values())):
            if error:
                progress(f"stopping {name}: {error}")


def _stop_one(proc: ServiceProcess) -> str | None:
    try:
        proc.stop()
        return None
    except Exception as exc:  # noqa: BLE001 - keep stopping the others
        return f"{type(exc).__name__}: {exc}"


def loragate_options() -> EngineOptions:
    """The engine options a `loragate serve` started from this environment uses."""
    return engine_options(Settings())
