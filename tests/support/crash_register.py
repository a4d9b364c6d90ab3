"""Child process for crash-injection tests: run one registry operation, die at an injected point.

    python -m tests.support.crash_register --store S --base B --root R --op register \
        --name NAME --source DIR --fault store.save:before:2

A fault is `target:when[:occurrence]`: `when` is `before` or `after` the call (or `partial`
for the copy/delete targets, which do half the work first), and `occurrence` counts matching calls
(default 1). At the fault the process calls os._exit(CRASH_EXIT) - no finally blocks, no flushing,
like kill -9 - from whatever thread it is in. Exit codes: CRASH_EXIT when the fault fired, 0 when
the operation finished without reaching it, 2 when the operation raised.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import inspect
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import service.adapters.store as adapter_store
from service.adapters.store import AdapterStore
from service.adapters.registry import AdapterRegistry
from tests.support.registry_harness import FakeEngine, make_registry

CRASH_EXIT = 86  # distinct from 1 (an uncaught exception) so the parent knows the fault fired


def _crash() -> None:
    os._exit(CRASH_EXIT)


def _wrap(func: Callable[..., Any], when: str, occurrence: int,
          matches: Callable[..., bool] = lambda *a, **k: True) -> Callable[..., Any]:
    """`func` that crashes before/after its `occurrence`-th matching call."""
    count = 0

    def hit(*args: Any, **kwargs: Any) -> bool:
        nonlocal count
        if not matches(*args, **kwargs):
            return False
        count += 1
        return count == occurrence

    if inspect.iscoroutinefunction(func):
        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            fire = hit(*args, **kwargs)
            if fire and when == "before":
                _crash()
            result = await func(*args, **kwargs)
            if fire:
                _crash()
            return result
        return async_wrapper

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        fire = hit(*args, **kwargs)
        if fire and when == "before":
            _crash()
        result = func(*args, **kwargs)
        if fire:
            _crash()
        return result
    return wrapper


def _partial_copy(occurrence: int) -> Callable[[Path, Path], None]:
    """A copy that writes the first half of its `occurrence`-th file, then dies."""
    real = adapter_store._copy_file_synced
    count = 0

    def copy(source: Path, target: Path) -> None:
        nonlocal count
        count += 1
        if count != occurrence:
            return real(source, target)
        data = source.read_bytes()
        with target.open("xb") as handle:
            handle.write(data[: len(data) // 2])
            handle.flush()
            os.fsync(handle.fileno())
        _crash()

    return copy


def _partial_delete(occurrence: int) -> Callable[[AdapterStore, str], None]:
    """A folder deletion that removes one file of its `occurrence`-th folder, then dies."""
    real = AdapterStore.delete_folder
    count = 0

    def delete_folder(self: AdapterStore, relative: str) -> None:
        nonlocal count
        count += 1
        if count != occurrence:
            return real(self, relative)
        files = sorted(p for p in (self.root / relative).iterdir() if p.is_file())
        files[0].unlink()
        _crash()

    return delete_folder


def install_fault(spec: str, store_root: Path) -> None:
    target, when, *rest = spec.split(":")
    occurrence = int(rest[0]) if rest else 1
    if when == "partial":
        if target == "copy":
            adapter_store._copy_file_synced = _partial_copy(occurrence)  # type: ignore[assignment]
        elif target == "store.delete_folder":
            AdapterStore.delete_folder = _partial_delete(occurrence)  # type: ignore[method-assign]
        else:
            raise ValueError(f"no partial fault for {target}")
        return
    if when not in ("before", "after"):
        raise ValueError(f"bad fault {spec!r}")
    adapters_dir = store_root / "adapters"
    manifest = store_root / "manifest.json"
    patches: dict[str, tuple[Any, str, Callable[..., bool]]] = {
        "store.stage": (AdapterStore, "stage", lambda *a, **k: True),
        "store.commit": (AdapterStore, "commit", lambda *a, **k: True),
        "store.save": (AdapterStore, "save", lambda *a, **k: True),
        "store.audit": (AdapterStore, "audit", lambda *a, **k: True),
        "store.delete_folder": (AdapterStore, "delete_folder", lambda *a, **k: True),
        "copy": (adapter_store, "_copy_file_synced", lambda *a, **k: True),
        "fsync_dir": (adapter_store, "_fsync_dir", lambda *a, **k: True),
        # The process-wide os functions: only the calls the store makes on its own files count.
        "os.rename": (os, "rename", lambda src, dst, *a, **k: Path(dst).parent.parent == adapters_dir),
        "os.replace": (os, "replace", lambda src, dst, *a, **k: Path(dst) == manifest),
        "engine.load": (FakeEngine, "load_adapter", lambda *a, **k: True),
        "engine.unload": (FakeEngine, "unload_adapter", lambda *a, **k: True),
        "registry.publish": (AdapterRegistry, "_publish", lambda *a, **k: True),
    }
    owner, attribute, matches = patches[target]
    setattr(owner, attribute, _wrap(getattr(owner, attribute), when, occurrence, matches))


async def run(args: argparse.Namespace) -> None:
    registry, _ = make_registry(args.store, args.base, [args.root])
    await registry.start()
    install_fault(args.fault, args.store)
    if args.op == "register":
        await registry.register_path(args.name, str(args.source))
    else:
        await registry.remove(args.name)
    # Let the retirement of a replaced version (a background task) run, so it can be hit too.
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    if pending:
        await asyncio.wait(pending, timeout=5)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--op", choices=("register", "remove"), default="register")
    parser.add_argument("--name", required=True)
    parser.add_argument("--source", type=Path)
    parser.add_argument("--fault", required=True)
    args = parser.parse_args()
    try:
        asyncio.run(run(args))
    except Exception:
        traceback.print_exc()
        sys.exit(2)
    sys.exit(0)


if __name__ == "__main__":
    main()
