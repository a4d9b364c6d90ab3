"""Unpack an uploaded adapter .tar.gz safely: no links, devices, absolute paths or '..', and a
size cap counted on the decompressed stream itself (tar bombs, oversized PAX headers)."""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import tarfile
import zlib
from pathlib import Path, PurePosixPath
from typing import IO, Any

from service.adapters.validation.errors import AdapterValidationError, fail


class _CappedReader(io.RawIOBase):
    """Decompressed-stream view that stops at `limit` bytes, whatever the tar headers claim.

    tarfile reads PAX / GNU long-name headers whole into memory, so a header claiming gigabytes
    must be cut off here rather than trusted.
    """

    def __init__(self, inner: IO[bytes], limit: int) -> None:
        self._inner = inner
        self._remaining = limit

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        want = self._remaining + 1 if size is None or size < 0 else min(size, self._remaining + 1)
        data = self._inner.read(want)
        self._remaining -= len(data)
        if self._remaining < 0:
            raise _ArchiveTooLarge
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _ArchiveTooLarge(Exception):
    pass


def _member_parts(name: str) -> tuple[str, ...]:
    """Validate a member name; return its path components ('./' prefixes dropped)."""
    if not name or "\x00" in name or len(name) > 1024:
        raise fail(f"Archive member name {name[:100]!r} is empty or invalid.", "unsafe_archive")
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise fail(f"Archive member {name!r} has an absolute path.", "unsafe_archive")
    if "\\" in name:
        raise fail(f"Archive member {name!r} contains a backslash.", "unsafe_archive")
    parts = tuple(p for p in PurePosixPath(name).parts if p != ".")
    if ".." in parts:
        raise fail(f"Archive member {name!r} contains a '..' component.", "unsafe_archive")
    return parts


def safe_extract_tar_gz(
    data: bytes | IO[bytes],
    dest: Path,
    max_bytes: int,
    max_members: int = 64,
) -> Path:
    """Extract a .tar.gz into `dest` (absent or empty) and return the adapter folder inside it.

    Only regular files and folders are allowed; links, devices and FIFOs, absolute paths and '..'
    are refused. Sizes are counted from the decompressed stream itself. If the archive holds a
    single top-level folder, that folder is returned, otherwise `dest`. On any error, what was
    extracted is removed.
    """
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ValueError(f"extraction destination {dest} must be absent or an empty directory")
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    raw = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    # Headers, padding and end blocks count too; allow a generous per-member allowance for them.
    stream_limit = max_bytes + (max_members + 4) * 4096 + 20480
    try:
        top_level = _extract(raw, dest, max_bytes, max_members, stream_limit)
    except BaseException:
        if created:
            shutil.rmtree(dest, ignore_errors=True)
        else:
            for child in dest.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        raise
    if len(top_level) == 1:
        (only,) = top_level
        if (dest / only).is_dir():
            return dest / only
    return dest


def _extract(raw: IO[bytes], dest: Path, max_bytes: int, max_members: int, stream_limit: int) -> set[str]:
    total = 0
    members = 0
    top_level: set[str] = set()
    too_large = fail(
        f"Archive unpacks to more than the {max_bytes}-byte limit.", "adapter_too_large"
    )
    try:
        gz = gzip.GzipFile(fileobj=raw, mode="rb")
        with tarfile.open(fileobj=_CappedReader(gz, stream_limit), mode="r|") as tar:
            for member in tar:
                members += 1
                if members > max_members:
                    raise fail(f"Archive has more than {max_members} members.", "unsafe_archive")
                parts = _member_parts(member.name)
                if not parts:  # the "./" entry itself
                    if member.isdir():
                        continue
                    raise fail(f"Archive member {member.name!r} has no name.", "unsafe_archive")
                # macOS tar adds AppleDouble metadata files; they are never part of an adapter.
                if parts[0] == "__MACOSX" or parts[-1].startswith("._"):
                    continue
                if member.issym() or member.islnk():
                    raise fail(f"Archive member {member.name!r} is a link; links are refused.", "unsafe_archive")
                if not (member.isreg() or member.isdir()) or member.issparse():
                    raise fail(
                        f"Archive member {member.name!r} is not a regular file or folder "
                        "(devices, FIFOs and sparse files are refused).",
                        "unsafe_archive",
                    )
                target = dest.joinpath(*parts)
                top_level.add(parts[0])
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                if total + member.size > max_bytes:  # early refusal; the real count is below
                    raise too_large
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None  # regular file
                # O_EXCL: a repeated member name must not overwrite (or be redirected through) an earlier one.
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
                with os.fdopen(fd, "wb") as out:
                    while chunk := source.read(1 << 20):
                        total += len(chunk)
                        if total > max_bytes:
                            raise too_large
                        out.write(chunk)
    except AdapterValidationError:
        raise
    except _ArchiveTooLarge:
        raise too_large from None
    except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
        raise fail(
            f"Archive holds {Path(exc.filename or '?').name!r} twice or as both a file and a folder.", "unsafe_archive"
        ) from exc
    except (tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error, UnicodeError) as exc:
        raise fail(f"Archive is not a valid .tar.gz: {exc}.", "corrupt_archive") from exc
    except OSError as exc:
        if exc.errno is not None:  # a real I/O failure (disk full, ...), not a bad archive
            raise
        raise fail(f"Archive is not a valid .tar.gz: {exc}.", "corrupt_archive") from exc
    if not top_level:
        raise fail("Archive contains no files.", "corrupt_archive")
    return top_level
