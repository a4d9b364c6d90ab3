"""Residency you can see and steer: pins survive LRU pressure, the engine's evictions and
on-demand loads are counted, and statuses show loaded, last use and load count (fake engine
with vLLM's LRU rule, real registry and store)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from service.adapters.registry import AdapterRegistry
from service.errors import ConflictError, NotFoundError
from tests.support.registry_harness import FakeEngine, make_registry

pytestmark = pytest.mark.anyio



@pytest.fixture()
def registry(tmp_path: Path, tiny_model_dir: Path, adapter_root: Path) -> Iterator[tuple[AdapterRegistry, FakeEngine]]:
    reg, engine = make_registry(tmp_path / "store", tiny_model_dir, [adapter_root], max_pinned=1)
    engine.capacity = 2  # max_cpu_loras
    yield reg, engine
    reg.replicas.close()


def value(metric, *labels: str) -> float:
    return metric.labels(*labels)._value.get() if labels else metric._value.get()


async def test_a_pinned_adapter_survives_eviction_pressure(registry, adapter_root: Path) -> None:
    reg, engine = registry
    await reg.start()
    pinned = await reg.register_path("one", str(adapter_root / "one"), pinned=True)
    assert pinned.pinned and engine.pinned == {pinned.engine_id}
    two = await reg.register_path("two", str(adapter_root / "two"))
    three = await reg.register_path("three", str(adapter_root / "three"))  # LRU needs room: `two` goes
    assert set(engine.resident) == {pinned.engine_id, three.engine_id}
    statuses = {s.adapter.name: s for s in await reg.statuses()}
    assert statuses["one"].resident and statuses["three"].resident and not statuses["two"].resident
    metrics = reg.metrics
    assert value(metrics.adapter_evictions, "two") == 1 and value(metrics.adapter_evictions, "one") == 0
    assert [value(metrics.adapter_loaded, n) for n in ("one", "two", "three")] == [1, 0, 1]
    assert two.engine_id not in engine.resident


async def test_statuses_show_last_use_and_load_count_and_see_on_demand_loads(registry, adapter_root: Path) -> None:
    reg, engine = registry
    await reg.start()
    await reg.register_path("one", str(adapter_root / "one"))
    [status] = await reg.statuses()
    assert (status.resident, status.load_count, status.last_used) == (True, 1, None)
    handle = reg.handle("one")
    assert handle is not None
    reg.lease(handle).release()
    engine.evict(handle.engine_id)
    [status] = await reg.statuses()
    assert not status.resident and status.last_used is not None
    assert value(reg.metrics.adapter_evictions, "one") == 1
    await engine.load_adapter(handle)  # what vLLM does when a request needs it again
    [status] = await reg.statuses()
    assert status.resident and status.load_count == 2
    assert value(reg.metrics.adapter_loads, "one", "success") == 2
    assert reg.metrics.adapter_load_duration._sum.get() > 0  # our own load is timed


async def test_pin_and_unpin_through_set_pinned(registry, adapter_root: Path) -> None:
    reg, engine = registry
    await reg.start()
    record = await reg.register_path("one", str(adapter_root / "one"))
    assert engine.pinned == set()
    pinned = await reg.set_pinned("one", True, caller="ops")
    assert pinned.pinned and reg.store.load().adapters["one"].pinned and engine.pinned == {record.engine_id}
    await reg.set_pinned("one", False)
    # vLLM has no unpin: the adapter is removed and loaded again, an ordinary LRU entry.
    assert engine.pinned == set() and record.engine_id in engine.resident
    assert engine.calls[-2:] == [("unload", record.engine_id), ("load", record.engine_id)]
    assert [e.action for e in reg.store.audit_events()][-2:] == ["pin", "unpin"]
    with pytest.raises(NotFoundError):
        await reg.set_pinned("none", True)


async def test_pins_are_capped_so_one_engine_slot_stays_unpinned(registry, adapter_root: Path) -> None:
    reg, _ = registry
    await reg.start()
    await reg.register_path("one", str(adapter_root / "one"), pinned=True)
    await reg.register_path("two", str(adapter_root / "two"))
    with pytest.raises(ConflictError) as caught:
        await reg.set_pinned("two", True)
    assert caught.value.code == "too_many_pinned"
    with pytest.raises(ConflictError):
        await reg.register_path("three", str(adapter_root / "three"), pinned=True)
    assert "three" not in reg.names()


async def test_a_new_version_keeps_the_pin_and_a_restart_pins_again(registry, tmp_path, tiny_model_dir,
                                                                    adapter_root: Path) -> None:
    reg, engine = registry
    await reg.start()
    await reg.register_path("one", str(adapter_root / "one"), pinned=True)
    second = await reg.register_path("one", str(adapter_root / "two"))  # pinned unset: as before
    assert second.pinned and second.engine_id in engine.pinned
    restarted, engine2 = make_registry(tmp_path / "store", tiny_model_dir, [adapter_root], max_pinned=1, preload=0)
    try:
        await restarted.start()  # preload 0, yet the pinned adapter is loaded and pinned
        assert engine2.pinned == {second.engine_id}
    finally:
        restarted.replicas.close()


async def test_a_removed_adapter_drops_its_series(registry, adapter_root: Path) -> None:
    reg, _ = registry
    await reg.start()
    await reg.register_path("one", str(adapter_root / "one"))
    await reg.remove("one")
    samples = {s.labels.get("adapter") for m in reg.metrics.adapter_loaded.collect() for s in m.samples}
    assert "one" not in samples
