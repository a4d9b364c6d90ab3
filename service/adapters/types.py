"""The registry's plain types: limits, status, the engine it drives, and version leases."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, Field, field_validator

from service.adapters.store import AdapterRecord
from service.engine.types import AdapterHandle

if TYPE_CHECKING:
    from service.adapters.registry import AdapterRegistry

logger = logging.getLogger(__name__)

SOURCE_ADAPTERS = Path(__file__).resolve().parents[2] / "adapters"  # the project's adapters/ folder


class AdapterEngine(Protocol):
    """What the registry needs from the engine."""

    async def load_adapter(self, adapter: AdapterHandle) -> None: ...

    async def unload_adapter(self, engine_id: int) -> None: ...

    async def resident_adapter_ids(self) -> set[int]: ...

    async def pin_adapter(self, engine_id: int) -> None: ...


class AdapterSettings(BaseModel):
    """`Settings.adapters`: the store, where adapters may come from, and the registry's timing."""

    store: Path | None = Field(
        None,
        description="Adapter store folder (manifest, versions, audit log); share it between replicas. "
        "Default: `adapter-store` in the cache directory.",
    )
    allowed_roots: list[Path] = Field(
        default_factory=lambda: [SOURCE_ADAPTERS],
        description="Folders adapters may be registered from by path (JSON list in the env var).",
    )
    max_adapter_bytes: int = Field(256 * 2**20, ge=1, description="Largest adapter (folder or upload), bytes.")
    drain_timeout_s: float = Field(
        60.0, gt=0, description="How long a swap or removal waits for the old version's requests."
    )
    # How often refresh() runs (the replica's heartbeat); its serving marker goes stale after 3x.
    sync_interval_s: float = Field(
        5.0, gt=0, description="How often to pick up adapter changes made by other replicas."
    )
    uri_schemes: list[str] = Field(
        default_factory=lambda: ["s3", "gs", "az", "hf", "https", "file"],
        description="URI schemes adapters may be registered (or resolved) from (JSON list in the env var).",
    )
    uri_allow: list[str] = Field(
        default_factory=list,
        description="Hosts or buckets adapter URIs may name, as shell patterns (`team-*`, `*.example.com`); "
        "empty: any (JSON list in the env var).",
    )
    download_timeout_s: float = Field(
        300.0, gt=0, description="Longest download of one adapter from a URI; then 424 `adapter_store_timeout`.",
    )
    resolver_uri: str | None = Field(
        None, description="Where unknown `model` names are looked up on first use (`<uri>/<model>/`), any "
        "allowed scheme; unset: unknown names are a 404.",
    )
    resolver_negative_ttl_s: float = Field(
        60.0, ge=0, description="How long a name the resolver did not find is answered 404 without asking the store.",
    )
    initial: dict[str, Path] = Field(
        default_factory=dict,
        description="Adapters registered at start when the store lacks the name (JSON object name -> folder "
        "inside an allowed root); `make serve` passes the project's trained adapters.",
    )

    @field_validator("store", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @field_validator("allowed_roots", mode="after")
    @classmethod
    def _expand_roots(cls, value: list[Path]) -> list[Path]:
        return [root.expanduser() for root in value]


class RegistryLimits(AdapterSettings):
    """The adapter settings and what the engine allows (`Settings.engine`): the largest rank
    (`max_lora_rank`) and how many adapters it keeps loaded, preloaded at start (`max_cpu_loras`)."""

    max_rank: int
    preload: int = 8  # adapters loaded into the engine at start-up (the rest load on demand)
    # vLLM refuses to evict when every slot is pinned: one engine slot stays unpinned (max_loras - 1).
    max_pinned: int = Field(3, ge=0)


class AdapterStatus(BaseModel):
    """A manifest entry plus what this replica knows about it now."""

    adapter: AdapterRecord
    resident: bool  # loaded in this replica's engine now (the engine's own list)
    in_flight: int
    last_used: datetime | None = None  # last request leased on this replica
    load_count: int = 0  # loads into this replica's engine (ours and the engine's on-demand reloads)


class Lease:
    """Keeps one adapter version in place while a request uses it. Release is idempotent."""

    def __init__(self, registry: AdapterRegistry | None = None, engine_id: int | None = None) -> None:
        self._registry, self._engine_id = registry, engine_id

    def release(self) -> None:
        if self._registry is not None and self._engine_id is not None:
            self._registry._release(self._engine_id)
            self._registry = None


NO_LEASE = Lease()


class BackgroundTasks:
    """Tasks the registry starts and does not await: referenced until done (the event loop only
    keeps weak references, so an unreferenced task may be garbage-collected mid-flight), and their
    failures logged."""

    def __init__(self) -> None:
        self.running: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work)
        self.running.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        self.running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("adapter background task failed", exc_info=task.exception())

    def cancel(self) -> None:
        for task in list(self.running):
            task.cancel()
