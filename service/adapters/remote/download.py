"""Download an adapter from any fsspec filesystem into a staging folder, bounded in size and time.

One code path for every scheme: list the objects (refusing pickles and oversized listings before
anything is downloaded), then stream each object, counting bytes as they arrive and stopping as
soon as the cap or the deadline is passed. A `.tar.gz` object is downloaded the same way and then
unpacked by the upload checks. What lands is checked afterwards exactly as a local folder is.
Store failures become client-facing validation errors here: a missing object 404, anything the
store or the network did 424 with its reason, never a 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import fsspec

from service.adapters.remote.origin import RemoteOrigin
from service.adapters.remote.uri import AdapterUri
from service.adapters.validation import safe_extract_tar_gz
from service.adapters.validation.errors import AdapterValidationError, fail
from service.adapters.validation.folder import PICKLE_SUFFIXES

CHUNK = 1 << 20
MAX_OBJECTS = 256  # as many entries as a local adapter folder may hold
# Keys fsspec filesystems use for an object's identity: s3fs (ETag, VersionId), gcsfs (etag,
# generation), adlfs (etag, version_id), huggingface_hub (blob_id), http (ETag).
VERSION_KEYS = ("ETag", "etag", "VersionId", "version_id", "generation", "blob_id")
# The optional extra that provides each scheme's filesystem.
EXTRAS = {"s3": "s3", "gs": "gcs", "az": "azure", "hf": "hf", "https": "(aiohttp)", "http": "(aiohttp)"}


class _Cancelled(Exception):
    """The caller gave up (timeout or shutdown): stop between chunks."""


def store_error(source: AdapterUri, message: str, code: str, status: int = 424) -> AdapterValidationError:
    return fail(message, code, param="uri", status=status)


@contextlib.contextmanager
def _store_errors(source: AdapterUri) -> Iterator[None]:
    """Translate what the store's filesystem raised (around store calls only: a local disk error
    stays a server error)."""
    try:
        yield
    except (AdapterValidationError, _Cancelled):
        raise
    except FileNotFoundError as exc:
        raise store_error(source, f"Nothing found at {source.uri}: {exc}", "adapter_source_not_found", 404) from exc
    except PermissionError as exc:
        raise store_error(source, f"The store refused access to {source.uri}: {exc}", "adapter_store_denied") from exc
    except ImportError as exc:
        raise store_error(source, f"This server cannot read {source.scheme}:// URIs (install the loragate "
                          f"extra {EXTRAS.get(source.scheme, '')}): {exc}", "adapter_uri_scheme_unavailable",
                          400) from exc
    except Exception as exc:  # noqa: BLE001 - whatever the store's client raises is the store's failure
        raise store_error(source, f"The store for {source.uri} could not be read: {type(exc).__name__}: {exc}",
                          "adapter_store_unreachable") from exc


def filesystem(source: AdapterUri) -> Any:
    # A fresh instance: credentials and endpoints are read from the environment now, not cached.
    with _store_errors(source):
        return fsspec.filesystem(source.protocol, skip_instance_cache=True)


def download(
    source: AdapterUri, dest: Path, max_bytes: int, deadline: float, cancelled: threading.Event,
) -> tuple[Path, RemoteOrigin]:
    """Copy the adapter at `source` into `dest` (created); return the folder to validate and its origin."""
    fs = filesystem(source)
    objects = _list(fs, source)
    _check_listing(source, objects, max_bytes)
    dest.mkdir(parents=True)
    copier = _Copier(fs, source, max_bytes, deadline, cancelled)
    if source.is_archive:
        archive = dest / ".adapter.tar.gz"
        copier.copy(source.path, archive, "")
        with archive.open("rb") as handle:
            folder = safe_extract_tar_gz(handle, dest / "unpacked", max_bytes)
        archive.unlink()
    else:
        for relative in sorted(objects):
            copier.copy(objects[relative]["name"], dest.joinpath(*relative.split("/")), relative)
        folder = dest
    versions = {rel or PurePosixPath(source.path).name: _versions(info) for rel, info in objects.items()}
    lines = "".join(f"{name}  {digest}\n" for name, digest in sorted(copier.digests.items()))
    return folder, RemoteOrigin(
        uri=source.uri, revision=source.revision, versions={k: v for k, v in versions.items() if v},
        files_sha256=copier.digests, sha256=hashlib.sha256(lines.encode()).hexdigest(), size_bytes=copier.total,
    )


def _list(fs: Any, source: AdapterUri) -> dict[str, dict[str, Any]]:
    """Relative name -> the store's info for each object (one object, "" for an archive)."""
    with _store_errors(source):
        if source.is_archive:
            return {"": {**fs.info(source.path), "name": source.path}}
        found = fs.find(source.path, detail=True, withdirs=False)
        root = fs._strip_protocol(source.path).rstrip("/")
    objects: dict[str, dict[str, Any]] = {}
    for name, info in found.items():
        relative = str(name)[len(root):].lstrip("/") if str(name).startswith(root) else ""
        parts = relative.split("/")
        if not relative or any(part in ("", ".", "..") for part in parts):
            raise store_error(source, f"Adapter uri {source.uri} must name a folder (prefix) of adapter files or "
                              "a .tar.gz archive.", "invalid_adapter_uri", 400)
        objects[relative] = {**info, "name": name}
    return objects


