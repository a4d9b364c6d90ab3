"""What this replica's engine holds: loads, evictions, pins, last use, and the gauges that show it.

vLLM keeps at most `max_cpu_loras` adapters loaded and evicts the least recently used one when a
request needs another; it reports nothing when it does. So residency is observed: each look at
the engine's own list (`resident_adapter_ids`, on every refresh and status call) compares it with
the previous look. An adapter that appeared without our load was loaded on demand by the engine;
one that vanished without our unload was evicted. Evictions between two looks that were reloaded
before the second are not seen (the look is a sample, every `sync_interval_s`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timezone

from service.adapters.store import AdapterRecord
from service.adapters.types import AdapterEngine, AdapterStatus
from service.observability.metrics import Metrics

logger = logging.getLogger(__name__)

Loader = Callable[[AdapterRecord], Awaitable[bool]]


class Residency:
    def __init__(self, engine: AdapterEngine, metrics: Metrics) -> None:
        self.engine = engine
        self.metrics = metrics
        self._observed: set[int] = set()  # engine ids resident at the last look (plus our loads since)
        self._pinned: set[int] = set()  # engine ids pinned in the engine by this replica
        self._last_used: dict[str, datetime] = {}
        self._load_counts: dict[str, int] = {}
        self._gauged: set[str] = set()  # names with a loragate_adapter_loaded series

    # ------------------------------------------------------- what happened
    def used(self, name: str) -> None:
        self._last_used[name] = datetime.now(timezone.utc)

    def loaded(self, record: AdapterRecord, seconds: float) -> None:
        """Our own load succeeded (timed)."""
        self._count_load(record.name)
        self.metrics.adapter_load_duration.observe(seconds)
        self._observed.add(record.engine_id)

    def unloaded(self, engine_id: int) -> None:
        """We removed it from the engine: not an eviction (and any pin went with it)."""
        self._observed.discard(engine_id)
        self._pinned.discard(engine_id)

    def _count_load(self, name: str) -> None:
        self._load_counts[name] = self._load_counts.get(name, 0) + 1
        self.metrics.adapter_loads.labels(name, "success").inc()

    def forget(self, name: str) -> None:
        """The name was removed: drop its per-adapter series."""
        self._last_used.pop(name, None)
        self._load_counts.pop(name, None)
        if name in self._gauged:
            self._gauged.discard(name)
            self.metrics.adapter_loaded.remove(name)

    # ------------------------------------------------------------- looking
    async def resident_ids(self) -> set[int] | None:
        try:
            return await self.engine.resident_adapter_ids()
        except Exception:  # noqa: BLE001 - engine not started or gone: nothing to observe
            return None

    async def observe(self, current: dict[str, AdapterRecord]) -> set[int]:
        """Look at the engine now; count on-demand loads and evictions; update the gauges."""
        resident = await self.resident_ids()
        if resident is None:
            return set()
        for record in current.values():
            was, now = record.engine_id in self._observed, record.engine_id in resident
            if now and not was:
                self._count_load(record.name)
            elif was and not now:
                self.metrics.adapter_evictions.labels(record.name).inc()
                self._pinned.discard(record.engine_id)
        self._observed = set(resident)
        self._update_gauges(current, resident)
        return resident

    def _update_gauges(self, current: dict[str, AdapterRecord], resident: set[int]) -> None:
        self.metrics.adapters_registered.set(len(current))
        current_ids = {r.engine_id for r in current.values()}
        self.metrics.adapters_resident.set(len(current_ids & resident))
        for name, record in current.items():
            self.metrics.adapter_loaded.labels(name).set(1 if record.engine_id in resident else 0)
        for gone in self._gauged - set(current):
            self.metrics.adapter_loaded.remove(gone)
        self._gauged = set(current)

    def statuses(self, records: Iterable[AdapterRecord], resident: set[int],
                 in_flight: dict[int, int]) -> list[AdapterStatus]:
        return [
            AdapterStatus(adapter=r, resident=r.engine_id in resident, in_flight=in_flight.get(r.engine_id, 0),
                          last_used=self._last_used.get(r.name), load_count=self._load_counts.get(r.name, 0))
            for r in records
        ]

    # ---------------------------------------------------------------- pins
    async def apply_pins(self, current: dict[str, AdapterRecord], load: Loader) -> None:
        """Make the engine's pins match the records: load and pin the pinned ones; reload the ones
        unpinned since (vLLM has no unpin: removing an adapter drops its pin)."""
        resident = await self.resident_ids()
        if resident is None:
            return
        for record in current.values():
            engine_id = record.engine_id
            if record.pinned and engine_id not in self._pinned:
                if engine_id not in resident and not await load(record):
                    continue
                try:
                    await self.engine.pin_adapter(engine_id)
                except Exception as exc:  # noqa: BLE001 - the adapter still serves, only unpinned
                    logger.warning("could not pin adapter %s v%s: %s", record.name, record.version, exc)
                    continue
                self._pinned.add(engine_id)
            elif not record.pinned and engine_id in self._pinned:
                try:
                    await self.engine.unload_adapter(engine_id)
                except Exception as exc:  # noqa: BLE001
                    logger.warning("could not unpin adapter %s v%s: %s", record.name, record.version, exc)
                    continue
                self.unloaded(engine_id)
                await load(record)

    def pinned_ids(self) -> set[int]:
        return set(self._pinned)
