"""A registry wired to a fake engine: the unit tests and the crash-injection child share it.

No vLLM and no model weights: `BaseModelShape` comes from a tiny Llama `config.json` folder and
the fake engine only records calls (and checks the adapter files are there, as vLLM would).
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from prometheus_client import CollectorRegistry

from service.adapters.store import AdapterStore
from service.adapters.validation import BaseModelShape
from service.engine import AdapterHandle
from service.observability.metrics import Metrics
from service.adapters import AdapterRegistry, RegistryLimits
from service.routing import RouteRegistry

BASE_MODEL_NAME = "tiny-llama"
MAX_BYTES = 50 << 20


class FakeEngine:
    """Implements the registry's `AdapterEngine` protocol and records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []  # ("load" | "unload", engine_id) in order
        self.resident: dict[int, AdapterHandle] = {}
        self.pinned: set[int] = set()
        self.capacity: int | None = None  # set: evict like vLLM's LRU cache (max_cpu_loras)
        self.fail_loads = 0  # the next N loads raise
        # When set, a load waits for it: lets a test act while a registration is mid-flight.
        self.load_gate: asyncio.Event | None = None
        self.load_started = asyncio.Event()

    async def load_adapter(self, adapter: AdapterHandle) -> None:
        self.calls.append(("load", adapter.engine_id))
        self.load_started.set()
        if self.load_gate is not None:
            await self.load_gate.wait()
        if self.fail_loads > 0:
            self.fail_loads -= 1
            raise RuntimeError("injected engine load failure")
        # vLLM reads the folder when it loads: a missing or partial folder must fail here too.
        for name in ("adapter_config.json", "adapter_model.safetensors"):
            if not (adapter.path / name).is_file():
                raise FileNotFoundError(adapter.path / name)
        if self.capacity is not None and adapter.engine_id not in self.resident:
            while len(self.resident) >= self.capacity:  # vLLM's LRU: the oldest unpinned one goes
                self.evict(next(i for i in self.resident if i not in self.pinned))
        self.resident.pop(adapter.engine_id, None)  # re-adding touches it (most recently used)
        self.resident[adapter.engine_id] = adapter

    async def unload_adapter(self, engine_id: int) -> None:
        self.calls.append(("unload", engine_id))
        self.resident.pop(engine_id, None)
        self.pinned.discard(engine_id)  # vLLM drops the pin with the adapter

    async def resident_adapter_ids(self) -> set[int]:
        return set(self.resident)

    async def pin_adapter(self, engine_id: int) -> None:
        # vLLM pins only what it holds (LRUCache.pin raises ValueError otherwise).
        if engine_id not in self.resident:
            raise ValueError(f"Cannot pin key: {engine_id} not in cache.")
        self.calls.append(("pin", engine_id))
        self.pinned.add(engine_id)

    def evict(self, engine_id: int) -> None:
        """What vLLM's LRU does when it needs room: drop an unpinned adapter, unasked."""
        assert engine_id not in self.pinned, "vLLM never evicts a pinned adapter"
        self.resident.pop(engine_id, None)

    def loads(self) -> list[int]:
        return [engine_id for kind, engine_id in self.calls if kind == "load"]

    def unloads(self) -> list[int]:
        return [engine_id for kind, engine_id in self.calls if kind == "unload"]


def make_registry(
    store_root: Path,
    base_dir: Path,
    roots: list[Path],
    engine: FakeEngine | None = None,
    *,
    drain_timeout_s: float = 30.0,
    preload: int = 8,
    max_rank: int = 64,
    **limits: object,
) -> tuple[AdapterRegistry, FakeEngine]:
    engine = engine or FakeEngine()
    registry = AdapterRegistry(
        AdapterStore(store_root),
        engine,
        BaseModelShape.from_model_dir(base_dir),
        RegistryLimits(max_rank=max_rank, max_adapter_bytes=MAX_BYTES, allowed_roots=roots,
                       drain_timeout_s=drain_timeout_s, preload=preload, **limits),  # type: ignore[arg-type]
        Metrics(CollectorRegistry()),  # a private registry: no clashes between registries
        reserved_names=lambda: {BASE_MODEL_NAME},
    )
    return registry, engine


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


async def adapters_and_routes(store_root: Path, base_dir: Path, adapter_root: Path,
                              names: tuple[str, ...] = ("one",)) -> tuple[AdapterRegistry, RouteRegistry]:
    """A started adapter registry with `names` registered from `adapter_root`, and a started route
    registry on the same store (what the routing unit tests build on)."""
    from service.routing import RouteRegistry

    adapters, _ = make_registry(store_root, base_dir, [adapter_root])
    await adapters.start()
    for name in names:
        await adapters.register_path(name, str(adapter_root / name))
    routes = RouteRegistry(adapters.store, BASE_MODEL_NAME, Metrics(CollectorRegistry()))
    adapters.used_by = routes.routes_using
    await routes.start()
    return adapters, routes
