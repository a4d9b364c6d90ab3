"""Where a server's threads may run and what its processes hold: every process under a root PID with
its command line, RSS/PSS, layout variables, OpenMP runtime and, per thread, the name, CPU affinity
and CPU time. docs/engine-layout.md says what to compare between the `uni` and `mp` layouts.

    .venv/bin/python -m loadtests.layout_facts <root pid>                   # one snapshot, JSON on stdout
    .venv/bin/python -m loadtests.layout_facts <root pid> --interval 10     # + each thread's share of a core
                                                                             #   over 10 s (run it under load)

Linux only (/proc and os.sched_getaffinity, which takes a thread id as well as a process id). Read-only:
it never signals or attaches to the processes. Processes or threads that end while it reads are skipped.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel

PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Variables that decide the engine layout and its OpenMP threads (read from /proc/<pid>/environ).
LAYOUT_ENV = (
    "OMP_NUM_THREADS", "OMP_PROC_BIND", "OMP_PLACES", "OMP_WAIT_POLICY", "GOMP_CPU_AFFINITY", "GOMP_SPINCOUNT",
    "KMP_AFFINITY", "KMP_BLOCKTIME", "LD_PRELOAD", "VLLM_ENABLE_V1_MULTIPROCESSING", "VLLM_WORKER_MULTIPROC_METHOD",
    "VLLM_CPU_OMP_THREADS_BIND", "VLLM_CPU_NUM_OF_RESERVED_CPU", "VLLM_CPU_KVCACHE_SPACE",
)
# Shared objects worth knowing about in a process's memory map: which OpenMP runtime, which allocator.
RUNTIME_LIBS = ("libgomp", "libiomp", "libomp", "libtcmalloc")


class ThreadFacts(BaseModel):
    tid: int
    name: str  # /proc/<pid>/task/<tid>/comm (vLLM and torch name some of theirs; Python threads keep the process's)
    state: str  # R running, S sleeping, ...
    affinity: list[int]  # CPUs it may run on
    last_cpu: int  # the CPU it last ran on
    user_s: float
    system_s: float
    cpu_s: float  # user + system since the thread started
    cpu_share: float | None = None  # CPU seconds per second over --interval (1.0 = a whole core)


class ProcessFacts(BaseModel):
    pid: int
    ppid: int
    name: str  # comm: vLLM retitles its processes (VLLM::EngineCore, VLLM::Worker)
    cmdline: str
    rss_bytes: int
    pss_bytes: int | None  # proportional share: shared pages split between processes (None: unreadable)
    affinity: list[int]
    env: dict[str, str] | None  # LAYOUT_ENV as set at exec (None: environ unreadable)
    runtime_libs: list[str]  # RUNTIME_LIBS mapped into the process (full paths)
    thread_count: int
    cpu_s: float
    cpu_share: float | None = None
    threads: list[ThreadFacts]


class TreeFacts(BaseModel):
    root_pid: int
    taken_at: str
    interval_s: float | None
    online_cpus: list[int]  # this tool's own affinity: the CPUs a thread could be given
    process_count: int
    thread_count: int
    total_rss_bytes: int  # counts shared pages once per process
    total_pss_bytes: int | None  # the tree's real footprint (None if any PSS was unreadable)
    processes: list[ProcessFacts]


def parse_stat(text: str) -> dict[str, str | int]:
    """The fields of /proc/<pid>[/task/<tid>]/stat this tool uses. The name (field 2) is in parentheses
    and may itself hold spaces and parentheses, so the fields after it are counted from the last ')'."""
    rest = text[text.rindex(")") + 2:].split()
    # rest[0] is field 3 of proc(5): field n is rest[n - 3].
    return {"state": rest[0], "ppid": int(rest[1]), "utime": int(rest[11]), "stime": int(rest[12]),
            "processor": int(rest[36])}


def parent_map() -> dict[int, int]:
    """pid -> parent pid of every process visible in /proc."""
    parents: dict[int, int] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(parse_stat((entry / "stat").read_text())["ppid"])
            except (OSError, ValueError):
                continue  # ended while listing
    return parents


def process_tree(root: int) -> list[int]:
    """The root and every descendant, parents before children."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parent_map().items():
        children.setdefault(ppid, []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop(0)
        tree.append(pid)
        todo.extend(sorted(children.get(pid, [])))
    return tree


def _kib_field(text: str, key: str) -> int | None:
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return None


def _environ(pid: int) -> dict[str, str] | None:
    try:
        raw = (PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return None
    pairs = (item.decode(errors="replace").split("=", 1) for item in raw.split(b"\0") if b"=" in item)
    env = dict(pairs)
    return {key: env[key] for key in LAYOUT_ENV if key in env}


def _runtime_libs(pid: int) -> list[str]:
    try:
        maps = (PROC / str(pid) / "maps").read_text()
    except OSError:
        return []
    fields = (line.split(maxsplit=5) for line in maps.splitlines())
    paths = {f[5] for f in fields if len(f) == 6 and f[5].startswith("/")}
    return sorted(p for p in paths if any(lib in Path(p).name for lib in RUNTIME_LIBS))


def thread_facts(pid: int, tid: int) -> ThreadFacts:
    task = PROC / str(pid) / "task" / str(tid)
    stat = parse_stat((task / "stat").read_text())
    user, system = int(stat["utime"]) / CLOCK_TICKS, int(stat["stime"]) / CLOCK_TICKS
    return ThreadFacts(tid=tid, name=(task / "comm").read_text().strip(), state=str(stat["state"]),
                       affinity=sorted(os.sched_getaffinity(tid)), last_cpu=int(stat["processor"]),
                       user_s=user, system_s=system, cpu_s=round(user + system, 2))


def process_facts(pid: int) -> ProcessFacts:
    """Raises OSError if the process ended before its basic facts were read."""
    base = PROC / str(pid)
    status = (base / "status").read_text()
    stat = parse_stat((base / "stat").read_text())
    try:
        pss = _kib_field((base / "smaps_rollup").read_text(), "Pss")
    except OSError:
        pss = None
    threads = []
    for entry in sorted((base / "task").iterdir(), key=lambda p: int(p.name)):
        try:
            threads.append(thread_facts(pid, int(entry.name)))
        except (OSError, ValueError):
            continue  # the thread ended while reading
    cmdline = (base / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    return ProcessFacts(
        pid=pid, ppid=int(stat["ppid"]), name=(base / "comm").read_text().strip(), cmdline=cmdline,
        rss_bytes=_kib_field(status, "VmRSS") or 0, pss_bytes=pss, affinity=sorted(os.sched_getaffinity(pid)),
        env=_environ(pid), runtime_libs=_runtime_libs(pid), thread_count=len(threads),
        cpu_s=round(sum(t.cpu_s for t in threads), 2), threads=threads,
    )


def snapshot(root: int) -> list[ProcessFacts]:
    facts = []
    for pid in process_tree(root):
        try:
            facts.append(process_facts(pid))
        except OSError:
            continue
    return facts


def _add_shares(before: list[ProcessFacts], after: list[ProcessFacts], seconds: float) -> None:
    """CPU seconds per second between two snapshots, for the threads alive in both."""
    earlier = {(p.pid, t.tid): t.cpu_s for p in before for t in p.threads}
    for process in after:
        for thread in process.threads:
            if (start := earlier.get((process.pid, thread.tid))) is not None:
                thread.cpu_share = round((thread.cpu_s - start) / seconds, 3)
        shares = [t.cpu_share for t in process.threads if t.cpu_share is not None]
        process.cpu_share = round(sum(shares), 3) if shares else None


def tree_facts(root: int, interval_s: float = 0.0) -> TreeFacts:
    """Facts of the tree under `root`; with an interval, two snapshots and each thread's CPU share."""
    if not (PROC / str(root)).exists():
        raise ProcessLookupError(f"no process {root}")
    processes = snapshot(root)
    if interval_s > 0:
        started = time.monotonic()
        time.sleep(interval_s)
        later = snapshot(root)
        _add_shares(processes, later, time.monotonic() - started)
        processes = later
    pss = [p.pss_bytes for p in processes]
    return TreeFacts(
        root_pid=root, taken_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        interval_s=interval_s or None, online_cpus=sorted(os.sched_getaffinity(0)),
        process_count=len(processes), thread_count=sum(p.thread_count for p in processes),
        total_rss_bytes=sum(p.rss_bytes for p in processes),
        total_pss_bytes=None if None in pss else sum(p or 0 for p in pss), processes=processes,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pid", type=int, help="the server's root process (e.g. `loragate serve`'s PID)")
    parser.add_argument("--interval", type=float, default=0.0,
                        help="seconds between two snapshots, to report each thread's share of a core")
    parser.add_argument("--out", type=Path, help="write the JSON here instead of stdout")
    args = parser.parse_args(argv)
    try:
        facts = tree_facts(args.pid, args.interval)
    except ProcessLookupError as exc:
        print(exc, file=sys.stderr)
        return 1
    text = facts.model_dump_json(indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
