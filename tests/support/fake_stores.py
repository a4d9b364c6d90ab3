"""In-memory fsspec filesystems standing in for object stores and hubs (gs://, hf://, az://, s3://,
https://) in unit tests: the download code path is the same as for the real backends; only the
filesystem class fsspec finds for the scheme differs."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.memory import MemoryFileSystem


class FakeStore(MemoryFileSystem):
    """A memory filesystem with its own contents, reporting a per-object generation like gcsfs,
    and counting what is opened and read (to prove what was never downloaded)."""

    store: dict[str, Any]
    pseudo_dirs: list[str]
    opened: list[str]
    bytes_read: list[int]
    lie_about_sizes = False  # report size 0 in listings (a store that lies, or a streamed object)
    fail_with: BaseException | None = None  # raised by every listing
    read_delay_s = 0.0

    def find(self, path: str, *args: Any, **kwargs: Any) -> Any:
        if self.fail_with is not None:
            raise self.fail_with
        found = super().find(path, *args, **kwargs)
        if isinstance(found, dict):
            return {name: {**info, "generation": "7", **({"size": 0} if self.lie_about_sizes else {})}
                    for name, info in found.items()}
        return found

    def info(self, path: str, **kwargs: Any) -> Any:
        if self.fail_with is not None:
            raise self.fail_with
        return {**super().info(path, **kwargs), "ETag": '"etag-1"'}

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        handle = super()._open(path, mode, **kwargs)
        if "r" not in mode:
            return handle
        self.opened.append(path)
        counter, delay = self.bytes_read, self.read_delay_s
        read = handle.read

        def counted(size: int = -1) -> bytes:
            if delay:
                time.sleep(delay)
            data = read(size)
            counter[0] += len(data)
            return data

        handle.read = counted
        return handle


def fake_store(scheme: str) -> type[FakeStore]:
    """A fresh FakeStore class for `scheme` (its own contents and counters)."""
    return type(f"Fake_{scheme}", (FakeStore,), {
        "protocol": (scheme,), "store": {}, "pseudo_dirs": [""], "opened": [], "bytes_read": [0],
        "_lock": threading.Lock(),
    })


def install(monkeypatch: Any, scheme: str) -> type[FakeStore]:
    cls = fake_store(scheme)
    # `fsspec.registry` is the read-only view; the module's own dict is what fsspec looks in first.
    monkeypatch.setitem(sys.modules["fsspec.registry"]._registry, scheme, cls)
    return cls


def put_folder(cls: type[FakeStore], prefix: str, folder: Path, extra: dict[str, bytes] | None = None) -> None:
    """Copy a local adapter folder to `prefix` (an fsspec path without scheme) in the fake store."""
    fs = cls()
    for file in sorted(folder.rglob("*")):
        if file.is_file():
            fs.pipe_file(f"{prefix}/{file.relative_to(folder).as_posix()}", file.read_bytes())
    for name, data in (extra or {}).items():
        fs.pipe_file(f"{prefix}/{name}", data)
