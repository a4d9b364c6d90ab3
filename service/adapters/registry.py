"""The adapter registry: validated registration, atomic version swaps, drained removal.

No HTTP here. The registry owns which version of each adapter name is current, persists that in
the `AdapterStore`, loads adapters into the engine, and counts in-flight requests per adapter
version (leases) so an old version is unloaded only after its last request finished; its files
go once no replica sharing the store serves it any more (replicas.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from service.adapters.remote import RemoteOrigin
from service.adapters.replicas import ReplicaMarkers
from service.adapters.residency import Residency
from service.adapters.sources import AdapterSources, client_error
from service.adapters.store import AdapterRecord, AdapterStore, AuditEvent, Manifest
from service.adapters.types import AdapterEngine, AdapterStatus, BackgroundTasks, Lease, RegistryLimits
from service.adapters.validation import (
    AdapterInspection,
    AdapterValidationError,
    BaseModelShape,
    inspect_adapter,
    validate_adapter_name,
)
from service.engine import AdapterHandle
from service.errors import ConflictError, InvalidRequestError, NotFoundError, ServiceError
from service.observability.metrics import Metrics

logger = logging.getLogger(__name__)


class AdapterRegistry(AdapterSources):
    def __init__(
        self,
        store: AdapterStore,
        engine: AdapterEngine,
        base: BaseModelShape,
        limits: RegistryLimits,
        metrics: Metrics,
        reserved_names: Callable[[], set[str]],
        replica_id: str | None = None,
    ) -> None:
        self.store = store
        self.engine = engine
        self.base = base
        self.limits = limits
        self.metrics = metrics
        self.reserved_names = reserved_names
        # Routes naming an adapter (set by the app once routes exist): such an adapter is not removable.
        self.used_by: Callable[[str], list[str]] | None = None
        # Route names in the shared store (set by the app), read under its lock: no adapter takes one.
        self.route_names: Callable[[], set[str]] | None = None
        self._current: dict[str, AdapterRecord] = {}
        self._in_flight: dict[int, int] = {}
        self._drained = asyncio.Condition()
        self._write_lock = asyncio.Lock()
        self._manifest_mtime = 0
        self.replicas = ReplicaMarkers(store, limits.sync_interval_s, replica_id)
        self.tasks = BackgroundTasks()
        self.residency = Residency(engine, metrics)

    # ----------------------------------------------------------- lookups
    def handle(self, name: str) -> AdapterHandle | None:
        record = self._current.get(name)
        return self._handle(record) if record is not None else None

    def names(self) -> list[str]:
        return sorted(self._current)

    def record(self, name: str) -> AdapterRecord:
        record = self._current.get(name)
        if record is None:
            raise NotFoundError(f"No adapter named `{name}` is registered.", param="name", code="adapter_not_found")
        return record

    def _handle(self, record: AdapterRecord) -> AdapterHandle:
        return AdapterHandle(name=record.name, version=record.version, engine_id=record.engine_id,
                             path=self.store.folder(record))

    # ------------------------------------------------------------ leases
    def lease(self, adapter: AdapterHandle) -> Lease:
        # Synchronous on purpose: resolving and leasing happen without an await in between, so
        # a swap cannot retire the version between the two.
        self._in_flight[adapter.engine_id] = self._in_flight.get(adapter.engine_id, 0) + 1
        self.residency.used(adapter.name)
        return Lease(self, adapter.engine_id)

    def _release(self, engine_id: int) -> None:
        remaining = self._in_flight.get(engine_id, 0) - 1
        if remaining > 0:
            self._in_flight[engine_id] = remaining
            return
        self._in_flight.pop(engine_id, None)
        self.tasks.spawn(self._notify_drained())

    async def _notify_drained(self) -> None:
        async with self._drained:
            self._drained.notify_all()

    async def _wait_drained(self, engine_id: int) -> bool:
        async with self._drained:
            try:
                await asyncio.wait_for(
                    self._drained.wait_for(lambda: self._in_flight.get(engine_id, 0) == 0),
                    self.limits.drain_timeout_s,
                )
                return True
            except asyncio.TimeoutError:
                return False

    # ----------------------------------------------------------- start-up
    async def start(self) -> None:
        """Load the manifest, drop leftovers of interrupted writes, preload adapters."""
        manifest, mtime, removed = await asyncio.to_thread(self._load_and_clean)
        if removed:
            logger.warning("removed leftovers of interrupted registrations: %s", ", ".join(removed))
        self._current = dict(manifest.adapters)
        self._manifest_mtime = mtime
        self.tasks.spawn(self.replicas.keep_fresh())
        for record in list(self._current.values())[: self.limits.preload]:
            await self._load(record)
        await self.residency.apply_pins(self._current, self._load)  # pinned ones even beyond `preload`
        await self._update_gauges()

    def _load_and_clean(self, clean: bool = True) -> tuple[Manifest, int, list[str]]:
        with self.store.locked():
            # mtime under the lock: it then describes exactly the manifest loaded. The marker lists
            # the versions before this replica serves them, so no replica deletes them meanwhile.
            manifest, mtime = self.store.load(), self.store.manifest_mtime_ns()
            self.replicas.serve(manifest.adapters.values())
            self.replicas.write()
            return manifest, mtime, (self.store.remove_orphans(manifest, keep=self.replicas.served_elsewhere())
                                     if clean else [])

    async def refresh(self) -> None:
        """Pick up changes other replicas made to the shared store; heartbeat; retry deferred deletions."""
        await self.pick_up_changes()
        await self._update_gauges()  # also notices the engine's evictions and on-demand loads
        await asyncio.to_thread(self.replicas.sync)

    async def pick_up_changes(self) -> None:
        """Adopt the manifest as other replicas changed it (one stat when nothing changed)."""
        if self.store.manifest_mtime_ns() == self._manifest_mtime:
            return
        async with self._write_lock:
            manifest, self._manifest_mtime, _ = await asyncio.to_thread(self._load_and_clean, False)
            previous, self._current = self._current, dict(manifest.adapters)
        for name, old in previous.items():
            new = self._current.get(name)
            if new is None or new.engine_id != old.engine_id:
                self.tasks.spawn(self._retire(old))
        await self.residency.apply_pins(self._current, self._load)  # pins set by other replicas

    def close(self) -> None:
        """Clean shutdown: stop background work and remove this replica's serving marker."""
        self.tasks.cancel()
        self.replicas.close()

    # ------------------------------------------------------- registration
    async def _register(self, name: str, folder: Path, source: str, caller: str | None,
                        origin: RemoteOrigin | None = None, pinned: bool | None = None,
                        action: str = "register") -> AdapterRecord:
        """Check, stage, load and publish `folder`; `pinned` None keeps the previous version's pin."""
        staging: Path | None = None
        prior = self._current.get(name)
        pinned = bool(prior is not None and prior.pinned) if pinned is None else pinned
        try:
            validate_adapter_name(name, self.reserved_names())
            await asyncio.to_thread(self._check_route_names, name)  # early; again under the lock
            if pinned:
                self._check_pin_room(name)
            await asyncio.to_thread(self._inspect, folder)
            # Inspect the copy too: what is served is exactly what was checked, even if the
            # source folder changes while we copy it.
            staging = await asyncio.to_thread(self.store.stage, folder)
            inspection = await asyncio.to_thread(self._inspect, staging)
        except (AdapterValidationError, ConflictError) as exc:
            self.metrics.adapter_registrations.labels("invalid").inc()
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
            if isinstance(exc, ConflictError):
                raise
            raise client_error(exc) from exc

        async with self._write_lock:
            try:
                record = await self._commit(name, staging, inspection, source, origin, pinned)
            except ServiceError:
                self.metrics.adapter_registrations.labels("invalid").inc()
                raise
            except Exception:
                self.metrics.adapter_registrations.labels("error").inc()
                raise
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            previous = self._current.get(name)
            self._current[name] = record  # the swap: new requests now resolve to this version
            # _manifest_mtime stays as it was: the next refresh() then also picks up changes
            # other replicas made before ours (the new mtime would hide them).
        self.metrics.adapter_registrations.labels("success").inc()
        self.store.audit(AuditEvent(action=action, adapter=name, version=record.version, caller=caller,
                                    source=source, sha256=record.sha256))
        if previous is not None:
            self.tasks.spawn(self._retire(previous))
        await self.residency.apply_pins({name: record}, self._load)
        await self._update_gauges()
        return record

    def _inspect(self, folder: Path) -> AdapterInspection:
        return inspect_adapter(folder, self.base, self.limits.max_rank, self.limits.max_adapter_bytes)

    async def _commit(self, name: str, staging: Path, inspection: AdapterInspection, source: str,
                      origin: RemoteOrigin | None = None, pinned: bool = False) -> AdapterRecord:
        """Place the files, load them into the engine, then name them in the manifest.

        The store's file lock is held only in short synchronous steps (never across an await),
        and the manifest names a version only once its folder is complete and loaded: a crash in
        between leaves an orphan folder that start-up removes.
        """
        record = await asyncio.to_thread(self._reserve, name, staging, inspection, source, origin, pinned)
        try:
            await self._load(record, strict=True)
        except Exception:
            await asyncio.to_thread(self._delete_unnamed, record.path)
            raise
        self.replicas.serve([record])  # _publish lists it in this replica's marker before naming it
        try:
            newer = await asyncio.to_thread(self._publish, record)
        except BaseException:
            self.replicas.forget(record)
            raise
        if newer is not None:
            self.replicas.forget(record)
            with contextlib.suppress(Exception):
                await self.engine.unload_adapter(record.engine_id)
            await asyncio.to_thread(self._delete_unnamed, record.path)
            raise ConflictError(
                f"Adapter `{name}` v{newer.version} was registered (by another replica) while v{record.version} "
                "was loading; this registration was superseded.", param="name", code="adapter_superseded",
            )
        return record

    def _check_route_names(self, name: str) -> None:
        if self.route_names is not None and name in self.route_names():
            raise ConflictError(f"Adapter name {name!r} is taken by a route; clients could not tell them apart.",
                                param="name", code="name_taken")

    def _reserve(self, name: str, staging: Path, inspection: AdapterInspection, source: str,
                 origin: RemoteOrigin | None, pinned: bool) -> AdapterRecord:
        with self.store.locked():
            self._check_route_names(name)  # under the lock: no replica can create the route meanwhile
            manifest = self.store.load()
            current = manifest.adapters.get(name)
            version = max(manifest.last_versions.get(name, 0), current.version if current else 0) + 1
            record = AdapterRecord(
                name=name, version=version, sha256=inspection.weights_sha256, rank=inspection.max_rank,
                alpha=inspection.alpha, target_modules=inspection.target_modules,
                base_model=inspection.base_model_name_or_path, size_bytes=inspection.size_bytes,
                registered_at=datetime.now(timezone.utc), source=source,
                engine_id=manifest.next_engine_id, origin=origin, pinned=pinned,
                path=self.store.commit(staging, name, version),
            )
            # Claim the version and engine id now, so concurrent replicas never reuse them.
            manifest.next_engine_id += 1
            manifest.last_versions[name] = version
            self.store.save(manifest)
        return record

    def _publish(self, record: AdapterRecord) -> AdapterRecord | None:
        """Name `record` in the manifest; return the newer version instead if one was published
        meanwhile (versions are claimed in order but may finish loading out of order)."""
        with self.store.locked():
            manifest = self.store.load()
            current = manifest.adapters.get(record.name)
            if current is not None and current.version > record.version:
                return current
            self.replicas.write()
            manifest.adapters[record.name] = record
            self.store.save(manifest)
        return None

    def _delete_unnamed(self, relative: str) -> None:
        with self.store.locked():
            if all(r.path != relative for r in self.store.load().adapters.values()):
                self.store.delete_folder(relative)

    async def _load(self, record: AdapterRecord, strict: bool = False) -> bool:
        started = time.monotonic()
        try:
            await self.engine.load_adapter(self._handle(record))
        except Exception as exc:
            self.metrics.adapter_loads.labels(record.name, "error").inc()
            if strict:
                raise InvalidRequestError(
                    f"The engine could not load adapter `{record.name}`: {exc}", code="adapter_load_failed"
                ) from exc
            logger.warning("could not preload adapter %s v%s: %s", record.name, record.version, exc)
            return False
        self.residency.loaded(record, time.monotonic() - started)
        return True

    # ------------------------------------------------------------ removal
    async def remove(self, name: str, caller: str | None = None) -> AdapterRecord:
        async with self._write_lock:
            record = await asyncio.to_thread(self._unpublish, name)
            if record is None:
                raise NotFoundError(f"No adapter named `{name}` is registered.", param="name",
                                    code="adapter_not_found")
            self._current.pop(name, None)  # _manifest_mtime unchanged: see _register
        self.store.audit(AuditEvent(action="remove", adapter=name, version=record.version, caller=caller))
        self.residency.forget(name)
        await self._retire(record)
        await self._update_gauges()
        return record

    def _unpublish(self, name: str) -> AdapterRecord | None:
        with self.store.locked():
            # Under the store lock: no replica can point a route at this adapter meanwhile.
            users = self.used_by(name) if self.used_by is not None else []
            if users:
                raise ConflictError(
                    f"Adapter `{name}` is used by route(s) {', '.join(users)}; change or delete them first.",
                    param="name", code="adapter_in_use",
                )
            manifest = self.store.load()
            record = manifest.adapters.pop(name, None)
            if record is not None:
                self.store.save(manifest)
        return record

    async def _retire(self, record: AdapterRecord) -> None:
        """Unload a version that is no longer current, after its in-flight requests finish; delete
        its files unless another replica still serves it (then a later refresh() retries)."""
        if not await self._wait_drained(record.engine_id):
            logger.warning("adapter %s v%s still had requests after %.0f s; unloading anyway",
                           record.name, record.version, self.limits.drain_timeout_s)
        with contextlib.suppress(Exception):
            await self.engine.unload_adapter(record.engine_id)
        self.residency.unloaded(record.engine_id)
        self.replicas.retire(record)
        async with self._write_lock:
            await asyncio.to_thread(self.replicas.sync)
        await self._update_gauges()

    # ------------------------------------------------------------- pins
    def _check_pin_room(self, name: str) -> None:
        others = sum(1 for r in self._current.values() if r.pinned and r.name != name)
        if others >= self.limits.max_pinned:
            raise ConflictError(
                f"{others} adapters are pinned already, the most this engine allows ({self.limits.max_pinned}: "
                "max_loras - 1, so one slot stays free for the rest); unpin one first.", param="pinned",
                code="too_many_pinned")

    async def set_pinned(self, name: str, pinned: bool, caller: str | None = None) -> AdapterRecord:
        """Pin (never evicted) or unpin the current version of `name`, for every replica (the manifest)."""
        async with self._write_lock:
            if pinned:
                self.record(name)  # 404 first
                self._check_pin_room(name)
            record = await asyncio.to_thread(self._store_pin, name, pinned)
            if record is None:
                raise NotFoundError(f"No adapter named `{name}` is registered.", param="name", code="adapter_not_found")
            current = self._current.get(name)
            if current is not None and current.engine_id == record.engine_id:
                self._current[name] = record  # else another replica's newer version: refresh() brings it
        self.store.audit(AuditEvent(action="pin" if pinned else "unpin", adapter=name, version=record.version,
                                    caller=caller))
        await self.residency.apply_pins({name: record}, self._load)
        await self._update_gauges()
        return record

    def _store_pin(self, name: str, pinned: bool) -> AdapterRecord | None:
        with self.store.locked():
            manifest = self.store.load()
            record = manifest.adapters.get(name)
            if record is None:
                return None
            manifest.adapters[name] = record = record.model_copy(update={"pinned": pinned})
            self.store.save(manifest)
        return record

    # ------------------------------------------------------------- status
    async def status(self, name: str) -> AdapterStatus:
        record = self.record(name)
        resident = await self.residency.observe(self._current)
        return self.residency.statuses([record], resident, self._in_flight)[0]

    async def statuses(self) -> list[AdapterStatus]:
        resident = await self.residency.observe(self._current)
        return self.residency.statuses([r for _, r in sorted(self._current.items())], resident, self._in_flight)

    async def _update_gauges(self) -> None:
        await self.residency.observe(self._current)
