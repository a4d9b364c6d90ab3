"""`loragate bench --profile`: py-spy's raw stacks summarised per process, checked by hand."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadtests.bench_profile import Profiler, markdown, summarise

RAW = "\n".join([
    "not a sample line",
    'process 10:"python loragate serve";Runner.run (asyncio/runners.py:118);'
    'chat (service/api/openai/routes.py:50);encode (json/encoder.py:200) 6',
    'process 10:"python loragate serve";Runner.run (asyncio/runners.py:118);select (selectors.py:415) 2',
    'process 10:"python loragate serve";process 11:"VLLM::EngineCore";busy_loop (vllm/v1/engine/core.py:9);'
    'sched_yield (vllm/distributed/shm_broadcast.py:5) 9',
    'process 10:"python loragate serve";process 11:"VLLM::EngineCore";process 12:"VLLM::Worker";'
    'execute_model (vllm/v1/worker/gpu_worker.py:1);bgmv_shrink (service/engine/plugins/cpu_lora_ops.py:40);'
    'matmul (torch/functional.py:3) 3',
    'process 10:"python loragate serve";process 13:"python -c import time',
    'while True: pass";<module> (<string>:2) 5',  # a command line with a newline
])


def test_summary_per_process() -> None:
    profiles = {p.pid: p for p in summarise(RAW, cpu={10: 1.5, 11: 4.0})}
    assert set(profiles) == {10, 11, 12, 13}
    assert profiles[13].samples == 5 and profiles[13].command == "python -c import time while True: pass"
    gateway, core, worker = profiles[10], profiles[11], profiles[12]
    assert (gateway.samples, core.samples, worker.samples) == (8, 9, 3)
    assert gateway.command == "python loragate serve" and core.command == "VLLM::EngineCore"
    assert gateway.cpu_s == 1.5 and worker.cpu_s is None
    assert [(f.function, f.share) for f in gateway.self_time] == [
        ("encode (json/encoder.py)", 0.75), ("select (selectors.py)", 0.25)]
    assert [(f.function, f.share) for f in gateway.loragate_time] == [("chat (service/api/openai/routes.py)", 0.75)]
    assert core.self_time[0].function == "sched_yield (vllm/distributed/shm_broadcast.py)" and not core.loragate_time
    assert worker.loragate_time[0].function == "bgmv_shrink (service/engine/plugins/cpu_lora_ops.py)"
    assert worker.self_time[0].share == 1.0


@pytest.mark.timeout(120)
def test_profiler_records_a_real_process_tree(tmp_path: Path) -> None:
    busy = "import time\nend = time.time() + 30\nwhile time.time() < end:\n    sum(range(1000))\n"  # newlines too
    parent = subprocess.Popen([sys.executable, "-c",
                               f"import subprocess, sys; subprocess.run([sys.executable, '-c', {busy!r}])"])
    try:
        time.sleep(1.5)  # the child is running
        with Profiler({"toy": parent.pid}, tmp_path, "unit") as profiler:
            time.sleep(3)
        [profile] = profiler.profiles
        assert (tmp_path / profile.raw_file).stat().st_size > 0
        busiest = max(profile.processes, key=lambda p: p.samples)
        assert busiest.pid != parent.pid and busiest.samples > 50
        assert busiest.cpu_s is not None and busiest.cpu_s > 1.0
        assert "### toy" in markdown(profiler.profiles)
    finally:
        parent.kill()
        subprocess.run(["pkill", "-f", "end = time.time"], check=False)
        parent.wait()
