"""The adapter store on disk: versioned adapter folders, a manifest and an audit log.

Layout (`root` is shared by every replica that serves the same adapters):

    root/manifest.json             current version of every adapter (replaced atomically)
    root/audit.log                 one JSON line per change
    root/.lock                     advisory lock serializing writers across processes
    root/.writers                  shared lock held by every registration in progress
    root/adapters/NAME/vN/         adapter_config.json + adapter_model.safetensors
    root/.staging/                 copies in progress (removed at start-up)
    root/.replicas/ID.json, ID.lock  per replica: the versions it serves (see replicas.py)

A crash at any moment leaves the previous manifest intact: folders are complete before the
manifest names them, and the manifest is written to a temporary file, fsynced and renamed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Container, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from pydantic import BaseModel, Field, ValidationError

from service.adapters.remote.origin import RemoteOrigin
from service.adapters.validation.task_policy import TRIAGE_POLICY_FILE

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
# Kept with the version when the adapter ships them (checked on registration like the weights).
OPTIONAL_ADAPTER_FILES = (TRIAGE_POLICY_FILE,)


class AdapterRecord(BaseModel):
    """One registered adapter version, as the manifest keeps it."""

    name: str
    version: int = Field(ge=1)
    sha256: str
    rank: int
    alpha: float
    target_modules: list[str]
    base_model: str | None  # what the adapter's config declares (informational)
    size_bytes: int
    registered_at: datetime
    source: str
    engine_id: int = Field(ge=1)  # vLLM's LoRA id: unique per (name, version), never reused
    path: str  # relative to the store root
    origin: RemoteOrigin | None = None  # registered from a URI: what exactly was downloaded
    pinned: bool = False  # never evicted from the engine's adapter cache


class Manifest(BaseModel):
    format_version: int = 1
    next_engine_id: int = 1
    # Highest version ever given per name, so a removed and re-added name never reuses a version.
    last_versions: dict[str, int] = Field(default_factory=dict)
    adapters: dict[str, AdapterRecord] = Field(default_factory=dict)


class AuditEvent(BaseModel):
    time: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    action: str  # register | resolved | pin | unpin | remove | route_set | route_patch | route_delete | route_rollback
    adapter: str | None = None
    route: str | None = None
    version: int | None = None
    caller: str | None = None  # the id of the API key that made an API change (never the key)
    source: str | None = None
    sha256: str | None = None


class StoreCorruptError(RuntimeError):
    """The manifest exists but cannot be read: refuse to start rather than lose registrations."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_file_synced(source: Path, target: Path) -> None:
    with source.open("rb") as src, target.open("xb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
        dst.flush()
        os.fsync(dst.fileno())


class AdapterStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.manifest_path = root / "manifest.json"
        self.audit_path = root / "audit.log"
        self.staging_dir = root / ".staging"
        self.adapters_dir = root / "adapters"
        self.replicas_dir = root / ".replicas"
        root.mkdir(parents=True, exist_ok=True)
        self.staging_dir.mkdir(exist_ok=True)
        self.adapters_dir.mkdir(exist_ok=True)
        self.replicas_dir.mkdir(exist_ok=True)

    # -------------------------------------------------------------- manifest
    def load(self) -> Manifest:
        try:
            # Bytes, not text: invalid UTF-8 must surface as StoreCorruptError too.
            raw = self.manifest_path.read_bytes()
        except FileNotFoundError:
            return Manifest()
        try:
            return Manifest.model_validate_json(raw)
        except ValidationError as exc:
            raise StoreCorruptError(f"{self.manifest_path} is unreadable: {exc}") from exc

    def manifest_mtime_ns(self) -> int:
        try:
            return self.manifest_path.stat().st_mtime_ns
        except FileNotFoundError:
            return 0

    def save(self, manifest: Manifest) -> None:
        self.write_atomically(self.manifest_path, manifest.model_dump_json(indent=2))

    def write_atomically(self, path: Path, text: str) -> None:
        """Replace `path` so that readers see the old or the new content, never a mix, even
        after a crash: temporary file, fsync, rename, fsync of the folder."""
        temporary = path.with_name(f".{path.stem}.{uuid.uuid4().hex}.tmp")
        with temporary.open("w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        _fsync_dir(path.parent)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive across processes and replicas on the same filesystem (flock)."""
        with (self.root / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def writer_lock(self) -> IO[str]:
        """Hold (shared) while a registration has files in .staging or unnamed version folders.

        Start-up clean-up takes it exclusively, so a replica (re)starting never deletes another
        live process's half-made registration; the kernel drops it when a process dies, so a
        crashed writer's leftovers are still cleaned. Close the returned file to release it.
        """
        handle = (self.root / ".writers").open("a")
        fcntl.flock(handle, fcntl.LOCK_SH)
        return handle

    # -------------------------------------------------------------- folders
    def stage(self, source: Path) -> Path:
        """Copy the adapter's files (and the optional ones it ships) into a fresh staging folder (fsynced)."""
        staging = self.staging_dir / uuid.uuid4().hex
        staging.mkdir()
        try:
            for name in ADAPTER_FILES:
                _copy_file_synced(source / name, staging / name)
            for name in OPTIONAL_ADAPTER_FILES:
                if (source / name).is_file():
                    _copy_file_synced(source / name, staging / name)
            _fsync_dir(staging)
        except BaseException:  # e.g. the source vanished or the disk filled: no stray folder
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return staging

    def new_upload_dir(self) -> Path:
        return self.staging_dir / f"upload-{uuid.uuid4().hex}"

    def commit(self, staging: Path, name: str, version: int) -> str:
        """Move a staged folder to its final place; return its store-relative path."""
        parent = self.adapters_dir / name
        if not parent.exists():
            parent.mkdir()
            _fsync_dir(self.adapters_dir)  # the new name folder must survive a power loss too
        target = parent / f"v{version}"
        if target.exists():  # left by a crash before the manifest named it
            shutil.rmtree(target)
        os.rename(staging, target)
        _fsync_dir(parent)
        return str(target.relative_to(self.root))

    def folder(self, record: AdapterRecord) -> Path:
        return self.root / record.path

    def delete_folder(self, relative: str) -> None:
        target = self.root / relative
        shutil.rmtree(target, ignore_errors=True)
        with contextlib.suppress(OSError):
            target.parent.rmdir()  # only when it was the name's last version

    def remove_orphans(self, manifest: Manifest, keep: Container[str] = ()) -> list[str]:
        """Delete staging leftovers and version folders the manifest does not name, except `keep`
        (retired versions another live replica still serves). Call under `locked()`.

        Skipped (returns []) while another process is registering: its files are not leftovers.
        """
        with (self.root / ".writers").open("a") as writers:
            try:
                fcntl.flock(writers, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return []
            return self._remove_orphans(manifest, keep)

    def _remove_orphans(self, manifest: Manifest, keep: Container[str]) -> list[str]:
        removed = []
        for leftover in self.staging_dir.iterdir():
            shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink()
            removed.append(str(leftover.relative_to(self.root)))
        # manifest.json and routes.json writes; marker writes (all under the lock, so none is live)
        for stray in [*self.root.glob(".*.*.tmp"), *self.replicas_dir.glob(".*.*.tmp")]:
            stray.unlink(missing_ok=True)
        named = {record.path for record in manifest.adapters.values()}
        for version_dir in sorted(self.adapters_dir.glob("*/v*")):
            relative = str(version_dir.relative_to(self.root))
            if relative not in named and relative not in keep:
                self.delete_folder(relative)
                removed.append(relative)
        for name_dir in sorted(self.adapters_dir.iterdir()):
            # A crash between creating a name folder and moving its first version in.
            if name_dir.is_dir() and not any(name_dir.iterdir()):
                name_dir.rmdir()
                removed.append(str(name_dir.relative_to(self.root)))
        return removed

    # ---------------------------------------------------------------- audit
    def audit(self, event: AuditEvent) -> None:
        line = event.model_dump_json(exclude_none=True) + "\n"
        with self.audit_path.open("a") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def audit_events(self) -> list[AuditEvent]:
        try:
            lines = self.audit_path.read_text().splitlines()
        except FileNotFoundError:
            return []
        events = []
        for line in lines:
            with contextlib.suppress(ValueError):
                events.append(AuditEvent.model_validate(json.loads(line)))
        return events
