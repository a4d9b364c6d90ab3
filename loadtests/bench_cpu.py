"""No other process steals the cores of the server being measured: during each measured phase the
CPU time of every process in /proc (all of them, not only the bench's) is sampled, and a phase
where any process other than the measured server's tree, the bench's own load generator and its
profilers used more than `threshold` of a core on average refuses the run.

Sampled at the phase's start and end and every `interval` seconds between, so a process that exits
mid-phase still counts up to its last sample; one that starts and ends between two samples is not
seen.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel, Field

THRESHOLD_CORES = 0.10
# pid -> (utime + stime in clock ticks, command name)
CpuReading = dict[int, tuple[int, str]]


def read_proc_cpu(proc: Path = Path("/proc")) -> CpuReading:
    """Every process's CPU ticks (all threads) from /proc/<pid>/stat."""
    reading: CpuReading = {}
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        reading[int(entry.name)] = (int(fields[11]) + int(fields[12]), name)
    return reading


class Offender(BaseModel):
    pid: int
    command: str
    cores: float  # average share of one core over the phase


class PhaseCpu(BaseModel):
    """One measured phase: who else used the CPU while `server` was measured."""

    label: str
    server: str
    wall_s: float
    samples: int
    measured_cores: float  # the measured server's process tree
    bench_cores: float  # the load generator (and profilers, with --profile)
    others_cores: float  # every other process together
    top_others: list[Offender] = Field(default_factory=list)  # the busiest others, above 1% of a core
    ok: bool


class ContentionError(RuntimeError):
    """Another process took more than the threshold of a core while a server was measured."""

    def __init__(self, phase: PhaseCpu, threshold: float) -> None:
        worst = phase.top_others[0]
        super().__init__(
            f"refused: during '{phase.label}' (measuring {phase.server}) pid {worst.pid} ({worst.command}) used "
            f"{worst.cores:.0%} of a core on average (limit {threshold:.0%}); others together "
            f"{phase.others_cores:.2f} cores. Run the bench alone on the machine.")
        self.phase = phase


class CpuWatch:
    """`with watch.phase(label, server, measured_pids, bench_pids): ...` records a PhaseCpu per phase
    and raises ContentionError at the end of a phase that failed the check (`enforce`)."""

    def __init__(self, reader: Callable[[], CpuReading] = read_proc_cpu, clock: Callable[[], float] = time.monotonic,
                 ticks_per_s: float | None = None, threshold: float = THRESHOLD_CORES, interval: float = 1.0,
                 enforce: bool = True) -> None:
        self.reader, self.clock, self.threshold, self.interval, self.enforce = reader, clock, threshold, interval, enforce
        self.ticks_per_s = ticks_per_s or float(os.sysconf("SC_CLK_TCK"))
        self.phases: list[PhaseCpu] = []

    @contextmanager
    def phase(self, label: str, server: str, measured: Callable[[], set[int]],
              bench: Callable[[], set[int]]) -> Iterator[None]:
        first: CpuReading = self.reader()
        last: CpuReading = dict(first)
        samples = [1]
        started = self.clock()
        halt = threading.Event()

        def poll() -> None:
            while not halt.wait(self.interval):
                last.update(self.reader())  # keeps the last figure of a process that exits
                samples[0] += 1

        poller = threading.Thread(target=poll, daemon=True, name="cpu-watch")
        poller.start()
        try:
            yield
        finally:
            halt.set()
            poller.join()
        last.update(self.reader())
        samples[0] += 1
        result = self.judge(label, server, first, last, self.clock() - started, measured(), bench(), samples[0])
        self.phases.append(result)
        if self.enforce and not result.ok:
            raise ContentionError(result, self.threshold)

    def judge(self, label: str, server: str, first: CpuReading, last: CpuReading, wall: float,
              measured: set[int], bench: set[int], samples: int = 2) -> PhaseCpu:
        """Average cores per process over `wall` seconds; a process first seen after the start counts
        all its CPU time (it started during the phase)."""
        wall = max(wall, 1e-6)
        cores = {pid: (ticks - first.get(pid, (0, ""))[0]) / self.ticks_per_s / wall
                 for pid, (ticks, _) in last.items()}
        others = {pid: c for pid, c in cores.items() if pid not in measured and pid not in bench}
        top = sorted(((c, pid) for pid, c in others.items() if c > 0.01), reverse=True)[:8]
        return PhaseCpu(
            label=label, server=server, wall_s=round(wall, 3), samples=samples,
            measured_cores=round(sum(cores.get(p, 0.0) for p in measured), 3),
            bench_cores=round(sum(cores.get(p, 0.0) for p in bench), 3),
            others_cores=round(sum(others.values()), 3),
            top_others=[Offender(pid=pid, command=last[pid][1], cores=round(c, 3)) for c, pid in top],
            ok=all(c <= self.threshold for c in others.values()),
        )
