"""How an adapter's files arrive: a folder inside the allowed roots, an uploaded .tar.gz, or a URI
(any fsspec store). Every way ends in the registry's one `_register`, which checks and stages the
folder the same way whatever its source."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import IO

from service.adapters.remote import RemoteOrigin, fetch_adapter, parse_adapter_uri
from service.adapters.store import AdapterRecord, AdapterStore
from service.adapters.types import RegistryLimits
from service.adapters.validation import (
    AdapterValidationError,
    resolve_source_path,
    safe_extract_tar_gz,
    validate_adapter_name,
)
from service.errors import DependencyFailedError, InvalidRequestError, NotFoundError, ServiceError
from service.observability.metrics import Metrics


class AdapterSources:
    """Registration entry points by source (mixed into `AdapterRegistry`)."""

    store: AdapterStore
    limits: RegistryLimits
    metrics: Metrics
    reserved_names: Callable[[], set[str]]

    async def _register(self, name: str, folder: Path, source: str, caller: str | None,
                        origin: RemoteOrigin | None = None, pinned: bool | None = None,
                        action: str = "register") -> AdapterRecord:
        raise NotImplementedError

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[None]:
        """Mark this process as having files in flight (see AdapterStore.writer_lock)."""
        handle = await asyncio.to_thread(self.store.writer_lock)
        try:
            yield
        finally:
            handle.close()

    def _refused(self, exc: AdapterValidationError) -> ServiceError:
        self.metrics.adapter_registrations.labels("invalid").inc()
        return client_error(exc)

    async def register_path(self, name: str, path: str, caller: str | None = None,
                            pinned: bool | None = None) -> AdapterRecord:
        try:
            folder = resolve_source_path(path, self.limits.allowed_roots)
        except AdapterValidationError as exc:
            raise self._refused(exc) from exc
        async with self._writing():
            return await self._register(name, folder, source=str(folder), caller=caller, pinned=pinned)

    async def register_archive(self, name: str, archive: IO[bytes], caller: str | None = None) -> AdapterRecord:
        async with self._writing():
            upload_dir = self.store.new_upload_dir()
            try:
                try:
                    folder = await asyncio.to_thread(
                        safe_extract_tar_gz, archive, upload_dir, self.limits.max_adapter_bytes
                    )
                except AdapterValidationError as exc:
                    raise self._refused(exc) from exc
                return await self._register(name, folder, source="upload", caller=caller)
            finally:
                shutil.rmtree(upload_dir, ignore_errors=True)

    async def register_uri(self, name: str, uri: str, caller: str | None = None, pinned: bool | None = None,
                           action: str = "register") -> AdapterRecord:
        """Download from `uri` (checked against the allowed schemes and hosts first, and the name
        before any lookup), then register exactly as a local folder."""
        limits = self.limits
        try:
            validate_adapter_name(name, self.reserved_names())
            source = parse_adapter_uri(uri, limits.uri_schemes, limits.uri_allow, limits.allowed_roots)
        except AdapterValidationError as exc:
            raise self._refused(exc) from exc
        async with self._writing():
            download_dir = self.store.new_upload_dir()
            try:
                try:
                    folder, origin = await fetch_adapter(source, download_dir, limits.max_adapter_bytes,
                                                         limits.download_timeout_s)
                except AdapterValidationError as exc:
                    raise self._refused(exc) from exc
                return await self._register(name, folder, source=uri, caller=caller, origin=origin, pinned=pinned,
                                            action=action)
            finally:
                shutil.rmtree(download_dir, ignore_errors=True)


def client_error(exc: AdapterValidationError) -> ServiceError:
    """The client-facing error of a refused adapter: 404 (nothing there), 424 (the store failed), else 400."""
    if exc.status == 404:
        return NotFoundError(exc.message, param=exc.param, code=exc.code)
    if exc.status == 424:
        return DependencyFailedError(exc.message, param=exc.param, code=exc.code)
    return InvalidRequestError(exc.message, param=exc.param, code=exc.code)
