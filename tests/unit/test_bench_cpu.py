"""`loragate bench` runs one server at a time: the CPU-steal check on fake /proc readings, the real
/proc reader, and the order in which idle servers are paused and the measured one resumed."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from loadtests.bench_cpu import ContentionError, CpuReading, CpuWatch, read_proc_cpu
from loadtests.bench_servers import Fleet


class FakeProc:
    """Readings the watch takes in turn: at the phase's start, (maybe) while it runs, at its end."""

    def __init__(self, *readings: CpuReading) -> None:
        self.readings = list(readings)

    def __call__(self) -> CpuReading:
        return self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]


class FakeClock:
    def __init__(self, *times: float) -> None:
        self.times = list(times)

    def __call__(self) -> float:
        return self.times.pop(0)


SERVER, OTHER_SERVER, BENCH, STRANGER = 100, 200, 300, 400


def watch(*readings: CpuReading, wall: float = 10.0, enforce: bool = True) -> CpuWatch:
    # 100 ticks per second; a long poll interval: only the start and end readings are taken
    return CpuWatch(reader=FakeProc(*readings), clock=FakeClock(0.0, wall), ticks_per_s=100, interval=3600,
                    enforce=enforce)


def run_phase(w: CpuWatch) -> None:
    with w.phase("peer-base c8 vllm", "vllm", lambda: {SERVER}, lambda: {BENCH}):
        pass


def test_quiet_phase_passes_and_is_recorded() -> None:
    start = {SERVER: (0, "python"), OTHER_SERVER: (500, "VLLM::EngineCore"), BENCH: (0, "python"),
             STRANGER: (10, "sshd")}
    # 10 s: the server used 1.9 cores, the bench 0.5, the paused server nothing, sshd 5% of a core.
    end = {SERVER: (1900, "python"), OTHER_SERVER: (500, "VLLM::EngineCore"), BENCH: (500, "python"),
           STRANGER: (60, "sshd")}
    w = watch(start, end)
    run_phase(w)
    phase = w.phases[0]
    assert phase.ok and (phase.measured_cores, phase.bench_cores) == (1.9, 0.5)
    assert phase.others_cores == 0.05 and [o.command for o in phase.top_others] == ["sshd"]
    assert (phase.label, phase.server, phase.wall_s) == ("peer-base c8 vllm", "vllm", 10.0)


def test_a_busy_other_process_refuses_the_run() -> None:
    start = {SERVER: (0, "python"), OTHER_SERVER: (0, "VLLM::EngineCore")}
    end = {SERVER: (1000, "python"), OTHER_SERVER: (150, "VLLM::EngineCore")}  # 15% of a core
    w = watch(start, end)
    with pytest.raises(ContentionError, match=r"pid 200 \(VLLM::EngineCore\) used 15% of a core"):
        run_phase(w)
    assert not w.phases[0].ok and w.phases[0].top_others[0].cores == 0.15


def test_many_small_ones_pass_one_just_over_the_limit_does_not() -> None:
    start = {pid: (0, "worker") for pid in range(1, 6)}
    end = {pid: (100, "worker") for pid in range(1, 6)}  # five processes at 10% each: none above the limit
    w = watch(start, end)
    run_phase(w)
    assert w.phases[0].ok and w.phases[0].others_cores == 0.5
    w = watch({1: (0, "x")}, {1: (101, "x")})
    with pytest.raises(ContentionError):
        run_phase(w)


def test_a_process_started_during_the_phase_counts_all_its_time() -> None:
    w = watch({SERVER: (0, "python")}, {SERVER: (100, "python"), 777: (300, "make")}, enforce=False)
    run_phase(w)  # recorded, not refused
    assert not w.phases[0].ok and w.phases[0].top_others[0].pid == 777 and w.phases[0].top_others[0].cores == 0.3


def test_a_process_that_exits_mid_phase_keeps_its_last_reading() -> None:
    middle = {SERVER: (50, "python"), 555: (200, "gcc")}
    w = CpuWatch(reader=FakeProc({SERVER: (0, "python"), 555: (0, "gcc")}, middle, {SERVER: (100, "python")}),
                 clock=FakeClock(0.0, 10.0), ticks_per_s=100, interval=0.01, enforce=False)
    poll = w.reader

    def slow_phase() -> None:
        with w.phase("p", "s", lambda: {SERVER}, set):
            while len(poll.readings) > 1:  # type: ignore[attr-defined]  # until the poller took `middle`
                pass

    slow_phase()
    assert w.phases[0].top_others[0].pid == 555 and w.phases[0].top_others[0].cores == 0.2


def test_real_proc_reading_sees_this_process() -> None:
    reading = read_proc_cpu()
    assert os.getpid() in reading and reading[os.getpid()][0] >= 0
    assert reading[1][1]  # pid 1's command name


def test_proc_reading_parses_names_with_spaces(tmp_path: Path) -> None:
    (tmp_path / "42").mkdir()
    fields = ["S", "1", "42", "42"] + ["0"] * 7 + ["250", "50"] + ["0"] * 30
    (tmp_path / "42" / "stat").write_text(f"42 (VLLM::Engine Core) {' '.join(fields)}\n")
    (tmp_path / "self").mkdir()
    assert read_proc_cpu(tmp_path) == {42: (300, "VLLM::Engine Core")}


# ------------------------------------------------------------------------- pause / resume
class FakeProcess:
    def __init__(self, pid: int) -> None:
        self.pid = pid


class FakeServer:
    def __init__(self, pid: int) -> None:
        self.process = FakeProcess(pid)
        self.base_url = f"http://127.0.0.1:{pid}"


def fleet_of(*names: str) -> tuple[Fleet, list[tuple[int, int]]]:
    sent: list[tuple[int, int]] = []
    made = Fleet(servers={name: FakeServer(1000 + i) for i, name in enumerate(names)},  # type: ignore[misc]
                 send=lambda pgid, sig: sent.append((pgid, sig)))
    return made, sent


def test_activate_pauses_the_others_before_resuming_the_measured_one() -> None:
    made, sent = fleet_of("loragate", "vllm", "vllm-defaults")
    made.paused = {"loragate", "vllm", "vllm-defaults"}  # as the fleet leaves them once all are ready
    made.activate("vllm")
    assert sent == [(1001, signal.SIGCONT)] and made.paused == {"loragate", "vllm-defaults"}
    sent.clear()
    made.activate("loragate")
    assert sent == [(1001, signal.SIGSTOP), (1000, signal.SIGCONT)]  # stop first: never two running
    sent.clear()
    made.activate("loragate")  # already alone: nothing to send
    assert sent == [] and made.active == "loragate"


def test_activate_from_all_running_stops_every_other_group() -> None:
    made, sent = fleet_of("loragate", "vllm", "vllm-lora")
    made.activate("vllm-lora")
    assert sent == [(1000, signal.SIGSTOP), (1001, signal.SIGSTOP)]
    with pytest.raises(KeyError):
        made.activate("nope")


def test_resume_all_before_stopping() -> None:
    made, sent = fleet_of("loragate", "vllm")
    made.activate("vllm")
    sent.clear()
    made.resume_all()
    assert sent == [(1000, signal.SIGCONT)] and made.paused == set() and made.active is None


def test_a_vanished_group_does_not_stop_the_bench() -> None:
    def gone(pgid: int, sig: int) -> None:
        raise ProcessLookupError(pgid)

    made = Fleet(servers={"a": FakeServer(1), "b": FakeServer(2)}, send=gone)  # type: ignore[dict-item]
    made.activate("a")
    assert made.paused == {"b"}
