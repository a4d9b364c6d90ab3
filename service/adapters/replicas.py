"""Serving markers: which adapter versions each replica sharing the store serves right now.

Every registry (replica) keeps one marker in the shared store:

    root/.replicas/REPLICA_ID.json   versions it serves + a heartbeat (replaced atomically)
    root/.replicas/REPLICA_ID.lock   held (flock) for the replica's lifetime

A replica "serves" a version from the moment it could route a request to it (adopted from the
manifest, or published by itself) until it has unloaded it after its last request. A version no
longer named by the manifest is deleted from disk only when no *live* marker lists it; otherwise
its deletion stays pending and is retried on every refresh tick (`ReplicaMarkers.sync`), and also
by whichever replica drops the version last.

The marker is rewritten on every change and on a heartbeat of its own (every `heartbeat_s`, the
registry's refresh period, even while refresh() waits behind a slow registration).
A marker is live while its owner holds its lock file (the kernel drops the lock when the process
dies, as for the store's `.writers` lock) and its heartbeat is younger than `stale_after_s`
(3 refresh periods, declared in the marker itself): a crashed replica's marker is ignored (and
removed) at once, a hung one's after the stale timeout.

Ordering: every marker write, every adoption of manifest versions and every deletion check runs
under the store's lock (`AdapterStore.locked`), so a replica either lists a version before another
replica checks it, or reads a manifest that no longer names it and never serves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Container, Iterable
from datetime import datetime, timezone
from typing import IO

from pydantic import BaseModel, ValidationError

from service.adapters.store import AdapterRecord, AdapterStore

logger = logging.getLogger(__name__)

STALE_FACTOR = 3  # a marker whose heartbeat is older than this many refresh periods is ignored


class ServedVersion(BaseModel):
    name: str
    version: int
    engine_id: int
    path: str  # relative to the store root, as in the manifest


class ReplicaMarker(BaseModel):
    replica_id: str
    host: str
    pid: int
    started_at: datetime
    heartbeat: datetime
    stale_after_s: float
    versions: list[ServedVersion]


class _Everything:
    """Stands for "every folder" when a live replica's marker cannot be read."""

    def __contains__(self, item: object) -> bool:
        return True


def default_replica_id() -> str:
    raw = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", raw)


def _owner_alive(lock_path: os.PathLike[str]) -> bool:
    """Whether some process holds the marker's lock (never creates the file)."""
    try:
        fd = os.open(lock_path, os.O_WRONLY | os.O_APPEND)  # writable: NFS emulates flock with fcntl locks
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False
    finally:
        os.close(fd)  # releases the probe's lock, if it got it


