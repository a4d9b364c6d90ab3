"""Load on first use: a `model` nobody registered is looked up as `<resolver-uri>/<model>/`.

The name is checked before any lookup (an invalid or reserved name never reaches the store).
Concurrent first requests for one name share one download (a per-name task); a name the store
does not have, or whose adapter was refused, is remembered for `negative_ttl_s`, so clients cannot
make the service ask the store on every request. A store failure (424) is not remembered: the
next request tries again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from service.adapters.remote.uri import join_uri, parse_adapter_uri
from service.adapters.validation import AdapterValidationError, validate_adapter_name
from service.errors import ConflictError, DependencyFailedError, NotFoundError, ServiceError

if TYPE_CHECKING:  # the store imports this package (RemoteOrigin)
    from service.adapters.store import AdapterRecord
    from service.engine import AdapterHandle

logger = logging.getLogger(__name__)
RESOLVER_CALLER = "resolver"


class UriRegistrar(Protocol):
    """What the resolver needs from the adapter registry."""

    def reserved_names(self) -> set[str]: ...

    def handle(self, name: str) -> AdapterHandle | None: ...

    async def pick_up_changes(self) -> None: ...

    async def register_uri(self, name: str, uri: str, caller: str | None = None, pinned: bool | None = None,
                           action: str = "register") -> AdapterRecord: ...


class AdapterResolver:
    def __init__(
        self,
        registry: UriRegistrar,
        base_uri: str,
        negative_ttl_s: float,
        *,
        schemes: list[str] | None = None,
        max_concurrent: int = 2,
        max_remembered: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if schemes is not None:  # a misconfigured resolver fails at start, not on the first request
            parse_adapter_uri(join_uri(base_uri, "probe"), schemes, [], [])
        self.registry = registry
        self.base_uri = base_uri
        self.negative_ttl_s = negative_ttl_s
        self.max_remembered = max_remembered
        self._clock = clock
        self._slots = asyncio.Semaphore(max_concurrent)  # distinct names still cost one download each
        self._flights: dict[str, asyncio.Task[None]] = {}
        # name -> (until, the error to repeat; None: answer "not found")
        self._negative: OrderedDict[str, tuple[float, ServiceError | None]] = OrderedDict()

    def uri_of(self, name: str) -> str:
        return join_uri(self.base_uri, name)

    async def resolve(self, name: str) -> None:
        """Try to register `name` from the resolver URI. Returns when it is registered or cannot be
        (the caller's lookup then answers 404); raises the remembered refusal or a store failure."""
        try:
            validate_adapter_name(name, self.registry.reserved_names())
        except AdapterValidationError:
            return
        remembered = self._remembered(name)
        if remembered is not None:
            if remembered[1] is not None:
                raise remembered[1]
            return
        flight = self._flights.get(name)
        if flight is None:
            flight = asyncio.get_running_loop().create_task(self._load(name))
            self._flights[name] = flight
            flight.add_done_callback(lambda _: self._flights.pop(name, None))
        # Shielded: a client that leaves does not cancel the load the others are waiting for.
        await asyncio.shield(flight)

    def _remembered(self, name: str) -> tuple[float, ServiceError | None] | None:
        entry = self._negative.get(name)
        if entry is not None and entry[0] <= self._clock():
            del self._negative[name]
            return None
        return entry

    def _remember(self, name: str, error: ServiceError | None) -> None:
        if self.negative_ttl_s <= 0:
            return
        self._negative[name] = (self._clock() + self.negative_ttl_s, error)
        self._negative.move_to_end(name)
        while len(self._negative) > self.max_remembered:
            self._negative.popitem(last=False)

    async def _load(self, name: str) -> None:
        async with self._slots:
            # Another replica sharing the store may have resolved it already: adopt, not re-download.
            await self.registry.pick_up_changes()
            if self.registry.handle(name) is not None:
                return
            try:
                await self.registry.register_uri(name, self.uri_of(name), caller=RESOLVER_CALLER, action="resolved")
            except NotFoundError:
                self._remember(name, None)
            except ConflictError:
                return  # registered meanwhile (by an admin or another replica): the lookup finds it
            except DependencyFailedError as exc:  # the store failed: not remembered, the next request retries
                logger.warning("resolving adapter %s from %s failed: %s", name, self.uri_of(name), exc.message)
                raise DependencyFailedError(f"Adapter `{name}` could not be loaded from the adapter store "
                                            f"({exc.code}); try again later.", param="model", code=exc.code) from exc
            except ServiceError as exc:  # found but refused (invalid, pickle, too large): remembered
                logger.warning("adapter %s from %s was refused: %s", name, self.uri_of(name), exc.message)
                # The store's location stays in the log: clients of /v1 are not told where it is.
                refusal = DependencyFailedError(f"Adapter `{name}` was found in the adapter store but refused "
                                                f"({exc.code}).", param="model", code=exc.code)
                self._remember(name, refusal)
                raise refusal from exc
