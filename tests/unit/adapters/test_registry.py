"""The adapter registry's promises, with a fake engine and a real store on disk (no vLLM).

Nothing registered is ever lost, a swap is atomic and retires the old version only after its
last request, removal drains, failures leave nothing behind, and replicas sharing one store
agree on versions and engine ids.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import service.adapters.store as adapter_store
from service.adapters.store import AdapterRecord, AdapterStore, StoreCorruptError
from service.errors import ConflictError, InvalidRequestError, NotFoundError
from service.adapters.registry import AdapterRegistry
from service.testing.adapters import tar_gz
from tests.support.registry_harness import BASE_MODEL_NAME, FakeEngine, file_sha256, make_registry
from tests.support.waiting import eventually

pytestmark = pytest.mark.anyio

Replica = Callable[..., tuple[AdapterRegistry, FakeEngine]]



@pytest.fixture()
def store_root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture()
def src(tmp_path: Path, adapter_root: Path) -> Path:
    """A per-test allowed root holding a mutable copy of adapter `one`."""
    folder = tmp_path / "src"
    folder.mkdir()
    shutil.copytree(adapter_root / "one", folder / "one")
    return folder


@pytest.fixture()
def replica(store_root: Path, tiny_model_dir: Path, adapter_root: Path, src: Path) -> Iterator[Replica]:
    """Builds a registry (one replica) on the test's store; call it inside the test's loop."""
    built: list[AdapterRegistry] = []

    def build(**options: object) -> tuple[AdapterRegistry, FakeEngine]:
        registry, engine = make_registry(
            store_root, tiny_model_dir, [adapter_root, src], **options  # type: ignore[arg-type]
        )
        built.append(registry)
        return registry, engine

    yield build
    for registry in built:
        registry.replicas.close()  # its serving marker and lock file



def manifest_json(store_root: Path) -> dict:
    return json.loads((store_root / "manifest.json").read_text())


def store_entries(store_root: Path) -> tuple[list[str], list[str]]:
    """(everything under adapters/, everything under .staging/) as store-relative paths."""
    def listing(folder: Path) -> list[str]:
        return sorted(str(p.relative_to(store_root)) for p in folder.rglob("*")) if folder.exists() else []

    return listing(store_root / "adapters"), listing(store_root / ".staging")


def successes(registry: AdapterRegistry, result: str = "success") -> float:
    return registry.metrics.adapter_registrations.labels(result)._value.get()


# ------------------------------------------------------------------------ register
async def test_register_records_fields(replica: Replica, adapter_root: Path, store_root: Path) -> None:
    registry, engine = replica()
    await registry.start()
    record = await registry.register_path("alpha", str(adapter_root / "one"), caller="alice")

    assert (record.name, record.version, record.engine_id) == ("alpha", 1, 1)
    assert record.path == "adapters/alpha/v1"
    source_sha = file_sha256(adapter_root / "one" / "adapter_model.safetensors")
    stored = store_root / record.path
    assert record.sha256 == source_sha == file_sha256(stored / "adapter_model.safetensors")
    assert sorted(p.name for p in stored.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    assert (record.rank, record.alpha, record.target_modules) == (8, 16.0, ["q_proj", "v_proj"])
    # Only the two adapter files are copied (PEFT's README.md is not), and the copy is measured.
    assert record.size_bytes == sum(p.stat().st_size for p in stored.iterdir())
    assert record.source == str((adapter_root / "one").resolve())

    manifest = manifest_json(store_root)
    assert AdapterRecord.model_validate(manifest["adapters"]["alpha"]) == record
    assert manifest["next_engine_id"] == 2 and manifest["last_versions"] == {"alpha": 1}
    handle = registry.handle("alpha")
    assert handle is not None and (handle.engine_id, handle.version, handle.path) == (1, 1, stored)
    assert engine.loads() == [1] and engine.unloads() == []
    [status] = await registry.statuses()
    assert status.resident and status.in_flight == 0
    assert successes(registry) == 1
    assert store_entries(store_root)[1] == []  # nothing left in staging


async def test_reregister_swaps_and_unloads_old_only_after_lease_released(
    replica: Replica, adapter_root: Path, store_root: Path
) -> None:
    registry, engine = replica()
    await registry.start()
    first = await registry.register_path("alpha", str(adapter_root / "one"))
    old_handle = registry.handle("alpha")
    assert old_handle is not None
    lease = registry.lease(old_handle)  # a request still generating with v1

    second = await registry.register_path("alpha", str(adapter_root / "two"))
    assert (second.version, second.engine_id) == (2, 2) and second.sha256 != first.sha256
    new_handle = registry.handle("alpha")
    assert new_handle is not None and new_handle.version == 2  # new requests get v2 at once
    assert manifest_json(store_root)["adapters"]["alpha"]["version"] == 2

    await asyncio.sleep(0.2)
    assert engine.unloads() == [] and first.engine_id in engine.resident
    assert (store_root / first.path).is_dir()

    lease.release()
    await eventually(lambda: engine.unloads() == [first.engine_id])
    await eventually(lambda: not (store_root / first.path).exists())
    assert (store_root / second.path / "adapter_model.safetensors").is_file()
    lease.release()  # idempotent: a second release must not count down another request
    assert registry._in_flight == {}
    assert engine.loads() == [1, 2]


async def test_lease_on_new_version_does_not_delay_old_retirement(replica: Replica, adapter_root: Path) -> None:
    registry, engine = replica()
    await registry.start()
    first = await registry.register_path("alpha", str(adapter_root / "one"))
    await registry.register_path("alpha", str(adapter_root / "two"))
    handle = registry.handle("alpha")
    assert handle is not None
    lease = registry.lease(handle)  # v2 busy: irrelevant to v1
    await eventually(lambda: engine.unloads() == [first.engine_id])
    assert (await registry.status("alpha")).in_flight == 1
    lease.release()


# ------------------------------------------------------------------------- remove
async def test_remove_waits_for_in_flight_leases(replica: Replica, adapter_root: Path, store_root: Path) -> None:
    registry, engine = replica()
    await registry.start()
    record = await registry.register_path("alpha", str(adapter_root / "one"))
    handle = registry.handle("alpha")
    assert handle is not None
    lease = registry.lease(handle)

    removal = asyncio.create_task(registry.remove("alpha", caller="bob"))
    await asyncio.sleep(0.3)
    assert not removal.done()
    assert registry.handle("alpha") is None and registry.names() == []  # new requests: 404 now
    assert "alpha" not in manifest_json(store_root)["adapters"]
    assert engine.unloads() == [] and (store_root / record.path).is_dir()

    lease.release()
    removed = await asyncio.wait_for(removal, 5)
    assert removed == record
    assert engine.unloads() == [record.engine_id]
    assert not (store_root / "adapters" / "alpha").exists()
    with pytest.raises(NotFoundError):
        await registry.remove("alpha")


async def test_remove_honours_drain_timeout(replica: Replica, adapter_root: Path, store_root: Path) -> None:
    registry, engine = replica(drain_timeout_s=0.3)
    await registry.start()
    record = await registry.register_path("alpha", str(adapter_root / "one"))
    handle = registry.handle("alpha")
    assert handle is not None
    lease = registry.lease(handle)  # a request that never finishes

    started = time.monotonic()
    await asyncio.wait_for(registry.remove("alpha"), 5)
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 3, elapsed
    assert engine.unloads() == [record.engine_id]  # unloaded anyway after the timeout
    assert not (store_root / record.path).exists()
    lease.release()  # the straggler finishing later is harmless
    await asyncio.sleep(0)


async def test_removed_and_readded_name_continues_version_sequence(
    replica: Replica, adapter_root: Path, store_root: Path
) -> None:
    registry, _ = replica()
    await registry.start()
    records = [await registry.register_path("alpha", str(adapter_root / n)) for n in ("one", "two")]
    await registry.remove("alpha")
    records.append(await registry.register_path("alpha", str(adapter_root / "one")))
    assert [r.version for r in records] == [1, 2, 3]
    assert len({r.engine_id for r in records}) == 3
    assert manifest_json(store_root)["last_versions"] == {"alpha": 3}
    # A fresh replica (a restart) continues the sequence too.
    restarted, _ = replica()
    await restarted.start()
    await restarted.remove("alpha")
    again = await restarted.register_path("alpha", str(adapter_root / "two"))
    assert again.version == 4 and again.engine_id not in {r.engine_id for r in records}


# -------------------------------------------------------------------- failures
async def test_failed_engine_load_leaves_no_entry_and_no_folder(
    replica: Replica, adapter_root: Path, store_root: Path
) -> None:
    registry, engine = replica()
    await registry.start()
    engine.fail_loads = 1
    with pytest.raises(InvalidRequestError) as info:
        await registry.register_path("alpha", str(adapter_root / "one"))
    assert info.value.code == "adapter_load_failed"
    assert registry.handle("alpha") is None
    assert manifest_json(store_root)["adapters"] == {}
    assert store_entries(store_root) == ([], [])
    assert successes(registry, "invalid") == 1 and successes(registry) == 0

    # The claimed numbers are never reused: the next attempt gets fresh ones.
    record = await registry.register_path("alpha", str(adapter_root / "one"))
    assert (record.version, record.engine_id) == (2, 2)


async def test_failed_load_of_new_version_keeps_the_current_one(
    replica: Replica, adapter_root: Path, store_root: Path
) -> None:
    registry, engine = replica()
    await registry.start()
    first = await registry.register_path("alpha", str(adapter_root / "one"))
    engine.fail_loads = 1
    with pytest.raises(InvalidRequestError):
        await registry.register_path("alpha", str(adapter_root / "two"))
    handle = registry.handle("alpha")
    assert handle is not None and handle.engine_id == first.engine_id
    await asyncio.sleep(0.1)
    assert engine.unloads() == []
    assert manifest_json(store_root)["adapters"]["alpha"]["version"] == 1
    assert store_entries(store_root)[0] == [
        "adapters/alpha", "adapters/alpha/v1",
        "adapters/alpha/v1/adapter_config.json", "adapters/alpha/v1/adapter_model.safetensors",
    ]


def _edit_config(folder: Path, **changes: object) -> None:
    path = folder / "adapter_config.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))


BAD_ADAPTERS: dict[str, Callable[[Path], None]] = {
    "bad-json": lambda f: (f / "adapter_config.json").write_text("{nope"),
    "rank-too-big": lambda f: _edit_config(f, r=128),
    "not-lora": lambda f: _edit_config(f, peft_type="PREFIX_TUNING"),
    "unknown-module": lambda f: _edit_config(f, target_modules=["foo_proj"]),
    "pickle": lambda f: (f / "adapter_model.bin").write_bytes(b"\x80\x04K\x01."),
    "no-weights": lambda f: (f / "adapter_model.safetensors").unlink(),
    "truncated": lambda f: (f / "adapter_model.safetensors").write_bytes(
        (f / "adapter_model.safetensors").read_bytes()[:300]),
    "garbage": lambda f: (f / "adapter_model.safetensors").write_bytes(b"\xff" * 64),
}


@pytest.mark.parametrize("defect", sorted(BAD_ADAPTERS))
async def test_invalid_adapter_leaves_nothing_behind(
    defect: str, replica: Replica, src: Path, store_root: Path
) -> None:
    BAD_ADAPTERS[defect](src / "one")
    registry, engine = replica()
    await registry.start()
    with pytest.raises(InvalidRequestError):
        await registry.register_path("alpha", str(src / "one"))
    assert engine.calls == [] and registry.names() == []
    assert not (store_root / "manifest.json").exists()  # not even a version was claimed
    assert store_entries(store_root) == ([], [])
    assert successes(registry, "invalid") == 1


async def test_bad_paths_and_uploads_leave_nothing_behind(
    replica: Replica, src: Path, store_root: Path, tmp_path: Path
) -> None:
    registry, engine = replica()
    await registry.start()
    with pytest.raises(NotFoundError):
        await registry.register_path("alpha", str(src / "missing"))
    with pytest.raises(InvalidRequestError):
        await registry.register_path("alpha", str(tmp_path))  # outside the allowed roots
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as archive:
        archive.add(src / "one" / "adapter_config.json", arcname="../escape.json")
    with evil.open("rb") as body, pytest.raises(InvalidRequestError):
        await registry.register_archive("alpha", body)
    BAD_ADAPTERS["garbage"](src / "one")
    with (tmp_path / "bad.tar.gz").open("wb") as handle:
        handle.write(tar_gz(src / "one"))
    with (tmp_path / "bad.tar.gz").open("rb") as body, pytest.raises(InvalidRequestError):
        await registry.register_archive("alpha", body)
    assert engine.calls == [] and store_entries(store_root) == ([], [])
    assert not (tmp_path / "escape.json").exists()


async def test_a_shipped_triage_policy_is_kept_with_the_version(replica: Replica, adapter_root: Path,
                                                                store_root: Path, tmp_path: Path) -> None:
    registry, _ = replica()
    await registry.start()
    folder = Path(shutil.copytree(adapter_root / "one", adapter_root / "with-policy"))  # the fixture's stays as it is
    (folder / "triage_policy.json").write_text(json.dumps({"urgent_threshold": 0.3}))
    record = await registry.register_path("alpha", str(folder), caller="alice")
    assert json.loads((store_root / record.path / "triage_policy.json").read_text()) == {"urgent_threshold": 0.3}
    archive = tmp_path / "one.tar.gz"
    archive.write_bytes(tar_gz(folder))
    with archive.open("rb") as body:
        uploaded = await registry.register_archive("uploaded", body, caller="carol")
    assert (store_root / uploaded.path / "triage_policy.json").is_file()
    (folder / "triage_policy.json").write_text(json.dumps({"urgent_threshold": 3}))
    with pytest.raises(InvalidRequestError, match="urgent_threshold"):
        await registry.register_path("beta", str(folder), caller="alice")
    shutil.rmtree(folder)


async def test_upload_registers_and_cleans_its_upload_folder(
    replica: Replica, adapter_root: Path, store_root: Path, tmp_path: Path
) -> None:
    registry, _ = replica()
    await registry.start()
    archive = tmp_path / "two.tar.gz"
    archive.write_bytes(tar_gz(adapter_root / "two"))
    with archive.open("rb") as body:
        record = await registry.register_archive("uploaded", body, caller="carol")
    assert record.source == "upload" and record.sha256 == file_sha256(adapter_root / "two" / "adapter_model.safetensors")
    assert store_entries(store_root)[1] == []


async def test_source_changing_during_copy_is_refused_and_cleaned(
    replica: Replica, src: Path, store_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy is inspected again: a source rewritten mid-copy cannot slip through."""
    real_copy = adapter_store._copy_file_synced

    def copy_then_tamper(source: Path, target: Path) -> None:
        real_copy(source, target)
        if target.name == "adapter_model.safetensors":
            with target.open("r+b") as handle:  # the bytes the copy saw were not the checked ones
                handle.truncate(200)

    monkeypatch.setattr(adapter_store, "_copy_file_synced", copy_then_tamper)
    registry, engine = replica()
    await registry.start()
    with pytest.raises(InvalidRequestError):
        await registry.register_path("alpha", str(src / "one"))
    assert engine.calls == [] and store_entries(store_root) == ([], [])


