"""Registering from a URI and resolving unknown names on first use, with a real registry and store
on disk, a fake engine, and in-memory stand-ins for the object stores (no network, no vLLM)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from service.adapters.registry import AdapterRegistry
from service.adapters.remote import AdapterResolver
from service.adapters.store import AdapterRecord
from service.errors import DependencyFailedError, InvalidRequestError, NotFoundError
from tests.support.fake_stores import FakeStore, install, put_folder
from tests.support.registry_harness import FakeEngine, file_sha256, make_registry

pytestmark = pytest.mark.anyio



@pytest.fixture()
def registry(tmp_path: Path, tiny_model_dir: Path, adapter_root: Path) -> Iterator[tuple[AdapterRegistry, FakeEngine]]:
    built = make_registry(tmp_path / "store", tiny_model_dir, [adapter_root], uri_allow=["bucket", "org/*"])
    yield built
    built[0].replicas.close()


@pytest.fixture()
def gs(monkeypatch: pytest.MonkeyPatch, adapter_root: Path) -> type[FakeStore]:
    store = install(monkeypatch, "gs")
    for name in ("one", "two"):
        put_folder(store, f"bucket/adapters/{name}", adapter_root / name)
    put_folder(store, "bucket/adapters/pickled", adapter_root / "one", extra={"optimizer.pt": b"\x80\x04"})
    store.opened.clear()
    return store


def audit_actions(registry: AdapterRegistry) -> list[tuple[str, str | None, str | None]]:
    return [(e.action, e.adapter, e.caller) for e in registry.store.audit_events()]


async def test_register_from_a_uri_records_where_it_came_from(registry, gs, adapter_root: Path) -> None:
    reg, engine = registry
    await reg.start()
    record = await reg.register_uri("alpha", "gs://bucket/adapters/one/", caller="alice")
    weights = file_sha256(adapter_root / "one" / "adapter_model.safetensors")
    assert record.source == "gs://bucket/adapters/one/" and record.sha256 == weights
    assert record.origin is not None and record.origin.uri == "gs://bucket/adapters/one/"
    assert record.origin.files_sha256["adapter_model.safetensors"] == weights
    assert record.origin.versions["adapter_model.safetensors"] == {"generation": "7"}
    assert reg.store.load().adapters["alpha"].origin == record.origin  # kept in the manifest
    assert engine.loads() == [record.engine_id]
    assert audit_actions(reg)[-1] == ("register", "alpha", "alice")
    assert list((reg.store.staging_dir).iterdir()) == []  # the download folder is gone


@pytest.mark.parametrize(("uri", "error", "code"), [
    ("gs://bucket/adapters/none/", NotFoundError, "adapter_source_not_found"),
    ("gs://bucket/adapters/pickled/", InvalidRequestError, "pickle_weights_refused"),
    ("gs://elsewhere/adapters/one/", InvalidRequestError, "adapter_uri_not_allowed"),
    ("ftp://bucket/one/", InvalidRequestError, "adapter_uri_not_allowed"),
])
async def test_refused_uris_leave_nothing_behind(registry, gs, uri: str, error: type, code: str) -> None:
    reg, engine = registry
    await reg.start()
    with pytest.raises(error) as caught:
        await reg.register_uri("alpha", uri)
    assert (caught.value.code, caught.value.param) == (code, "uri")
    assert reg.names() == [] and engine.loads() == [] and list(reg.store.staging_dir.iterdir()) == []
    assert reg.metrics.adapter_registrations.labels("invalid")._value.get() == 1


async def test_an_unreachable_store_is_a_424(registry, gs) -> None:
    reg, _ = registry
    gs.fail_with = ConnectionError("Could not connect to the endpoint URL")
    with pytest.raises(DependencyFailedError) as caught:
        await reg.register_uri("alpha", "gs://bucket/adapters/one/")
    assert caught.value.status == 424 and "Could not connect" in caught.value.message


async def test_the_name_is_checked_before_the_store_is_asked(registry, gs) -> None:
    reg, _ = registry
    with pytest.raises(InvalidRequestError) as caught:
        await reg.register_uri("Bad Name", "gs://bucket/adapters/one/")
    assert caught.value.code == "invalid_adapter_name" and gs.opened == []


# ---------------------------------------------------------------- resolver
def resolver_for(reg: AdapterRegistry, clock: Callable[[], float] | None = None, ttl: float = 60.0) -> AdapterResolver:
    return AdapterResolver(reg, "gs://bucket/adapters", ttl, schemes=["gs"], **({"clock": clock} if clock else {}))


async def test_an_unknown_name_is_resolved_registered_and_audited(registry, gs) -> None:
    reg, engine = registry
    await reg.start()
    await resolver_for(reg).resolve("one")
    handle = reg.handle("one")
    assert handle is not None and engine.loads() == [handle.engine_id]
    assert reg.record("one").source == "gs://bucket/adapters/one/"
    assert audit_actions(reg)[-1] == ("resolved", "one", "resolver")


async def test_concurrent_first_requests_share_one_load(registry, gs) -> None:
    reg, engine = registry
    await reg.start()
    resolver = resolver_for(reg)
    await asyncio.gather(*(resolver.resolve("two") for _ in range(8)))
    assert reg.record("two").version == 1 and len(engine.loads()) == 1
    assert sorted(gs.opened) == sorted(set(gs.opened))  # every object downloaded once


async def test_a_client_leaving_does_not_cancel_the_shared_load(registry, gs) -> None:
    reg, _ = registry
    await reg.start()
    resolver = resolver_for(reg)
    first = asyncio.ensure_future(resolver.resolve("one"))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(resolver.resolve("one"))
    first.cancel()
    await second
    assert reg.handle("one") is not None


async def test_missing_names_are_remembered_for_the_ttl(registry, gs) -> None:
    reg, _ = registry
    now = [1000.0]
    resolver = resolver_for(reg, clock=lambda: now[0], ttl=30.0)
    calls: list[str] = []
    real = reg.register_uri

    async def counted(name: str, uri: str, **kwargs: object) -> AdapterRecord:
        calls.append(name)
        return await real(name, uri, **kwargs)  # type: ignore[arg-type]

    reg.register_uri = counted  # type: ignore[method-assign]
    await resolver.resolve("ghost")
    await resolver.resolve("ghost")
    now[0] += 29.0
    await resolver.resolve("ghost")
    assert calls == ["ghost"] and reg.handle("ghost") is None
    now[0] += 2.0  # past the TTL: the store is asked again
    await resolver.resolve("ghost")
    assert calls == ["ghost", "ghost"]


async def test_refused_adapters_are_remembered_and_store_failures_are_not(registry, gs) -> None:
    reg, _ = registry
    resolver = resolver_for(reg)
    for _ in range(2):
        with pytest.raises(DependencyFailedError) as caught:
            await resolver.resolve("pickled")
        assert (caught.value.status, caught.value.code, caught.value.param) == (424, "pickle_weights_refused", "model")
        assert "bucket" not in caught.value.message  # /v1 clients are not told where the store is
    assert gs.opened == []
    gs.fail_with = ConnectionError("endpoint down")
    with pytest.raises(DependencyFailedError):
        await resolver.resolve("one")
    gs.fail_with = None
    await resolver.resolve("one")  # the failure was not remembered
    assert reg.handle("one") is not None


async def test_invalid_and_reserved_names_never_reach_the_store(registry, gs) -> None:
    reg, _ = registry
    resolver = resolver_for(reg)
    for name in ("../etc", "UPPER", "tiny-llama", "a" * 65, "x/y", ""):
        await resolver.resolve(name)
    assert gs.opened == [] and reg.names() == []


def test_a_resolver_uri_with_a_disallowed_scheme_fails_at_start(registry) -> None:
    reg, _ = registry
    with pytest.raises(Exception) as caught:
        AdapterResolver(reg, "ftp://host/adapters", 60.0, schemes=["s3", "gs"])
    assert getattr(caught.value, "code", None) == "adapter_uri_not_allowed"


async def test_a_name_another_replica_resolved_is_adopted_not_downloaded_again(registry, gs, tmp_path, tiny_model_dir,
                                                                             adapter_root) -> None:
    reg, _ = registry
    await reg.start()
    other, _ = make_registry(tmp_path / "store", tiny_model_dir, [adapter_root], uri_allow=["bucket"])
    try:
        await other.start()
        await resolver_for(reg).resolve("one")
        gs.opened.clear()
        await resolver_for(other).resolve("one")
        assert gs.opened == [] and other.record("one").version == 1
        assert other.handle("one") is not None  # the engine loads it on the first request, as any adopted one
    finally:
        other.replicas.close()
