"""The admin API over real registries: PATCH /admin/routes/NAME merges, refusals name the field,
the version shows in the route and its report, and the audit log names the calling key."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from starlette.middleware import Middleware

from service.api import admin
from service.api.auth import Auth, KeyMiddleware
from service.api.errors import install_error_handlers
from service.config import Settings
from service.observability import Metrics, RequestSample, RequestStats
from service.routing import RouteRegistry
from tests.support.registry_harness import BASE_MODEL_NAME, make_registry

ADMIN_KEY = "ops:admin-key-0123456789abcdef"
HEADERS = {"authorization": "Bearer admin-key-0123456789abcdef"}
MERGE = {**HEADERS, "content-type": "application/merge-patch+json"}
GUARD = {"max_error_rate": 0.05, "max_invalid_rate": 0.02, "min_samples": 20}


@pytest.fixture()
def client(tmp_path: Path, tiny_model_dir: Path, adapter_root: Path, monkeypatch: pytest.MonkeyPatch):
    for name in ("API_KEYS", "API_KEYS_FILE", "ADMIN_KEYS", "ADMIN_KEYS_FILE", "AUTH_DISABLED"):
        monkeypatch.delenv(f"LORAGATE_{name}", raising=False)
    keys = tmp_path / "admin-keys"
    keys.write_text(ADMIN_KEY + "\n")
    keys.chmod(0o600)
    adapters, _ = make_registry(tmp_path / "store", tiny_model_dir, [adapter_root])
    routes = RouteRegistry(adapters.store, BASE_MODEL_NAME, Metrics(CollectorRegistry()))
    adapters.used_by, adapters.route_names = routes.routes_using, routes.stored_names
    auth = Auth.from_settings(Settings(admin_keys_file=keys))
    app = FastAPI(middleware=[Middleware(KeyMiddleware, auth=auth)])
    app.state.auth = auth
    app.state.services = SimpleNamespace(registry=adapters, routes=routes, stats=RequestStats(window_s=600),
                                         route_source=None)
    install_error_handlers(app)
    app.include_router(admin.router)
    with TestClient(app) as http:
        http.portal.call(adapters.start)
        http.portal.call(routes.start)
        yield http
        http.portal.call(adapters.close)  # its background tasks run on the client's loop


def audit(client: TestClient) -> list[dict]:
    path = client.app.state.services.registry.store.audit_path
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_patch_merges_and_put_replaces(client: TestClient, adapter_root: Path) -> None:
    assert client.post("/admin/adapters", json={"name": "one", "path": str(adapter_root / "one")},
                       headers=HEADERS).status_code == 201
    body = {"variants": [{"target": BASE_MODEL_NAME, "weight": 90}, {"target": "one", "weight": 10}], "guard": GUARD}
    assert client.put("/admin/routes/ab", json=body, headers=HEADERS).json()["version"] == 1

    patched = client.patch("/admin/routes/ab", content=json.dumps({"guard": {"min_samples": 50}}), headers=MERGE)
    assert patched.status_code == 200, patched.text
    assert patched.json()["spec"]["guard"] == {**GUARD, "min_samples": 50, "max_p95_latency_ratio": None,
                                               "max_needs_review_rate": None, "min_shadow_agreement": None,
                                               "window_s": 300.0}
    weights = {"variants": [{"target": BASE_MODEL_NAME, "weight": 50}, {"target": "one", "weight": 50}]}
    patched = client.patch("/admin/routes/ab", json=weights, headers=HEADERS)  # plain JSON works too
    assert patched.json()["version"] == 2 and patched.json()["spec"]["guard"]["max_error_rate"] == 0.05
    assert client.get("/admin/routes/ab", headers=HEADERS).json()["version"] == 2

    replaced = client.put("/admin/routes/ab", json=weights, headers=HEADERS).json()  # PUT: the whole route
    assert replaced["spec"]["guard"] is None and replaced["version"] == 2

    refused = client.patch("/admin/routes/ab", json={"guard": {"min_samples": 5}}, headers=MERGE)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "guard"
    refused = client.patch("/admin/routes/ab", json={"variants": [{"target": "one", "weight": -1}]}, headers=MERGE)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "variants.0.weight"
    refused = client.put("/admin/routes/ab", json={**weights, "guard": {}}, headers=HEADERS)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "guard"
    assert client.patch("/admin/routes/nope", json={"guard": None}, headers=MERGE).status_code == 404
    for threshold, value in (("min_shadow_agreement", 1.5), ("max_needs_review_rate", -0.1)):  # out of range
        refused = client.patch("/admin/routes/ab", json={"guard": {threshold: value}}, headers=MERGE)
        assert refused.status_code == 400 and refused.json()["error"]["param"] == f"guard.{threshold}"
    refused = client.put("/admin/routes/ab", json={**weights, "guard": {"min_shadow_agreement": 1.5}}, headers=HEADERS)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "guard.min_shadow_agreement"
    refused = client.patch("/admin/routes/ab", json={"guard": {"min_shadow_agreement": 0.9}}, headers=MERGE)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "guard.min_shadow_agreement"  # no shadow


def test_names_conflict_with_a_409_whichever_comes_second(client: TestClient, adapter_root: Path) -> None:
    client.post("/admin/adapters", json={"name": "one", "path": str(adapter_root / "one")}, headers=HEADERS)
    taken = client.put("/admin/routes/one", json={"variants": [{"target": BASE_MODEL_NAME, "weight": 1}]},
                       headers=HEADERS)
    assert taken.status_code == 409 and taken.json()["error"]["param"] == "name"
    client.put("/admin/routes/ab", json={"variants": [{"target": BASE_MODEL_NAME, "weight": 1}]}, headers=HEADERS)
    taken = client.post("/admin/adapters", json={"name": "ab", "path": str(adapter_root / "two")}, headers=HEADERS)
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "name_taken"


def test_the_audit_log_names_the_calling_key(client: TestClient, adapter_root: Path) -> None:
    client.post("/admin/adapters", json={"name": "one", "path": str(adapter_root / "one")}, headers=HEADERS)
    client.put("/admin/routes/ab", json={"variants": [{"target": "one", "weight": 1}]}, headers=HEADERS)
    client.patch("/admin/routes/ab", json={"variants": [{"target": BASE_MODEL_NAME, "weight": 1}]}, headers=MERGE)
    client.delete("/admin/routes/ab", headers=HEADERS)
    assert client.delete("/admin/adapters/one", headers=HEADERS).status_code == 204
    entries = [(e["action"], e.get("caller")) for e in audit(client)]  # the key's id in the keys file, never the key
    assert entries == [("register", "ops"), ("route_set", "ops"), ("route_patch", "ops"), ("route_delete", "ops"),
                       ("remove", "ops")]


def test_the_report_judges_the_current_version(client: TestClient) -> None:
    client.put("/admin/routes/ab", json={"variants": [{"target": BASE_MODEL_NAME, "weight": 1}]}, headers=HEADERS)
    client.patch("/admin/routes/ab", json={"variants": [{"target": BASE_MODEL_NAME, "weight": 2}]}, headers=MERGE)
    stats: RequestStats = client.app.state.services.stats
    for version, status in ((1, 500), (2, 200), (2, 200)):
        stats.observe(RequestSample(time.time(), BASE_MODEL_NAME, BASE_MODEL_NAME, "ab", BASE_MODEL_NAME, "chat",
                                    status, 0.5, 0.1, 10, 5, None, route_version=version))
    report = client.get("/admin/routes/ab/report", headers=HEADERS).json()
    assert report["version"] == 2 and report["source"] == "in-process samples of this replica"
    assert [(v["requests"], v["errors"]) for v in report["variants"]] == [(2, 0)]


def gate_report(passed: bool, **changes: object) -> dict:
    figure = {"successes": 5, "n": 6, "rate": 5 / 6, "low": 0.44, "high": 0.97}
    measure = {"measure": "category_accuracy", "candidate": figure, "control": figure, "difference": 0.0,
               "difference_low": -0.3, "difference_high": 0.3, "tolerance": 0.0, "passed": passed,
               "statement": "category_accuracy: ..."}
    return {"route": "ab", "candidate": "one", "control": BASE_MODEL_NAME, "dataset": "six.jsonl",
            "dataset_sha256": "0" * 64, "n": 6, "rule": "not worse: ...", "measures": [measure], "passed": passed,
            "reasons": [] if passed else ["category_accuracy: ..."], **changes}


def test_gate_reports_are_stored_beside_their_audit_entry_and_name_the_rollout(client: TestClient,
                                                                               adapter_root: Path) -> None:
    client.post("/admin/adapters", json={"name": "one", "path": str(adapter_root / "one")}, headers=HEADERS)
    client.put("/admin/routes/ab", json={"variants": [{"target": BASE_MODEL_NAME, "weight": 1}]}, headers=HEADERS)
    for body, param in [(gate_report(True, route="other"), "route"),
                        (gate_report(True, reasons=["the control failed"]), "passed"),
                        (gate_report(False, reasons=[]), "passed"),
                        (gate_report(True, measures=[]), "measures"),
                        ({**gate_report(True), "measures": [{**gate_report(True)["measures"][0], "tolerance": 2}]},
                         "measures.0.tolerance")]:
        refused = client.post("/admin/routes/ab/gate-reports", json=body, headers=HEADERS)
        assert refused.status_code == 400 and refused.json()["error"]["param"] == param, (param, refused.text)
    assert client.post("/admin/routes/nope/gate-reports", json=gate_report(True), headers=HEADERS).status_code == 404

    refusal = client.post("/admin/routes/ab/gate-reports", json=gate_report(False), headers=HEADERS)
    assert refusal.status_code == 201, refusal.text
    stored = refusal.json()
    store = client.app.state.services.registry.store
    assert (store.root / stored["path"]).is_file() and stored["path"].startswith("gate-reports/ab/")
    entry = audit(client)[-1]
    assert (entry["action"], entry["route"], entry["adapter"], entry["caller"]) == ("route_gate", "ab", "one", "ops")
    assert "refused: category_accuracy" in entry["source"] and stored["path"] in entry["source"]
    fetched = client.get(f"/admin/routes/ab/gate-reports/{stored['id']}", headers=HEADERS)
    assert fetched.status_code == 200 and fetched.json()["report"]["passed"] is False

    rollout = {"candidate": "one", "steps": [5, 100]}
    client.patch("/admin/routes/ab", json={"guard": {"max_error_rate": 0.1}}, headers=MERGE)
    for report_id in (stored["id"], "20250101T000000000000Z-one", "../../routes"):
        refused = client.post("/admin/routes/ab/rollout", params={"gate_report": report_id}, json=rollout,
                              headers=HEADERS)
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "gate_report", refused.text
    passed = client.post("/admin/routes/ab/gate-reports", json=gate_report(True), headers=HEADERS).json()
    other = client.post("/admin/routes/ab/rollout", params={"gate_report": passed["id"]},
                        json={**rollout, "candidate": BASE_MODEL_NAME}, headers=HEADERS)
    assert other.status_code == 400 and other.json()["error"]["param"] == "gate_report"  # another candidate's
    started = client.post("/admin/routes/ab/rollout", params={"gate_report": passed["id"]}, json=rollout,
                          headers=HEADERS)
    assert started.status_code == 200 and started.json()["rollout"]["step"] == 5
    entry = next(e for e in reversed(audit(client)) if e["action"] == "route_rollout_start")
    assert entry["source"] == f"api, evaluation gate passed: {passed['path']}"
