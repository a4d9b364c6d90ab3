"""The registry's plain types: limits, status, the engine it drives, and version leases."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel

from service.adapters.store import AdapterRecord
from service.engine.types import AdapterHandle

if TYPE_CHECKING:
    from service.adapters.registry import AdapterRegistry


class AdapterEngine(Protocol):
    """What the registry needs from the engine."""

    async def load_adapter(self, adapter: AdapterHandle) -> None: ...

    async def unload_adapter(self, engine_id: int) -> None: ...

    async def resident_adapter_ids(self) -> set[int]: ...


class RegistryLimits(BaseModel):
    max_rank: int
    max_adapter_bytes: int
    allowed_roots: list[Path]
    drain_timeout_s: float = 60.0
    preload: int = 8  # adapters loaded into the engine at start-up (the rest load on demand)


class AdapterStatus(BaseModel):
    """A manifest entry plus what this replica knows about it now."""

    adapter: AdapterRecord
    resident: bool
    in_flight: int


class Lease:
    """Keeps one adapter version in place while a request uses it. Release is idempotent."""

    def __init__(self, registry: AdapterRegistry | None = None, engine_id: int | None = None) -> None:
        self._registry, self._engine_id = registry, engine_id

    def release(self) -> None:
        if self._registry is not None and self._engine_id is not None:
            self._registry._release(self._engine_id)
            self._registry = None


NO_LEASE = Lease()