def _check_listing(source: AdapterUri, objects: dict[str, dict[str, Any]], max_bytes: int) -> None:
    """Refuse before downloading anything: an empty prefix, pickles, too many or too large objects."""
    if not objects:
        raise store_error(source, f"No adapter files found at {source.uri}.", "adapter_source_not_found", 404)
    if len(objects) > MAX_OBJECTS:
        raise fail(f"Adapter at {source.uri} holds more than {MAX_OBJECTS} objects.", "adapter_too_large", "uri")
    for relative in objects:
        if PurePosixPath(relative).suffix.lower() in PICKLE_SUFFIXES:
            raise fail(f"Adapter file {relative!r} at {source.uri} is in a pickle-based format, which can execute "
                       "code when loaded; it is refused (nothing was downloaded).", "pickle_weights_refused", "uri")
    declared = sum(int(info.get("size") or 0) for info in objects.values())
    if declared > max_bytes:
        raise fail(f"Adapter at {source.uri} is larger than the {max_bytes}-byte limit ({declared} bytes).",
                   "adapter_too_large", "uri")


def _versions(info: dict[str, Any]) -> dict[str, str]:
    return {key: str(info[key]).strip('"') for key in VERSION_KEYS if info.get(key) not in (None, "")}


class _Copier:
    """Streams objects to local files, counting every byte against one cap and one deadline."""

    def __init__(self, fs: Any, source: AdapterUri, max_bytes: int, deadline: float,
                 cancelled: threading.Event) -> None:
        self.fs, self.source, self.max_bytes = fs, source, max_bytes
        self.deadline, self.cancelled = deadline, cancelled
        self.total = 0
        self.digests: dict[str, str] = {}

    def copy(self, remote: str, target: Path, relative: str) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with _store_errors(self.source):
            handle = self.fs.open(remote, "rb", block_size=CHUNK)
        # O_EXCL | O_NOFOLLOW: a name listed twice never overwrites or follows anything.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
        with handle, os.fdopen(fd, "wb") as out:
            while True:
                self._check_time()
                with _store_errors(self.source):
                    chunk = handle.read(CHUNK)
                if not chunk:
                    break
                self.total += len(chunk)
                if self.total > self.max_bytes:  # counted as it arrives, whatever the listing claimed
                    raise fail(f"Adapter at {self.source.uri} is larger than the {self.max_bytes}-byte limit; "
                               "the download was stopped.", "adapter_too_large", "uri")
                digest.update(chunk)
                out.write(chunk)
        self.digests[relative or PurePosixPath(remote).name] = digest.hexdigest()

    def _check_time(self) -> None:
        if self.cancelled.is_set():
            raise _Cancelled
        if time.monotonic() > self.deadline:
            raise timeout_error(self.source)


def timeout_error(source: AdapterUri) -> AdapterValidationError:
    return store_error(source, f"Downloading the adapter from {source.uri} took longer than the download "
                       "timeout.", "adapter_store_timeout")


async def fetch_adapter(source: AdapterUri, dest: Path, max_bytes: int, timeout_s: float) -> tuple[Path, RemoteOrigin]:
    """`download` in a worker thread (never on the event loop), answered within `timeout_s`.

    A thread cannot be killed: on timeout the copy stops at its next chunk (or when the store's
    client gives up) and removes what it wrote; the caller is answered at once.
    """
    cancelled = threading.Event()
    work = asyncio.ensure_future(asyncio.to_thread(
        download, source, dest, max_bytes, time.monotonic() + timeout_s, cancelled))
    try:
        return await asyncio.wait_for(asyncio.shield(work), timeout_s)
    except BaseException as exc:
        if not work.done():
            cancelled.set()
            work.add_done_callback(lambda done: _discard(done, dest))
        if isinstance(exc, asyncio.TimeoutError):
            raise timeout_error(source) from None
        raise


def _discard(work: asyncio.Future[Any], dest: Path) -> None:
    if not work.cancelled():
        work.exception()  # retrieved: a late failure of an abandoned download is expected
    shutil.rmtree(dest, ignore_errors=True)
