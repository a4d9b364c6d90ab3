"""The adapter registry across restarts of the real service: graceful (SIGTERM) and kill -9.

Each test runs its own service processes on its own store (not the session `service`), so a
restart sees exactly the store the previous process left.
"""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from pathlib import Path

import httpx

from service.adapters.store import AdapterStore
from service.testing.adapters import ALL_MODULES, make_peft_adapter
from service.testing.process import ServiceProcess
from tests.integration.conftest import service_env
from tests.support.registry_harness import file_sha256

PROMPT = [{"role": "user", "content": "Name three colors."}]


def start_service(logs_dir: Path, log_name: str, store: Path, roots: list[Path]) -> ServiceProcess:
    return ServiceProcess(logs_dir / log_name, env=service_env(store, roots)).start_ready()


def greedy(client: httpx.Client, model: str) -> tuple[str, str | None]:
    response = client.post("/v1/chat/completions", json={
        "model": model, "messages": PROMPT, "max_tokens": 16, "temperature": 0,
    })
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]["content"], response.headers.get("x-loragate-adapter-version")


def register(client: httpx.Client, name: str, path: Path) -> dict:
    response = client.post("/admin/adapters", json={"name": name, "path": str(path)})
    assert response.status_code == 201, response.text
    return response.json()


def assert_store_reconciled(store: Path) -> dict:
    """manifest.json parses; no staging leftovers; every version folder is named by the manifest."""
    manifest = json.loads((store / "manifest.json").read_text())
    AdapterStore(store).load()  # and the service's own model of it accepts it
    assert list((store / ".staging").iterdir()) == []
    assert list(store.glob(".manifest.*.tmp")) == []
    named = sorted(a["path"] for a in manifest["adapters"].values())
    assert sorted(str(p.relative_to(store)) for p in (store / "adapters").glob("*/*")) == named
    for record in manifest["adapters"].values():
        assert file_sha256(store / record["path"] / "adapter_model.safetensors") == record["sha256"]
    return manifest


def test_restart_keeps_adapters_and_greedy_outputs(
    tmp_path: Path, logs_dir: Path, adapter_source_dir: Path, model_dir: Path, model: str
) -> None:
    plain = make_peft_adapter(model_dir, adapter_source_dir / "restart-plain", seed=31)
    strong = make_peft_adapter(model_dir, adapter_source_dir / "restart-strong", seed=32, targets=ALL_MODULES,
                               weight_scale=3.0)
    store = tmp_path / "store"
    names = (model, "restart-plain", "restart-strong")

    proc = start_service(logs_dir, "restart-1.log", store, [adapter_source_dir])
    try:
        with httpx.Client(base_url=proc.base_url, timeout=120) as client:
            records = [register(client, "restart-plain", plain), register(client, "restart-strong", strong)]
            listed = client.get("/admin/adapters").json()
            outputs = {name: greedy(client, name) for name in names}
    finally:
        proc.stop(signal.SIGTERM)
    # A graceful stop: uvicorn finishes the shutdown, then re-raises SIGTERM (exit -15).
    assert proc.process is not None and proc.process.returncode in (0, -signal.SIGTERM), proc.log_tail()
    assert "Application shutdown complete" in proc.log_path.read_text(errors="replace"), proc.log_tail()
    assert [r["version"] for r in records] == [1, 1] and records[0]["engine_id"] != records[1]["engine_id"]
    assert [a["adapter"] for a in listed["data"]] == records
    assert outputs["restart-strong"][0] != outputs[model][0]  # the adapter really changes the output

    proc = start_service(logs_dir, "restart-2.log", store, [adapter_source_dir])
    try:
        with httpx.Client(base_url=proc.base_url, timeout=120) as client:
            relisted = client.get("/admin/adapters").json()
            reoutputs = {name: greedy(client, name) for name in names}
    finally:
        proc.stop(signal.SIGTERM)
    # Names, versions, sha256, engine ids (the whole records) and residency: identical.
    assert relisted == listed
    assert reoutputs == outputs
    assert_store_reconciled(store)


def test_kill_9_during_registration_loses_nothing(
    tmp_path: Path, logs_dir: Path, adapter_source_dir: Path, model_dir: Path, model: str
) -> None:
    small = make_peft_adapter(model_dir, adapter_source_dir / "kill-small", seed=41)
    large = make_peft_adapter(model_dir, adapter_source_dir / "kill-large", seed=42, rank=64, targets=ALL_MODULES)
    assert (large / "adapter_model.safetensors").stat().st_size > 70 * 2**20
    large_sha = file_sha256(large / "adapter_model.safetensors")
    store = tmp_path / "store"
    seed = time.time_ns() % 2**32
    rng = random.Random(seed)

    proc = start_service(logs_dir, "kill-0.log", store, [adapter_source_dir])
    try:
        with httpx.Client(base_url=proc.base_url, timeout=120) as client:
            small_record = register(client, "kill-small", small)
            small_output = greedy(client, "kill-small")

        for round_ in (1, 2):
            outcome: dict[str, object] = {}

            def register_large() -> None:
                try:
                    outcome["response"] = httpx.post(f"{proc.base_url}/admin/adapters", timeout=120,
                                                     json={"name": "kill-large", "path": str(large)})
                except httpx.HTTPError as exc:  # the process died under the request
                    outcome["error"] = exc

            delay = rng.uniform(0, 0.5)
            thread = threading.Thread(target=register_large)
            thread.start()
            time.sleep(delay)
            proc.stop(signal.SIGKILL)
            thread.join(60)
            context = f"round {round_}, kill after {delay:.3f} s (seed {seed}), client saw {outcome}"

            # Before any restart: the manifest on disk is whole and still names the small adapter.
            on_disk = AdapterStore(store).load()
            assert on_disk.adapters["kill-small"].model_dump(mode="json") == small_record, context

            proc = start_service(logs_dir, f"kill-{round_}.log", store, [adapter_source_dir])
            with httpx.Client(base_url=proc.base_url, timeout=120) as client:
                listed = {a["adapter"]["name"]: a for a in client.get("/admin/adapters").json()["data"]}
                assert listed["kill-small"]["adapter"] == small_record, context
                assert greedy(client, "kill-small") == small_output, context
                response = outcome.get("response")
                if isinstance(response, httpx.Response) and response.status_code == 201:
                    # Acknowledged before the kill: it must have survived.
                    assert listed["kill-large"]["adapter"] == response.json(), context
                if "kill-large" in listed:
                    record = listed["kill-large"]["adapter"]
                    assert record["sha256"] == large_sha and record["engine_id"] != small_record["engine_id"], context
                    _, version = greedy(client, "kill-large")
                    assert version == str(record["version"]), context
                else:
                    assert not (store / "adapters" / "kill-large").exists(), context
                manifest = assert_store_reconciled(store)
                assert sorted(manifest["adapters"]) == sorted(listed), context
                assert greedy(client, model)[0], context
    finally:
        proc.stop(signal.SIGKILL)

