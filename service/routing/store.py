"""Routes on disk: `routes.json` beside the adapter manifest, in the same shared store.

Written atomically under the store's lock (the same `flock` adapter registrations take), so a
route and the adapters it names are checked against one consistent state across replicas, and
audited in the store's `audit.log`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from service.adapters import AdapterStore
from service.adapters.store import AuditEvent, StoreCorruptError
from service.routing.types import RouteTable


class RouteStore:
    def __init__(self, store: AdapterStore) -> None:
        self.store = store
        self.path: Path = store.root / "routes.json"

    def load(self) -> RouteTable:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return RouteTable()
        try:
            return RouteTable.model_validate_json(raw)
        except ValidationError as exc:
            raise StoreCorruptError(f"{self.path} is unreadable: {exc}") from exc

    def save(self, table: RouteTable) -> None:
        self.store.write_atomically(self.path, table.model_dump_json(indent=2))

    def mtime_ns(self) -> int:
        try:
            return self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return 0

    def audit(self, action: str, route: str, caller: str | None = None, version: int | None = None,
              source: str | None = None) -> None:
        self.store.audit(AuditEvent(action=action, route=route, version=version, caller=caller, source=source))
