"""Replicas sharing one store: a replaced version's files stay while any live replica serves it.

Each registry keeps a serving marker in the store (`.replicas/<id>.json`, heartbeat + versions,
and a lock held for its lifetime). A retired version's folder is deleted only when no live marker
lists it, otherwise on a later refresh() tick; stale markers and markers of dead replicas do not
count. And the registry keeps references to the background tasks it starts.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from service.adapters.registry import AdapterRegistry
from service.adapters.store import AdapterRecord, AdapterStore
from service.adapters.types import RegistryLimits
from service.adapters.validation import BaseModelShape
from service.observability.metrics import Metrics
from tests.support.registry_harness import MAX_BYTES, FakeEngine, make_registry
from tests.support.waiting import eventually

pytestmark = pytest.mark.anyio

Replica = Callable[..., tuple[AdapterRegistry, FakeEngine]]



@pytest.fixture()
def store_root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture()
def replica(store_root: Path, tiny_model_dir: Path, adapter_root: Path) -> Iterator[Replica]:
    built: list[AdapterRegistry] = []

    def build(**options: object) -> tuple[AdapterRegistry, FakeEngine]:
        registry, engine = make_registry(
            store_root, tiny_model_dir, [adapter_root], **options  # type: ignore[arg-type]
        )
        built.append(registry)
        return registry, engine

    yield build
    for registry in built:
        registry.replicas.close()  # its serving marker and lock file



def marker(registry: AdapterRegistry) -> dict:
    return json.loads(registry.replicas.marker_path.read_text())


def listed(registry: AdapterRegistry) -> list[str]:
    return sorted(v["path"] for v in marker(registry)["versions"])


async def replaced_while_b_serves_v1(
    replica: Replica, adapter_root: Path, store_root: Path
) -> tuple[AdapterRegistry, AdapterRegistry, FakeEngine, AdapterRecord, AdapterRecord]:
    """A registers v1, B adopts it, A replaces it by v2 (B has not refreshed since): v1 stays."""
    a, engine_a = replica()
    b, _ = replica()
    await a.start()
    await b.start()
    first = await a.register_path("alpha", str(adapter_root / "one"))
    await b.refresh()  # B serves v1 now

    second = await a.register_path("alpha", str(adapter_root / "two"))
    await eventually(lambda: engine_a.unloads() == [first.engine_id])  # A no longer serves v1 ...
    await asyncio.sleep(0.2)
    assert (store_root / first.path / "adapter_model.safetensors").is_file()  # ... but B does: files stay
    assert listed(b) == [first.path]  # (B's marker says so)
    assert a.replicas.pending() == [first.path]
    assert listed(a) == [second.path]
    await a.refresh()  # a tick while B still lists v1 changes nothing
    assert (store_root / first.path / "adapter_model.safetensors").is_file()
    return a, b, engine_a, first, second


async def test_files_stay_while_another_replica_serves_the_old_version(
    replica: Replica, adapter_root: Path, store_root: Path
) -> None:
    a, b, _, first, second = await replaced_while_b_serves_v1(replica, adapter_root, store_root)
    handle = b.handle("alpha")
    assert handle is not None and handle.version == 1 and handle.path.is_dir()  # B can still route to v1
    lease = b.lease(handle)  # a request on v1 in B

    await b.refresh()  # B now routes to v2, and keeps listing v1 until its request finished
    assert listed(b) == sorted([first.path, second.path])
    await a.refresh()
    assert (store_root / first.path).is_dir()

    lease.release()  # B unloads v1 and drops it from its marker: the last one deletes the files
    await eventually(lambda: not (store_root / first.path).exists())
    assert listed(b) == [second.path]
    await a.refresh()
    assert a.replicas.pending() == [] and (store_root / second.path).is_dir()


@pytest.mark.parametrize("how", ["shutdown", "stale", "crashed"])
async def test_deferred_deletion_runs_on_the_next_tick(
    how: str, replica: Replica, adapter_root: Path, store_root: Path
) -> None:
    """B stops counting without retiring v1 itself: A deletes v1 at its next refresh()."""
    a, b, _, first, second = await replaced_while_b_serves_v1(replica, adapter_root, store_root)
    if how == "shutdown":
        b.close()
        assert not b.replicas.marker_path.exists()
    elif how == "stale":  # B still holds its lock but stopped heartbeating (hung)
        b.tasks.cancel()
        content = marker(b)
        old = datetime.now(timezone.utc) - timedelta(seconds=3 * content["stale_after_s"])
        b.replicas.marker_path.write_text(json.dumps({**content, "heartbeat": old.isoformat()}))
    else:  # the kernel drops a dead process's lock; its marker stays behind
        b.tasks.cancel()
        assert b.replicas._handle is not None
        b.replicas._handle.close()
    assert (store_root / first.path).is_dir()  # nothing happens before the tick

    await a.refresh()
    assert not (store_root / first.path).exists()
    assert a.replicas.pending() == []
    assert (store_root / second.path / "adapter_model.safetensors").is_file()
    # A dead replica's marker is cleaned up; a hung one's stays (it may come back and refresh).
    assert b.replicas.marker_path.exists() == (how == "stale")


async def test_stale_timeout_is_three_refresh_periods(replica: Replica, adapter_root: Path) -> None:
    a, _ = replica()
    await a.start()
    first = marker(a)
    assert first["replica_id"] == a.replicas.replica_id
    assert first["stale_after_s"] == 3 * a.limits.sync_interval_s
    assert a.replicas.marker_path.parent == a.store.root / ".replicas"
    await asyncio.sleep(0.01)
    await a.refresh()  # the heartbeat, also when nothing changed
    assert marker(a)["heartbeat"] > first["heartbeat"]
    a.close()
    assert list((a.store.root / ".replicas").iterdir()) == []


async def test_marker_heartbeat_runs_on_its_own(tiny_model_dir: Path, adapter_root: Path, store_root: Path) -> None:
    """Also while refresh() is not called (e.g. waiting behind a slow registration)."""
    registry = AdapterRegistry(
        AdapterStore(store_root), FakeEngine(), BaseModelShape.from_model_dir(tiny_model_dir),
        RegistryLimits(max_rank=64, max_adapter_bytes=MAX_BYTES, allowed_roots=[adapter_root], sync_interval_s=0.05),
        Metrics(CollectorRegistry()), reserved_names=set, replica_id="replica-1",
    )
    await registry.start()
    assert registry.replicas.marker_path == store_root / ".replicas" / "replica-1.json"
    first = marker(registry)["heartbeat"]
    await eventually(lambda: marker(registry)["heartbeat"] > first)
    registry.close()
    await asyncio.sleep(0.1)
    assert not registry.replicas.marker_path.exists() and not registry.tasks.running


async def test_marker_of_a_dead_replica_is_ignored(replica: Replica, adapter_root: Path, store_root: Path) -> None:
    a, _ = replica()
    await a.start()
    first = await a.register_path("alpha", str(adapter_root / "one"))
    ghost = json.loads(a.replicas.marker_path.read_text())  # fresh heartbeat, lists v1 ...
    ghost["replica_id"] = "ghost"
    (store_root / ".replicas" / "ghost.json").write_text(json.dumps(ghost))
    (store_root / ".replicas" / "ghost.lock").touch()  # ... but nobody holds its lock
    await a.register_path("alpha", str(adapter_root / "two"))
    await eventually(lambda: not (store_root / first.path).exists())
    assert sorted(p.name for p in (store_root / ".replicas").iterdir()) == [f"{a.replicas.replica_id}.{e}"
                                                                            for e in ("json", "lock")]


async def test_start_up_spares_folders_a_live_replica_serves(
    replica: Replica, adapter_root: Path, store_root: Path
) -> None:
    """A replica (re)starting must not clean away a retired version another replica still serves."""
    _, b, _, first, _ = await replaced_while_b_serves_v1(replica, adapter_root, store_root)
    c, engine_c = replica()
    await c.start()
    assert (store_root / first.path / "adapter_model.safetensors").is_file()
    assert c.names() == ["alpha"] and len(engine_c.loads()) == 1
    b.close()  # once nobody serves it, a start-up clears it like any other leftover
    d, _ = replica()
    await d.start()
    assert not (store_root / first.path).exists()


# ------------------------------------------------------------------- background tasks
async def test_background_tasks_are_referenced_until_done(replica: Replica, adapter_root: Path) -> None:
    registry, engine = replica()
    await registry.start()
    [heartbeat] = registry.tasks.running  # the marker's own heartbeat runs as long as the registry
    first = await registry.register_path("alpha", str(adapter_root / "one"))
    handle = registry.handle("alpha")
    assert handle is not None
    lease = registry.lease(handle)
    await registry.register_path("alpha", str(adapter_root / "two"))  # retires v1 in the background

    [retirement] = registry.tasks.running - {heartbeat}  # a strong reference: the loop keeps weak ones
    gc.collect()
    await asyncio.sleep(0.1)
    assert not retirement.done() and registry.tasks.running == {heartbeat, retirement}
    lease.release()
    await eventually(lambda: registry.tasks.running == {heartbeat})
    assert retirement.done() and engine.unloads() == [first.engine_id]
    registry.close()
    await eventually(lambda: not registry.tasks.running)


async def test_background_task_failures_are_logged(
    replica: Replica, adapter_root: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry, _ = replica()
    await registry.start()
    heartbeat = set(registry.tasks.running)
    await registry.register_path("alpha", str(adapter_root / "one"))

    def broken() -> list[str]:
        raise OSError("store unreachable")

    monkeypatch.setattr(registry.replicas, "sync", broken)
    with caplog.at_level(logging.ERROR, logger="service.adapters"):
        await registry.register_path("alpha", str(adapter_root / "two"))
        await eventually(lambda: registry.tasks.running == heartbeat)
    [failure] = [r for r in caplog.records if "background task failed" in r.getMessage()]
    assert failure.exc_info is not None and "store unreachable" in str(failure.exc_info[1])
