"""Where a registered adapter came from, as the manifest records it (remote sources only)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RemoteOrigin(BaseModel):
    """The URI an adapter was downloaded from and what identifies the exact bytes copied."""

    uri: str
    revision: str | None = None  # hf://org/repo@revision, or the commit the hub resolved it to
    # Per downloaded file: the store's own identity of the object (ETag, VersionId, generation,
    # blob id), whichever the filesystem reports.
    versions: dict[str, dict[str, str]] = Field(default_factory=dict)
    files_sha256: dict[str, str] = Field(default_factory=dict)  # per file as copied
    sha256: str  # over the sorted `files_sha256` lines: one digest for the whole download
    size_bytes: int = Field(ge=0)
