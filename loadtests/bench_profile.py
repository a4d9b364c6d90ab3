"""`loragate bench --profile`: where each server's CPU time goes while the comparisons run.

For every server of the run, py-spy samples its whole process tree (the HTTP process, vLLM's
engine core and its worker) without pausing it, and /proc gives each process's CPU seconds. The
summary lists, per process, its CPU seconds and the functions where its samples land (self time,
and the loragate frames they were called under), so a missed target comes with where the time went.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from loadtests.bench_servers import proc_table, stat_fields, tree_members
from loadtests.common import progress

SAMPLE_RATE_HZ = 50  # low enough that py-spy itself stays a few % of a core
TOP = 12
_PROCESS_FRAME = re.compile(r'^process (\d+):"(.*)"$')
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^():]+)(?::\d+)?\)$")


class FunctionShare(BaseModel):
    function: str
    share: float  # of the process's samples


class ProcessProfile(BaseModel):
    pid: int
    command: str
    cpu_s: float | None  # user + system over the profiled window
    samples: int
    self_time: list[FunctionShare]  # the innermost frame of each sample
    loragate_time: list[FunctionShare]  # the innermost `service/` frame, if any


class ServerProfile(BaseModel):
    server: str
    raw_file: str
    window_s: float
    processes: list[ProcessProfile]


def _cpu_seconds(pids: set[int]) -> dict[int, float]:
    ticks = os.sysconf("SC_CLK_TCK")
    return {pid: (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
            for pid in pids if (fields := stat_fields(pid)) is not None}


def _frame_name(frame: str) -> tuple[str, str]:
    """`(function label, file)` of a py-spy raw frame `func (path/file.py:123)`."""
    match = _FRAME.match(frame)
    if not match:
        return frame, ""
    path = match["file"]
    return f"{match['function']} ({path})", path


def _records(raw: str) -> list[str]:
    """One line per sample stack: a command line with newlines in it continues on the next lines."""
    lines = raw.splitlines()
    if not any(line.startswith("process ") for line in lines):
        return lines
    records: list[str] = []
    for line in lines:
        if line.startswith("process ") or not records:
            records.append(line)
        else:
            records[-1] += " " + line
    return records


def summarise(raw: str, cpu: dict[int, float], top: int = TOP) -> list[ProcessProfile]:
    """Per process of a `py-spy record --subprocesses --format raw` file: self and loragate time."""
    samples: Counter[int] = Counter()
    self_time: dict[int, Counter[str]] = defaultdict(Counter)
    loragate_time: dict[int, Counter[str]] = defaultdict(Counter)
    commands: dict[int, str] = {}
    for line in _records(raw):
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        pid, first_code = 0, 0
        for i, frame in enumerate(frames):  # leading `process N:"cmd"` frames: the innermost is the owner
            if match := _PROCESS_FRAME.match(frame):
                pid, first_code = int(match[1]), i + 1
                commands[pid] = match[2]
        code = frames[first_code:]
        if not code:
            continue
        samples[pid] += count
        self_time[pid][_frame_name(code[-1])[0]] += count
        ours = [name for name, path in map(_frame_name, code) if path.startswith("service/")]
        if ours:
            loragate_time[pid][ours[-1]] += count

    def shares(counter: Counter[str], total: int) -> list[FunctionShare]:
        return [FunctionShare(function=name, share=round(n / total, 4)) for name, n in counter.most_common(top)]

    return [
        ProcessProfile(pid=pid, command=commands.get(pid, "?")[:120], cpu_s=cpu.get(pid), samples=n,
                       self_time=shares(self_time[pid], n), loragate_time=shares(loragate_time[pid], n))
        for pid, n in samples.most_common()
    ]


class Profiler:
    """`with Profiler({"loragate": pid, ...}, out_dir): ...` records every server's process tree."""

    def __init__(self, roots: dict[str, int], out_dir: Path, label: str) -> None:
        self.roots, self.out_dir, self.label = roots, out_dir, label
        self.profiles: list[ServerProfile] = []
        self._recorders: dict[str, subprocess.Popen[bytes]] = {}
        self._cpu_before: dict[str, dict[int, float]] = {}
        self._started = 0.0

    def pids(self) -> set[int]:
        """The py-spy processes (the bench's own load, not the measured servers')."""
        return {recorder.pid for recorder in self._recorders.values()}

    def raw_path(self, server: str) -> Path:
        return self.out_dir / f"profile-{self.label}-{server}.raw.txt"

    def __enter__(self) -> Profiler:
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self.out_dir.mkdir(parents=True, exist_ok=True)
        table = proc_table()
        for server, root in self.roots.items():
            self._cpu_before[server] = _cpu_seconds(tree_members(root, table))
            self._recorders[server] = subprocess.Popen(
                [spy, "record", "--pid", str(root), "--subprocesses", "--nonblocking", "--rate",
                 str(SAMPLE_RATE_HZ), "--format", "raw", "--output", str(self.raw_path(server))],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._started = time.monotonic()
        progress(f"profiling {', '.join(self.roots)} with py-spy at {SAMPLE_RATE_HZ} Hz")
        return self

    def __exit__(self, *exc: Any) -> None:
        window = time.monotonic() - self._started
        table = proc_table()
        for server, recorder in self._recorders.items():
            members = tree_members(self.roots[server], table)
            after = _cpu_seconds(members)
            before = self._cpu_before[server]
            cpu = {pid: round(after[pid] - before.get(pid, 0.0), 2) for pid in after}
            recorder.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            try:
                _, err = recorder.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                recorder.kill()
                err = b"timed out writing its file"
            raw = self.raw_path(server)
            if not raw.exists():
                progress(f"py-spy wrote no profile for {server}: {err.decode(errors='replace')[-300:]}")
                continue
            text = raw.read_text()
            packed = raw.with_name(raw.name + ".gz")
            packed.write_bytes(gzip.compress(text.encode()))  # about 30x smaller: kept beside the results
            raw.unlink()
            self.profiles.append(ServerProfile(server=server, raw_file=packed.name, window_s=round(window, 1),
                                               processes=summarise(text, cpu)))


def markdown(profiles: list[ServerProfile], level: int = 2) -> str:
    heading = "#" * level
    lines = [f"{heading} Where the CPU time goes (py-spy)", ""]
    for profile in profiles:
        lines += [f"{heading}# {profile.server} ({profile.window_s:.0f} s window, raw stacks: `{profile.raw_file}`)", ""]
        for proc in profile.processes:
            cpu = "-" if proc.cpu_s is None else f"{proc.cpu_s:.1f} CPU s"
            lines += [f"- **{proc.command}** (pid {proc.pid}): {cpu}, {proc.samples} samples; self time: "
                      + ", ".join(f"{f.function} {f.share:.0%}" for f in proc.self_time[:6])]
            if proc.loragate_time:
                lines += ["  - under loragate frames: "
                          + ", ".join(f"{f.function} {f.share:.0%}" for f in proc.loragate_time[:6])]
        lines.append("")
    return "\n".join(lines)