class ReplicaMarkers:
    """This replica's marker, the versions it serves, and its retired versions awaiting deletion.

    `serve`/`retire`/`forget` are called from the event loop; `write`, `served_elsewhere` and
    `purge` expect the caller to hold the store lock; `sync` takes it.
    """

    def __init__(self, store: AdapterStore, heartbeat_s: float, replica_id: str | None = None) -> None:
        self.store = store
        self.replica_id = replica_id or default_replica_id()
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = STALE_FACTOR * heartbeat_s
        self.marker_path = store.replicas_dir / f"{self.replica_id}.json"
        self.lock_path = store.replicas_dir / f"{self.replica_id}.lock"
        self._started_at = datetime.now(timezone.utc)
        self._serving: dict[str, AdapterRecord] = {}  # path -> record
        self._pending: dict[str, AdapterRecord] = {}  # retired here, files not yet deleted
        self._reported: set[str] = set()  # pending paths whose deferral was logged
        self._state = threading.Lock()  # short: guards the two dicts
        self._io = threading.Lock()  # marker writes vs close
        self._handle: IO[str] | None = None
        self._closed = False
        self._last_write = 0.0  # time.monotonic() of the last marker write

    # ------------------------------------------------------------ state
    def serve(self, records: Iterable[AdapterRecord]) -> None:
        with self._state:
            self._serving.update((r.path, r) for r in records)

    def retire(self, record: AdapterRecord) -> None:
        """No longer served here (unloaded): delete its files once no other replica serves it."""
        with self._state:
            self._serving.pop(record.path, None)
            self._pending[record.path] = record

    def forget(self, record: AdapterRecord) -> None:
        """A version this replica listed but never published (superseded registration)."""
        with self._state:
            self._serving.pop(record.path, None)

    def serving(self) -> list[AdapterRecord]:
        with self._state:
            return sorted(self._serving.values(), key=lambda r: r.engine_id)

    def pending(self) -> list[str]:
        with self._state:
            return sorted(self._pending)

    # ------------------------------------------------------- under the store lock
    def write(self) -> None:
        """(Re)write this replica's marker with a fresh heartbeat."""
        with self._io:
            if self._closed:
                return
            self._hold_lock()
            now = datetime.now(timezone.utc)
            marker = ReplicaMarker(
                replica_id=self.replica_id, host=socket.gethostname(), pid=os.getpid(),
                started_at=self._started_at, heartbeat=now, stale_after_s=self.stale_after_s,
                versions=[ServedVersion(name=r.name, version=r.version, engine_id=r.engine_id, path=r.path)
                          for r in self.serving()],
            )
            self.store.write_atomically(self.marker_path, marker.model_dump_json(indent=2))
            self._last_write = time.monotonic()

    def _hold_lock(self) -> None:
        if self._handle is not None and not self._handle.closed:
            with contextlib.suppress(FileNotFoundError):
                held, on_disk = os.fstat(self._handle.fileno()), os.stat(self.lock_path)
                if (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino):
                    return
        if self._handle is not None:
            self._handle.close()  # the file was removed under us: take a new one
        handle = self.lock_path.open("a")
        fcntl.flock(handle, fcntl.LOCK_EX)  # only a liveness probe (under the store lock) competes
        self._handle = handle

    def served_elsewhere(self) -> Container[str]:
        """Paths listed by other live replicas; markers of dead replicas are removed."""
        paths: set[str] = set()
        for marker_path in sorted(self.store.replicas_dir.glob("*.json")):
            replica_id = marker_path.stem
            if replica_id == self.replica_id:
                continue
            if not _owner_alive(self.store.replicas_dir / f"{replica_id}.lock"):
                logger.info("removing the serving marker of replica %s (no longer running)", replica_id)
                marker_path.unlink(missing_ok=True)
                (self.store.replicas_dir / f"{replica_id}.lock").unlink(missing_ok=True)
                continue
            try:
                marker = ReplicaMarker.model_validate_json(marker_path.read_bytes())
            except FileNotFoundError:  # removed by a clean shutdown meanwhile
                continue
            except (OSError, ValidationError) as exc:
                logger.warning("cannot read the serving marker %s (%s): keeping every adapter folder",
                               marker_path, exc)
                return _Everything()
            age = (datetime.now(timezone.utc) - marker.heartbeat).total_seconds()
            if age > marker.stale_after_s:
                logger.debug("ignoring the stale serving marker of replica %s (%.0f s old)", replica_id, age)
                continue
            paths.update(v.path for v in marker.versions)
        return paths

    def purge(self) -> list[str]:
        """Delete the pending versions nobody serves any more; return what was deleted."""
        if not self.pending():
            return []
        named = {r.path for r in self.store.load().adapters.values()}
        elsewhere = self.served_elsewhere()
        deleted = []
        for path in self.pending():
            with self._state:
                record, own = self._pending[path], path in self._serving
            if path in named or own:  # current again, or served here: not ours to delete
                with self._state:
                    self._pending.pop(path, None)
                continue
            if path in elsewhere:
                if path not in self._reported:
                    self._reported.add(path)
                    logger.info("keeping the files of adapter %s v%s: another replica still serves it",
                                record.name, record.version)
                continue
            self.store.delete_folder(path)
            with self._state:
                self._pending.pop(path, None)
            self._reported.discard(path)
            deleted.append(path)
            logger.info("deleted the files of retired adapter %s v%s", record.name, record.version)
        return deleted

    # ------------------------------------------------------------ takes the lock
    def sync(self) -> list[str]:
        """The periodic tick: heartbeat, then retry the deferred deletions."""
        with self.store.locked():
            self.write()
            return self.purge()

    async def keep_fresh(self) -> None:
        """The heartbeat, as a task: a beat is skipped when a refresh tick wrote the marker meanwhile."""
        while not self._closed:
            await asyncio.sleep(max(self._last_write + self.heartbeat_s - time.monotonic(), 0.01))
            if time.monotonic() - self._last_write >= self.heartbeat_s and not self._closed:
                try:
                    await asyncio.to_thread(self.sync)
                except Exception:
                    logger.exception("could not refresh this replica's serving marker")

    def close(self) -> None:
        """Clean shutdown: remove the marker and release its lock (removal only frees files)."""
        with self._io:
            self._closed = True
            self.marker_path.unlink(missing_ok=True)
            if self._handle is not None:
                self.lock_path.unlink(missing_ok=True)
                self._handle.close()
                self._handle = None
