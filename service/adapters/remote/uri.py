"""Adapter URIs: which schemes and hosts may be named, and how a URI maps to an fsspec path.

Every scheme goes through fsspec (one code path): `s3://bucket/prefix/`, `gs://bucket/prefix/`,
`az://container/prefix/`, `hf://org/repo[@revision][/subfolder]`, `https://host/adapter.tar.gz`,
`file:///folder` (inside the allowed adapter roots, like a path). Credentials never come from the
URI: each store's filesystem reads its standard environment and config.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel

from service.adapters.validation.errors import AdapterValidationError, fail
from service.adapters.validation.names import resolve_source_path

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
# The fsspec protocol of each scheme (fsspec's own names; gcsfs also answers to `gcs`).
PROTOCOLS = {"s3": "s3", "gs": "gs", "az": "az", "hf": "hf", "https": "https", "http": "http", "file": "file"}
_MAX_URI = 2048


class AdapterUri(BaseModel):
    """A checked adapter URI."""

    uri: str
    scheme: str
    host: str  # bucket, container, `org/repo` or web host: what `uri_allow` patterns match
    path: str  # the path handed to the fsspec filesystem
    revision: str | None = None
    is_archive: bool  # a single .tar.gz object rather than a folder

    @property
    def protocol(self) -> str:
        return PROTOCOLS[self.scheme]


def _bad(message: str, code: str = "invalid_adapter_uri") -> AdapterValidationError:
    return fail(message, code, param="uri")


def parse_adapter_uri(uri: str, schemes: list[str], allow: list[str], roots: list[Path]) -> AdapterUri:
    """Check `uri` against the allowed schemes and host patterns (400, param `uri`)."""
    if not isinstance(uri, str) or not uri or len(uri) > _MAX_URI or any(ord(c) < 32 for c in uri):
        raise _bad("Adapter uri must be a non-empty URI of printable characters.")
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in PROTOCOLS or scheme not in {s.lower() for s in schemes}:
        raise _bad(f"Adapter uri scheme {scheme or '(none)'!r} is not allowed here (allowed: "
                   f"{', '.join(schemes) or 'none'}).", "adapter_uri_not_allowed")
    if parts.username is not None or parts.password is not None:
        raise _bad("Adapter uri must not carry credentials: the store's own environment and config provide them.")
    if parts.fragment or (parts.query and scheme not in ("http", "https")):
        raise _bad("Adapter uri must not have a query or fragment.")
    if any(segment == ".." for segment in parts.path.split("/")):
        raise _bad("Adapter uri must not contain '..'.")
    path = parts.path.strip("/")
    is_archive = path.lower().endswith(ARCHIVE_SUFFIXES)
    if scheme == "file":
        return _file_uri(uri, parts.netloc, parts.path, roots, is_archive)
    host, revision = parts.netloc, None
    if not host:
        raise _bad(f"Adapter uri {uri!r} names no bucket, container or host.")
    if scheme == "hf":
        host, path, revision = _hf_repo(uri, host, path)
    if scheme in ("http", "https"):
        if not is_archive:
            raise _bad("An http(s) adapter uri must name a .tar.gz archive of the adapter folder.")
        fs_path = uri
    else:
        fs_path = f"{host}/{path}".rstrip("/") if scheme != "hf" else _hf_path(host, revision, path)
    _check_allowed(host, allow)
    return AdapterUri(uri=uri, scheme=scheme, host=host, path=fs_path, revision=revision, is_archive=is_archive)


def _hf_repo(uri: str, org: str, rest: str) -> tuple[str, str, str | None]:
    """`hf://org/repo@rev/sub` -> (`org/repo`, `sub`, `rev`)."""
    repo, _, sub = rest.partition("/")
    name, at, revision = repo.partition("@")
    if not name or (at and not revision):
        raise _bad(f"Adapter uri {uri!r} must look like hf://org/repo[@revision][/folder].")
    return f"{org}/{name}", sub, revision or None


def _hf_path(repo: str, revision: str | None, sub: str) -> str:
    base = f"{repo}@{revision}" if revision else repo
    return f"{base}/{sub}".rstrip("/")


def _file_uri(uri: str, netloc: str, path: str, roots: list[Path], is_archive: bool) -> AdapterUri:
    if netloc not in ("", "localhost"):
        raise _bad(f"A file adapter uri names this machine only (file:///folder), not {netloc!r}.")
    try:
        folder = resolve_source_path(path, roots)  # inside the allowed roots, like a `path` registration
    except AdapterValidationError as exc:
        exc.param = "uri"
        raise
    return AdapterUri(uri=uri, scheme="file", host="", path=str(folder), is_archive=is_archive)


def _check_allowed(host: str, allow: list[str]) -> None:
    if allow and not any(fnmatch.fnmatchcase(host.lower(), pattern.lower()) for pattern in allow):
        raise _bad(f"Adapter uri host or bucket {host!r} is not in the allowed list.", "adapter_uri_not_allowed")


def join_uri(base: str, name: str) -> str:
    """`<base>/<name>/`: where the resolver looks for an adapter called `name`."""
    return f"{base.rstrip('/')}/{name}/"
