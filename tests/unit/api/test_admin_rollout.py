"""The rollout through the admin API: bad input is a 400 naming the field, GET shows the rollout's
status, pause/resume/abort change it (409 when the status does not allow it), audited with the key."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from tests.support.registry_harness import BASE_MODEL_NAME
from tests.unit.api.test_admin_routes import HEADERS, audit, client  # noqa: F401  (the fixture)

GUARD = {"max_error_rate": 0.05, "min_samples": 5}
ROLLOUT = {"candidate": "one", "steps": [5, 25, 50, 100], "min_samples": 50, "min_interval_s": 300}
CONTROL = [{"target": BASE_MODEL_NAME, "weight": 1}]


@pytest.fixture()
def one(client: TestClient, adapter_root) -> TestClient:  # noqa: F811
    response = client.post("/admin/adapters", json={"name": "one", "path": str(adapter_root / "one")}, headers=HEADERS)
    assert response.status_code == 201, response.text
    return client


def put(client: TestClient, **extra: object):  # noqa: ANN201
    return client.put("/admin/routes/ab", json={"variants": CONTROL, "guard": GUARD, **extra}, headers=HEADERS)


@pytest.mark.parametrize("rollout, status, param", [
    (ROLLOUT | {"steps": [25, 5, 100]}, 400, "rollout.steps"),
    (ROLLOUT | {"steps": [0, 100]}, 400, "rollout.steps"),
    (ROLLOUT | {"steps": [5, 150]}, 400, "rollout.steps"),
    (ROLLOUT | {"steps": [5, 50]}, 400, "rollout.steps"),
    (ROLLOUT | {"min_samples": 0}, 400, "rollout.min_samples"),
    (ROLLOUT | {"candidate": "missing"}, 400, "rollout.candidate"),
    (ROLLOUT | {"candidate": BASE_MODEL_NAME}, 400, "rollout.candidate"),
])
def test_bad_rollouts_are_400_naming_the_field(one: TestClient, rollout: dict, status: int, param: str) -> None:
    response = put(one, rollout=rollout)
    assert response.status_code == status, response.text
    assert response.json()["error"]["param"] == param
    assert put(one).status_code == 200
    started = one.post("/admin/routes/ab/rollout", json=rollout, headers=HEADERS)  # the body is the rollout
    expected = param if "candidate" in param else param.removeprefix("rollout.")
    assert started.status_code == status and started.json()["error"]["param"] == expected, started.text


def test_a_rollout_without_a_guard_is_refused(one: TestClient) -> None:
    response = one.put("/admin/routes/ab", json={"variants": CONTROL, "rollout": ROLLOUT}, headers=HEADERS)
    assert response.status_code == 400 and response.json()["error"]["param"] == "guard"


def test_get_shows_the_rollout_and_the_actions_change_it(one: TestClient) -> None:
    assert one.post("/admin/routes/ab/rollout", json=ROLLOUT, headers=HEADERS).status_code == 404
    assert put(one).status_code == 200
    started = one.post("/admin/routes/ab/rollout", json=ROLLOUT, headers=HEADERS)
    assert started.status_code == 200, started.text
    route = one.get("/admin/routes/ab", headers=HEADERS).json()
    assert route["spec"]["rollout"] == ROLLOUT
    assert route["rollout"]["status"] == "progressing" and route["rollout"]["step"] == 5
    assert route["rollout"]["advanced_at"] and route["rollout"]["history"][0]["transition"] == "started"
    assert [v["weight"] for v in route["spec"]["variants"]] == [95, 5]

    assert one.post("/admin/routes/ab/rollout/pause", headers=HEADERS).json()["rollout"]["status"] == "paused"
    again = one.post("/admin/routes/ab/rollout/pause", headers=HEADERS)
    assert again.status_code == 409 and again.json()["error"]["code"] == "rollout_state"
    assert one.post("/admin/routes/ab/rollout/resume", headers=HEADERS).json()["rollout"]["status"] == "progressing"
    aborted = one.post("/admin/routes/ab/rollout/abort", headers=HEADERS).json()
    assert aborted["rollout"]["status"] == "rolled_back" and aborted["rollout"]["reason"] == "aborted by ops"
    assert [v["weight"] for v in aborted["spec"]["variants"]] == [100, 0]
    assert one.post("/admin/routes/ab/rollout/resume", headers=HEADERS).status_code == 409
    assert one.post("/admin/routes/ab/rollout/jump", headers=HEADERS).status_code in (400, 404, 422)
    assert one.post("/admin/routes/nope/rollout/pause", headers=HEADERS).status_code == 404
    rollouts = [(e["source"].split(":")[0], e.get("caller")) for e in audit(one) if e["action"] == "route_rollout"]
    assert rollouts == [("started", "ops"), ("paused", "ops"), ("resumed", "ops"), ("aborted", "ops")]
    # a patch through PUT/PATCH with a rollout: the same, started once
    patched = one.patch("/admin/routes/ab", content=json.dumps({"rollout": ROLLOUT | {"min_samples": 10}}),
                        headers={**HEADERS, "content-type": "application/merge-patch+json"})
    assert patched.status_code == 200 and patched.json()["rollout"]["status"] == "progressing"


def test_the_rollout_endpoints_need_the_admin_key(one: TestClient) -> None:
    put(one, rollout=ROLLOUT)
    for path in ("/admin/routes/ab/rollout", "/admin/routes/ab/rollout/abort"):
        assert one.post(path, json=ROLLOUT).status_code == 401
