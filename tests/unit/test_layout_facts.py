"""loadtests/layout_facts.py against this test process: the process tree, per-thread names, affinity and
CPU time, and the CLI's JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtests.layout_facts import ProcessFacts, ThreadFacts, TreeFacts, main, parse_stat, tree_facts

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@pytest.fixture
def named_pinned_thread() -> Iterator[tuple[int, str, int]]:
    """A thread of this process with its own name, pinned to one CPU: (tid, name, cpu)."""
    name, cpu = "facts-probe", min(os.sched_getaffinity(0))
    ready, stop, tid = threading.Event(), threading.Event(), []

    def run() -> None:
        tid.append(threading.get_native_id())
        Path(f"/proc/self/task/{tid[0]}/comm").write_text(name)
        os.sched_setaffinity(0, {cpu})  # 0 = the calling thread only
        sum(range(200_000))  # a little CPU time of its own
        ready.set()
        stop.wait(30)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield tid[0], name, cpu
    stop.set()
    thread.join(10)


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    yield proc
    proc.kill()
    proc.wait(10)


def by_pid(facts: TreeFacts, pid: int) -> ProcessFacts:
    return next(p for p in facts.processes if p.pid == pid)


def test_this_process_and_its_threads(named_pinned_thread: tuple[int, str, int]) -> None:
    tid, name, cpu = named_pinned_thread
    facts = tree_facts(os.getpid())
    me = facts.processes[0]
    assert me.pid == os.getpid() == facts.root_pid and me.ppid == os.getppid()
    assert "pytest" in me.cmdline or "python" in me.cmdline
    assert me.rss_bytes > 10 * 2**20 and (me.pss_bytes is None or 0 < me.pss_bytes <= me.rss_bytes)
    assert me.affinity == sorted(os.sched_getaffinity(0))
    assert me.thread_count == len(me.threads) >= 2 and me.env is not None
    probe = next(t for t in me.threads if t.tid == tid)
    assert (probe.name, probe.affinity) == (name, [cpu])
    assert probe.cpu_s == pytest.approx(probe.user_s + probe.system_s, abs=0.011) and probe.cpu_s >= 0
    main_thread = next(t for t in me.threads if t.tid == os.getpid())
    assert main_thread.affinity == me.affinity  # pinning one thread leaves the others alone
    assert me.cpu_s >= main_thread.cpu_s > 0
    assert facts.thread_count >= me.thread_count and facts.total_rss_bytes >= me.rss_bytes
    assert facts.interval_s is None and all(t.cpu_share is None for t in me.threads)


def test_children_are_in_the_tree(child: subprocess.Popen[bytes]) -> None:
    facts = tree_facts(os.getpid())
    kid = by_pid(facts, child.pid)
    assert kid.ppid == os.getpid() and "time.sleep(30)" in kid.cmdline
    assert facts.processes.index(kid) > 0 and facts.process_count == len(facts.processes) >= 2
    assert tree_facts(child.pid).process_count == 1  # the tree below a leaf is the leaf


def test_layout_env_and_runtime_libs() -> None:
    # A process's environ is fixed at exec: check it on a child started with the variables set.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "UNRELATED": "x"}
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], env=env)
    try:
        kid = by_pid(tree_facts(os.getpid()), proc.pid)
    finally:
        proc.kill()
        proc.wait(10)
    assert kid.env is not None
    assert kid.env["OMP_NUM_THREADS"] == "1" and kid.env["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"
    assert "UNRELATED" not in kid.env
    assert all("/" in lib for lib in kid.runtime_libs)


def test_interval_gives_each_thread_its_share(named_pinned_thread: tuple[int, str, int]) -> None:
    facts = tree_facts(os.getpid(), interval_s=0.3)
    me = facts.processes[0]
    assert facts.interval_s == 0.3
    shares = [t.cpu_share for t in me.threads if t.cpu_share is not None]
    assert shares and all(0 <= s <= 1.5 for s in shares)  # one thread cannot use much more than a core
    assert me.cpu_share == pytest.approx(sum(shares), abs=0.01)


def test_stat_names_with_spaces_and_parentheses() -> None:
    fields = ["S", "42"] + ["0"] * 9 + ["150", "25"] + ["0"] * 23 + ["1"] + ["0"] * 5
    parsed = parse_stat("7 (odd) name (x) " + " ".join(fields))
    assert parsed == {"state": "S", "ppid": 42, "utime": 150, "stime": 25, "processor": 1}
    assert parse_stat(Path("/proc/self/stat").read_text())["ppid"] == os.getppid()


def test_cli_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "facts.json"
    assert main([str(os.getpid()), "--out", str(out)]) == 0
    facts = TreeFacts.model_validate(json.loads(out.read_text()))
    assert facts.root_pid == os.getpid()
    assert isinstance(facts.processes[0].threads[0], ThreadFacts)
    assert main([str(os.getpid())]) == 0 and json.loads(capsys.readouterr().out)["root_pid"] == os.getpid()


def test_cli_refuses_a_missing_process(capsys: pytest.CaptureFixture[str]) -> None:
    with open("/proc/sys/kernel/pid_max") as f:
        beyond = int(f.read()) + 1  # no process can have it
    assert main([str(beyond)]) == 1
    assert str(beyond) in capsys.readouterr().err