async def test_copy_error_leaves_no_staging_folder(
    replica: Replica, src: Path, store_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A source file vanishing (or the disk filling) mid-copy must not strand a staging folder."""
    real_copy = adapter_store._copy_file_synced

    def copy_or_fail(source: Path, target: Path) -> None:
        if target.name == "adapter_model.safetensors":
            raise FileNotFoundError(source)
        real_copy(source, target)

    monkeypatch.setattr(adapter_store, "_copy_file_synced", copy_or_fail)
    registry, engine = replica()
    await registry.start()
    with pytest.raises(OSError):
        await registry.register_path("alpha", str(src / "one"))
    assert engine.calls == [] and store_entries(store_root) == ([], [])


@pytest.mark.parametrize("name", [BASE_MODEL_NAME, "Bad Name", "-x", "a/b", "x" * 65])
async def test_reserved_and_malformed_names_are_refused(
    name: str, replica: Replica, adapter_root: Path, store_root: Path
) -> None:
    registry, engine = replica()
    await registry.start()
    with pytest.raises(InvalidRequestError) as info:
        await registry.register_path(name, str(adapter_root / "one"))
    assert info.value.code == "invalid_adapter_name" and info.value.param == "name"
    assert engine.calls == [] and store_entries(store_root) == ([], [])


# -------------------------------------------------------------------------- audit
async def test_audit_log_lines(replica: Replica, adapter_root: Path, store_root: Path) -> None:
    registry, _ = replica()
    await registry.start()
    first = await registry.register_path("alpha", str(adapter_root / "one"), caller="alice")
    second = await registry.register_path("alpha", str(adapter_root / "two"))
    await registry.remove("alpha", caller="bob")
    with pytest.raises(InvalidRequestError):  # refused attempts are not audited as changes
        await registry.register_path("Bad", str(adapter_root / "one"))

    lines = [json.loads(line) for line in (store_root / "audit.log").read_text().splitlines()]
    assert [(e["action"], e["adapter"], e["version"]) for e in lines] == [
        ("register", "alpha", 1), ("register", "alpha", 2), ("remove", "alpha", 2),
    ]
    assert lines[0]["caller"] == "alice" and lines[0]["sha256"] == first.sha256
    assert lines[0]["source"] == str((adapter_root / "one").resolve())
    assert lines[1]["sha256"] == second.sha256 and "caller" not in lines[1]
    assert lines[2]["caller"] == "bob"
    assert all("time" in e for e in lines)
    assert [e.action for e in registry.store.audit_events()] == ["register", "register", "remove"]


# ----------------------------------------------------------------------- start-up
async def test_start_reconciles_leftovers_and_keeps_registrations(
    replica: Replica, adapter_root: Path, store_root: Path
) -> None:
    writer, _ = replica()
    await writer.start()
    kept = [await writer.register_path(n, str(adapter_root / s)) for n, s in (("alpha", "one"), ("beta", "two"))]

    # What interrupted writes leave behind.
    (store_root / ".staging" / "0123abcd").mkdir()
    (store_root / ".staging" / "0123abcd" / "adapter_config.json").write_text("{}")
    (store_root / ".staging" / "upload-feed").mkdir()
    (store_root / ".staging" / "stray-file").write_text("x")
    (store_root / ".manifest.deadbeef.tmp").write_text("{")
    shutil.copytree(adapter_root / "three", store_root / "adapters" / "alpha" / "v9")  # unnamed version
    shutil.copytree(adapter_root / "three", store_root / "adapters" / "ghost" / "v1")  # unnamed name
    (store_root / "adapters" / "empty").mkdir()  # a name folder whose version never arrived
    manifest_before = (store_root / "manifest.json").read_bytes()

    registry, engine = replica(preload=1)
    await registry.start()
    assert registry.names() == ["alpha", "beta"]
    assert [registry.record(r.name) for r in kept] == kept
    assert (store_root / "manifest.json").read_bytes() == manifest_before  # start-up never rewrites it
    folders, staging = store_entries(store_root)
    assert staging == []
    assert [p for p in folders if p.count("/") == 2] == sorted(r.path for r in kept)
    assert [p for p in folders if p.count("/") == 1] == ["adapters/alpha", "adapters/beta"]
    assert not list(store_root.glob(".manifest.*.tmp"))
    for record in kept:
        assert file_sha256(store_root / record.path / "adapter_model.safetensors") == record.sha256
    assert engine.loads() == [kept[0].engine_id]  # preload=1: the rest load on first use

    everything, engine_all = replica(preload=8)
    await everything.start()
    assert sorted(engine_all.loads()) == sorted(r.engine_id for r in kept)


async def test_start_survives_a_preload_failure(replica: Replica, adapter_root: Path) -> None:
    writer, _ = replica()
    await writer.start()
    await writer.register_path("alpha", str(adapter_root / "one"))
    registry, engine = replica()
    engine.fail_loads = 1
    await registry.start()
    assert registry.names() == ["alpha"]  # still registered: it loads on demand later


@pytest.mark.parametrize("content", [b"{not json", b"", b"\xff\xfe\x00garbage",
                                     b'{"adapters": {"x": {"name": 1}}}', b"[]"])
async def test_corrupt_manifest_raises_and_is_not_overwritten(
    content: bytes, replica: Replica, adapter_root: Path, store_root: Path
) -> None:
    writer, _ = replica()
    await writer.start()
    record = await writer.register_path("alpha", str(adapter_root / "one"))
    (store_root / "manifest.json").write_bytes(content)

    registry, engine = replica()
    with pytest.raises(StoreCorruptError):
        await registry.start()
    with pytest.raises(StoreCorruptError):  # a registration must not "repair" it either
        await registry.register_path("beta", str(adapter_root / "two"))
    assert (store_root / "manifest.json").read_bytes() == content
    assert (store_root / record.path / "adapter_model.safetensors").is_file()  # no clean-up ran
    assert engine.calls == []


# ----------------------------------------------------------------------- replicas
async def test_two_replicas_share_one_store(replica: Replica, adapter_root: Path, store_root: Path) -> None:
    a, engine_a = replica()
    b, engine_b = replica()
    await a.start()
    await b.start()

    first = await a.register_path("alpha", str(adapter_root / "one"))
    assert b.handle("alpha") is None
    await b.refresh()
    handle_b = b.handle("alpha")
    assert handle_b is not None and (handle_b.version, handle_b.engine_id) == (1, first.engine_id)
    assert handle_b.path == store_root / first.path
    lease_b = b.lease(handle_b)  # B is serving v1 when A swaps

    second = await a.register_path("alpha", str(adapter_root / "two"))
    await b.refresh()
    new_b = b.handle("alpha")
    assert new_b is not None and (new_b.version, new_b.engine_id) == (2, second.engine_id)
    await asyncio.sleep(0.2)
    assert engine_b.unloads() == []  # B's own request still holds v1
    lease_b.release()
    await eventually(lambda: engine_b.unloads() == [first.engine_id])
    await eventually(lambda: not (store_root / first.path).exists())  # B, the last replica serving it, deletes it

    await b.remove("alpha")
    await a.refresh()
    assert a.handle("alpha") is None
    await eventually(lambda: second.engine_id in engine_a.unloads())
    await b.refresh()
    assert (await a.statuses()) == (await b.statuses()) == []


async def test_replica_sees_other_changes_after_its_own_write(replica: Replica, adapter_root: Path) -> None:
    """A replica's own registration must not hide another replica's earlier change from it."""
    a, _ = replica()
    b, _ = replica()
    await a.start()
    await b.start()
    await b.register_path("from-b", str(adapter_root / "one"))
    await a.register_path("from-a", str(adapter_root / "two"))  # before A's next refresh
    await a.refresh()
    assert a.names() == ["from-a", "from-b"]
    await b.remove("from-b")
    await a.remove("from-a")
    await a.refresh()
    assert a.names() == []


async def test_replica_ids_and_versions_never_collide(replica: Replica, adapter_root: Path, store_root: Path) -> None:
    a, _ = replica()
    b, _ = replica()
    await a.start()
    await b.start()
    sources = ("one", "two", "three")
    jobs = [
        (registry, name, sources[i % 3])
        for i in range(4)
        for registry, name in ((a, "shared"), (b, "shared"), (a, f"a-{i}"), (b, f"b-{i}"))
    ]
    results = await asyncio.gather(*(r.register_path(n, str(adapter_root / s)) for r, n, s in jobs),
                                   return_exceptions=True)
    # Racing registrations of one name may supersede each other (409); nothing else may fail.
    records = [r for r in results if isinstance(r, AdapterRecord)]
    assert all(isinstance(r, ConflictError) for r in results if not isinstance(r, AdapterRecord)), results
    assert len([r for r in records if r.name != "shared"]) == 8

    engine_ids = [r.engine_id for r in records]
    assert len(set(engine_ids)) == len(engine_ids)
    shared = [r.version for r in records if r.name == "shared"]
    assert len(set(shared)) == len(shared) and 8 in shared
    await a.refresh()
    await b.refresh()
    manifest = manifest_json(store_root)
    assert manifest["next_engine_id"] == len(jobs) + 1  # every attempt claimed its own id
    assert manifest["adapters"]["shared"]["version"] == manifest["last_versions"]["shared"] == 8
    assert a.names() == b.names() == sorted(manifest["adapters"])
    assert all(a.record(n) == b.record(n) for n in a.names())
    # Every published version's folder exists; retired ones are deleted once drained.
    for name in a.names():
        assert (store_root / a.record(name).path / "adapter_model.safetensors").is_file()


async def test_slower_older_registration_never_replaces_a_newer_version(
    replica: Replica, adapter_root: Path, store_root: Path
) -> None:
    """A reserves v1 and loads slowly; B reserves v2 and publishes first: v2 must stay current."""
    a, engine_a = replica()
    b, _ = replica()
    await a.start()
    await b.start()
    engine_a.load_gate = asyncio.Event()
    slow = asyncio.create_task(a.register_path("alpha", str(adapter_root / "one")))
    await asyncio.wait_for(engine_a.load_started.wait(), 10)
    fast = await b.register_path("alpha", str(adapter_root / "two"))
    assert fast.version == 2
    engine_a.load_gate.set()
    with pytest.raises(ConflictError) as info:
        await asyncio.wait_for(slow, 10)
    assert info.value.status == 409 and info.value.code == "adapter_superseded"

    assert manifest_json(store_root)["adapters"]["alpha"]["version"] == 2
    await a.refresh()
    handle = a.handle("alpha")
    assert handle is not None and handle.version == 2
    assert 1 in engine_a.unloads()  # the superseded version does not linger in A's engine
    assert store_entries(store_root)[0] == [
        "adapters/alpha", "adapters/alpha/v2",
        "adapters/alpha/v2/adapter_config.json", "adapters/alpha/v2/adapter_model.safetensors",
    ]


@pytest.mark.parametrize("phase", ["staging", "engine-load"])
async def test_replica_starting_mid_registration_keeps_the_other_writers_files(
    phase: str, replica: Replica, adapter_root: Path, store_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replica B (re)starting must not clean away files replica A is still registering."""
    a, engine_a = replica()
    await a.start()
    staged, proceed = threading.Event(), threading.Event()
    if phase == "staging":
        real_stage = AdapterStore.stage

        def slow_stage(self: AdapterStore, source: Path) -> Path:
            folder = real_stage(self, source)
            staged.set()
            proceed.wait(10)
            return folder

        monkeypatch.setattr(AdapterStore, "stage", slow_stage)
    else:
        engine_a.load_gate = asyncio.Event()
    registering = asyncio.create_task(a.register_path("alpha", str(adapter_root / "one")))
    if phase == "staging":
        await asyncio.to_thread(staged.wait, 10)
    else:
        await asyncio.wait_for(engine_a.load_started.wait(), 10)

    b, _ = replica()
    await b.start()

    proceed.set()
    if engine_a.load_gate is not None:
        engine_a.load_gate.set()
    record = await asyncio.wait_for(registering, 10)
    assert file_sha256(store_root / record.path / "adapter_model.safetensors") == record.sha256
    await b.refresh()
    assert b.handle("alpha") is not None
    # A later start with nobody registering still finds it complete, and can load it.
    c, engine_c = replica()
    await c.start()
    assert c.names() == ["alpha"] and engine_c.loads() == [record.engine_id]
