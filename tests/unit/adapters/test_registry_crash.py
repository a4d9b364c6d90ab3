"""Crash safety of the adapter store, by fault injection.

A child process (tests/support/crash_register.py) registers, re-registers or removes an adapter
and hard-exits (os._exit, like kill -9) at one injected point. The parent then opens the store
with a fresh registry, as a restarted service would, and checks that nothing registered was lost
and nothing half-made survived.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from service.adapters.store import AdapterRecord, AdapterStore, Manifest
from tests.support.crash_register import CRASH_EXIT
from tests.support.registry_harness import file_sha256, make_registry

REPO_ROOT = Path(__file__).resolve().parents[3]

# (fault, outcome): outcome is what the crash must leave of the target adapter -
# "old" (as before the operation), "new" (the operation's result, complete) or "done" (finished).
REGISTER_NEW = [
    ("store.stage:before", "old"),
    ("store.stage:after", "old"),
    ("copy:after:1", "old"),  # config copied, weights not yet
    ("copy:partial:2", "old"),  # weights half copied
    ("fsync_dir:before:1", "old"),
    ("store.commit:before", "old"),
    ("os.rename:before", "old"),
    ("os.rename:after", "old"),  # version folder in place, not yet fsynced or claimed
    ("store.commit:after", "old"),
    ("store.save:before:1", "old"),  # the reservation (version + engine id)
    ("os.replace:before:1", "old"),  # its temp file written, not renamed
    ("os.replace:after:1", "old"),
    ("store.save:after:1", "old"),
    ("engine.load:before", "old"),
    ("engine.load:after", "old"),  # loaded, not yet named in the manifest
    ("registry.publish:before", "old"),
    ("store.save:before:2", "old"),  # the publication
    ("os.replace:before:2", "old"),
    ("os.replace:after:2", "new"),  # renamed, directory not yet fsynced
    ("store.save:after:2", "new"),
    ("store.audit:before", "new"),
    ("store.audit:after", "new"),
    ("store.save:before:99", "done"),  # never reached: the harness itself works
]
REPLACE = [
    ("store.stage:after", "old"),
    ("store.commit:after", "old"),
    ("store.save:after:1", "old"),
    ("engine.load:after", "old"),
    ("os.replace:before:2", "old"),
    ("os.replace:after:2", "new"),
    ("store.audit:after", "new"),
    ("engine.unload:before", "new"),  # retiring v1
    ("store.delete_folder:before", "new"),
    ("store.delete_folder:partial", "new"),  # v1's folder half deleted
]
REMOVE = [
    ("store.save:before", "old"),
    ("os.replace:before", "old"),
    ("os.replace:after", "new"),
    ("store.audit:before", "new"),
    ("engine.unload:before", "new"),
    ("store.delete_folder:partial", "new"),
]
SCENARIOS = (
    [pytest.param("register", "fresh", fault, outcome, id=f"new-{fault}") for fault, outcome in REGISTER_NEW]
    + [pytest.param("register", "victim", fault, outcome, id=f"replace-{fault}") for fault, outcome in REPLACE]
    + [pytest.param("remove", "victim", fault, outcome, id=f"remove-{fault}") for fault, outcome in REMOVE]
)


def _before_crash(store: Path, base: Path, root: Path) -> dict[str, AdapterRecord]:
    """The registrations that must survive: `keeper` (untouched) and `victim` (the operation's target)."""
    async def register() -> dict[str, AdapterRecord]:
        registry, _ = make_registry(store, base, [root])
        await registry.start()
        records = {
            "keeper": await registry.register_path("keeper", str(root / "one")),
            "victim": await registry.register_path("victim", str(root / "two")),
        }
        registry.close()  # a finished run: its serving marker must not keep files of the child's run
        return records

    return asyncio.run(register())


def _assert_complete(store: Path, record: AdapterRecord, source: Path) -> None:
    folder = store / record.path
    assert sorted(p.name for p in folder.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    assert file_sha256(folder / "adapter_model.safetensors") == record.sha256
    assert record.sha256 == file_sha256(source / "adapter_model.safetensors")
    assert (folder / "adapter_config.json").read_bytes() == (source / "adapter_config.json").read_bytes()


@pytest.mark.parametrize(("op", "name", "fault", "outcome"), SCENARIOS)
def test_crash_leaves_a_consistent_store(
    op: str, name: str, fault: str, outcome: str, tmp_path: Path, tiny_model_dir: Path, adapter_root: Path
) -> None:
    store = tmp_path / "store"
    before = _before_crash(store, tiny_model_dir, adapter_root)
    ids_before = AdapterStore(store).load().next_engine_id

    child = subprocess.run(
        [sys.executable, "-m", "tests.support.crash_register", "--store", str(store), "--base", str(tiny_model_dir),
         "--root", str(adapter_root), "--op", op, "--name", name, "--source", str(adapter_root / "three"),
         "--fault", fault],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )
    expected_exit = 0 if outcome == "done" else CRASH_EXIT
    assert child.returncode == expected_exit, f"fault not hit as expected:\n{child.stdout}\n{child.stderr}"

    # The restarted service: the manifest parses and start-up reconciles.
    manifest = AdapterStore(store).load()
    asyncio.run(_restart_and_check(store, tiny_model_dir, adapter_root, manifest, before, ids_before,
                                   op, name, new=outcome in ("new", "done")))


async def _restart_and_check(
    store: Path, base: Path, root: Path, manifest: Manifest, before: dict[str, AdapterRecord], ids_before: int,
    op: str, name: str, new: bool,
) -> None:
    registry, engine = make_registry(store, base, [root])
    await registry.start()

    assert registry.record("keeper") == before["keeper"]
    _assert_complete(store, before["keeper"], root / "one")
    if op == "register" and name == "fresh":
        if new:
            record = registry.record("fresh")
            assert (record.version, record.engine_id) == (1, ids_before)
            _assert_complete(store, record, root / "three")
        else:
            assert "fresh" not in registry.names()
    elif op == "register":
        record = registry.record("victim")
        if new:
            assert (record.version, record.engine_id) == (2, ids_before)
            _assert_complete(store, record, root / "three")
        else:
            assert record == before["victim"]
            _assert_complete(store, record, root / "two")
    elif new:
        assert "victim" not in registry.names()
    else:
        assert registry.record("victim") == before["victim"]
        _assert_complete(store, before["victim"], root / "two")
    assert sorted(manifest.adapters) == registry.names()

    # Nothing half-made is left: no staging, no temp manifests, no folder the manifest does not name.
    assert list((store / ".staging").iterdir()) == []
    assert list(store.glob(".manifest.*.tmp")) == []
    named = sorted(r.path for r in manifest.adapters.values())
    assert sorted(str(p.relative_to(store)) for p in (store / "adapters").glob("*/*")) == named
    assert sorted(p.name for p in (store / "adapters").iterdir()) == sorted(manifest.adapters)
    # Every current adapter loads (the fake engine checks its files), as the preload did.
    assert set(engine.resident) == {r.engine_id for r in manifest.adapters.values()}
    registry.store.audit_events()  # a torn last audit line must not break reading the log

    # The store stays usable: a new registration gets numbers nobody had before the crash.
    after = await registry.register_path("after", str(root / "one"))
    assert after.version == 1 and after.engine_id >= ids_before
    assert after.engine_id not in {r.engine_id for r in manifest.adapters.values()}
    registry.close()
