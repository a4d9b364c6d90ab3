"""Progressive rollouts against the real service: a healthy candidate advanced by the service
itself from 5% to 100% (started, paused, resumed and read with the CLI), and a candidate that
breaks the schema rolled back by the guard and still rolled back after a restart with the same
`--routes-file` (its own service processes on their own store); `loragate promote` refusing a
candidate worse than the route's control on the evaluation gate's measures."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from service.testing import TICKETS_FILE
from service.testing.adapters import make_peft_adapter
from service.testing.process import ServiceProcess
from tests.integration.conftest import service_env
from tests.integration.metrics_scrape import scrape_value

HELLO = [{"role": "user", "content": "Say hello."}]
# As in test_routes: the base model closes this JSON in a few tokens; the "collapsed" adapter fills
# the string, so at 16 tokens its structured replies are truncated (not valid).
CITY_SCHEMA = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 40}}, "required": ["city"]}
STRUCTURED = {
    "messages": [{"role": "user", "content": "What is the capital of France? Answer in JSON."}],
    "response_format": {"type": "json_schema", "json_schema": {"name": "city", "schema": CITY_SCHEMA}},
    "max_tokens": 16,
}
ROLLOUT_DEADLINE_S = 600


def chat(client: httpx.Client, model: str, key: str | None = None, **extra: object) -> httpx.Response:
    headers = {"X-Loragate-Route-Key": key} if key else {}
    body = {"model": model, "messages": HELLO, "max_tokens": 1, "temperature": 0, **extra}
    return client.post("/v1/chat/completions", json=body, headers=headers)


def send(base_url: str, route: str, keys: list[str], **extra: object) -> list[str]:
    """One request per key (8 at a time); the variants that served them."""
    def one(key: str) -> str:
        with httpx.Client(base_url=base_url, timeout=300) as http:
            reply = chat(http, route, key, **extra)
        assert reply.status_code == 200, reply.text
        return reply.headers["x-loragate-variant"]

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, keys))


def cli(base_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "service", "routes", "--url", base_url, *args],
                          capture_output=True, text=True, timeout=60)


def test_a_healthy_candidate_is_rolled_out_from_5_to_100(client: httpx.Client, base_url: str, model: str,
                                                         model_dir: Path, adapter_source_dir: Path) -> None:
    folder = make_peft_adapter(model_dir, adapter_source_dir / "rollout-good", seed=41)
    assert client.post("/admin/adapters", json={"name": "rollout-good", "path": str(folder)}).status_code == 201
    guard = {"max_error_rate": 0.5, "min_samples": 3, "window_s": 600}
    control = [{"target": model, "weight": 1}]
    made = client.put("/admin/routes/rollout-healthy", json={"variants": control, "guard": guard})
    assert made.status_code == 200, made.text

    started = cli(base_url, "rollout", "rollout-healthy", "--candidate", "rollout-good", "--steps", "5,25,50,100",
                  "--min-samples", "3", "--min-interval-s", "1", "--json")
    assert started.returncode == 0, started.stderr
    route = json.loads(started.stdout)
    assert route["rollout"]["status"] == "progressing" and route["rollout"]["step"] == 5
    assert [v["weight"] for v in route["spec"]["variants"]] == [95, 5]
    paused = cli(base_url, "rollout", "pause", "rollout-healthy")
    assert paused.returncode == 0 and "status     paused" in paused.stdout, paused.stderr
    assert cli(base_url, "rollout", "resume", "rollout-healthy").returncode == 0

    deadline, batch = time.monotonic() + ROLLOUT_DEADLINE_S, 0
    while client.get("/admin/routes/rollout-healthy").json()["rollout"]["status"] == "progressing":
        assert time.monotonic() < deadline, client.get("/admin/routes/rollout-healthy").json()["rollout"]
        send(base_url, "rollout-healthy", [f"healthy-{batch}-{i}" for i in range(8)])
        batch += 1

    route = client.get("/admin/routes/rollout-healthy").json()
    state = route["rollout"]
    assert state["status"] == "completed" and state["step"] == 100, state
    assert [(e["transition"], e["step"]) for e in state["history"]] == [
        ("started", 5), ("paused", 5), ("resumed", 5), ("advanced", 25), ("advanced", 50), ("completed", 100)]
    assert [v["weight"] for v in route["spec"]["variants"]] == [0, 100] and route["version"] == 5
    assert set(send(base_url, "rollout-healthy", [f"after-{i}" for i in range(10)])) == {"rollout-good"}
    assert scrape_value(client, "loragate_route_rollout_step", {"route": "rollout-healthy"}) == 100
    transitions = {t: scrape_value(client, "loragate_route_rollout_transitions_total",
                                   {"route": "rollout-healthy", "transition": t}) for t in ("advanced", "completed")}
    assert transitions == {"advanced": 2, "completed": 1}
    status = cli(base_url, "rollout", "status", "rollout-healthy")
    assert status.returncode == 0 and "status     completed" in status.stdout, status.stderr


def start_service(logs_dir: Path, log_name: str, env: dict[str, str]) -> ServiceProcess:
    return ServiceProcess(logs_dir / log_name, env=env).start_ready()


def test_a_breaking_candidate_is_rolled_back_and_stays_rolled_back_after_a_restart(
    tmp_path: Path, logs_dir: Path, model: str, model_dir: Path, adapter_source_dir: Path,
) -> None:
    # Very large weights on every layer: the model degenerates into repeating one token.
    # Seed 13, as test_routes' collapsed adapter: its replies run to max_tokens (with seed 42 the
    # collapsed model happens to close the JSON in 15 tokens, a valid reply).
    collapsed = make_peft_adapter(model_dir, adapter_source_dir / "rollout-collapsed", seed=13,
                                  targets=("o_proj", "down_proj"), weight_scale=40.0)
    routes_file = tmp_path / "routes.yaml"
    # min_interval_s of an hour: the step cannot advance, so only the guard decides.
    routes_file.write_text(json.dumps({"rollout-breaking": {
        "variants": [{"target": model, "weight": 1}],
        "guard": {"max_invalid_rate": 0.5, "min_samples": 3, "window_s": 600},
        "rollout": {"candidate": "rollout-collapsed", "steps": [50, 100], "min_samples": 6, "min_interval_s": 3600},
    }}))
    env = service_env(tmp_path / "store", [adapter_source_dir]) | {
        "LORAGATE_ROUTES_FILE": str(routes_file),
        "LORAGATE_INITIAL_ADAPTERS": json.dumps({"rollout-collapsed": str(collapsed)}),
    }
    proc = start_service(logs_dir, "rollout-1.log", env)
    try:
        with httpx.Client(base_url=proc.base_url, timeout=120) as http:
            route = http.get("/admin/routes/rollout-breaking").json()
            assert route["rollout"]["status"] == "progressing" and route["rollout"]["step"] == 50, route
            assert [v["weight"] for v in route["spec"]["variants"]] == [50, 50]
            deadline, batch, served = time.monotonic() + ROLLOUT_DEADLINE_S, 0, []
            while http.get("/admin/routes/rollout-breaking").json()["rollout"]["status"] != "rolled_back":
                assert time.monotonic() < deadline, http.get("/admin/routes/rollout-breaking").json()
                served += send(proc.base_url, "rollout-breaking", [f"breaking-{batch}-{i}" for i in range(8)],
                               **STRUCTURED)
                batch += 1
            assert "rollout-collapsed" in served
            route = http.get("/admin/routes/rollout-breaking").json()
            assert route["rollout"]["reason"].startswith("invalid_rate"), route
            assert route["rollbacks"]["rollout-collapsed"] == route["rollout"]["reason"]
            assert [v["weight"] for v in route["spec"]["variants"]] == [100, 0] and route["version"] == 2
            assert [e["transition"] for e in route["rollout"]["history"]] == ["started", "rolled_back"]
            assert set(send(proc.base_url, "rollout-breaking", [f"after-{i}" for i in range(10)])) == {model}
            assert scrape_value(http, "loragate_route_rollout_step", {"route": "rollout-breaking"}) == 0
            assert scrape_value(http, "loragate_route_rollout_transitions_total",
                                {"route": "rollout-breaking", "transition": "rolled_back"}) == 1
            assert scrape_value(http, "loragate_route_rollbacks_total", {"route": "rollout-breaking"}) == 1
    finally:
        proc.stop()

    # The same store, the same routes file: the stored rollback stands.
    proc = start_service(logs_dir, "rollout-2.log", env)
    try:
        with httpx.Client(base_url=proc.base_url, timeout=120) as http:
            again = http.get("/admin/routes/rollout-breaking").json()
            assert again["rollout"] == route["rollout"] and again["version"] == route["version"], again
            assert [v["weight"] for v in again["spec"]["variants"]] == [100, 0]
            assert set(send(proc.base_url, "rollout-breaking", [f"restarted-{i}" for i in range(10)],
                            **STRUCTURED)) == {model}
            assert scrape_value(http, "loragate_route_rollout_step", {"route": "rollout-breaking"}) == 0
            status = cli(proc.base_url, "rollout", "status", "rollout-breaking")
            assert status.returncode == 0 and "status     rolled_back" in status.stdout, status.stderr
            assert "reason     invalid_rate" in status.stdout
    finally:
        proc.stop()


@pytest.mark.parametrize("rollout, param", [
    ({"candidate": "rollout-good", "steps": [25, 5, 100]}, "rollout.steps"),
    ({"candidate": "rollout-good", "steps": [5, 101]}, "rollout.steps"),
    ({"candidate": "no-such-adapter", "steps": [5, 100]}, "rollout.candidate"),
])
def test_rollout_validation_errors(client: httpx.Client, model: str, rollout: dict, param: str) -> None:
    body = {"variants": [{"target": model, "weight": 1}], "guard": {"max_error_rate": 0.1}, "rollout": rollout}
    response = client.put("/admin/routes/rollout-bad", json=body)
    assert response.status_code == 400 and response.json()["error"]["param"] == param, response.text
    same = client.put("/admin/routes/rollout-bad", json=body | {"rollout": {"candidate": model, "steps": [100]}})
    assert same.status_code == 400 and same.json()["error"]["param"] == "rollout.candidate", same.text


# Fields of a dataset line the triage endpoint reads.
TICKET_FIELDS = ("subject", "body", "customer_tier", "channel", "metadata")
GATED = "category_accuracy,priority_accuracy,schema_valid_rate"


def triage_each(client: httpx.Client, model: str, tickets: list[dict]) -> list[dict | None]:
    """Each ticket's triage by `model` (None: no schema-valid reply, a 502)."""
    replies = []
    for ticket in tickets:
        body = {k: ticket[k] for k in TICKET_FIELDS if k in ticket} | {"model": model}
        response = client.post("/v1/tickets/triage", json=body, timeout=600)
        assert response.status_code in (200, 502), response.text
        replies.append(response.json()["triage"] if response.status_code == 200 else None)
    return replies


def test_promote_refuses_a_candidate_worse_than_the_control(client: httpx.Client, base_url: str, model: str,
                                                            model_dir: Path, adapter_source_dir: Path,
                                                            tmp_path: Path) -> None:
    collapsed = make_peft_adapter(model_dir, adapter_source_dir / "promote-collapsed", seed=13,
                                  targets=("o_proj", "down_proj"), weight_scale=40.0)
    assert client.post("/admin/adapters", json={"name": "promote-collapsed", "path": str(collapsed)}).status_code == 201
    made = client.put("/admin/routes/promote-gated", json={"variants": [{"target": model, "weight": 1}],
                                                            "guard": {"max_error_rate": 0.5}})
    assert made.status_code == 200, made.text
    # Six tickets labelled with the control's own answers: the control is right on every one, so the
    # candidate is worse wherever it answers otherwise (checked here, so the refusal cannot be luck).
    tickets = [json.loads(line) for line in TICKETS_FILE.read_text().splitlines() if line.strip()][:6]
    control = triage_each(client, model, tickets)
    assert all(control), control  # the base model's constrained replies are schema-valid (test_triage)
    candidate = triage_each(client, "promote-collapsed", tickets)
    differs = [i for i, (mine, theirs) in enumerate(zip(candidate, control))
               if mine is None or (mine["category"], mine["priority"]) != (theirs["category"], theirs["priority"])]
    assert differs, f"the collapsed adapter answered as the base model on every ticket: {candidate}"
    dataset = tmp_path / "six.jsonl"
    dataset.write_text("".join(json.dumps({**{k: t[k] for k in TICKET_FIELDS if k in t}, "id": t["id"],
                                           "category": c["category"], "priority": c["priority"]}) + "\n"
                               for t, c in zip(tickets, control)))

    result = subprocess.run(
        [sys.executable, "-m", "service", "promote", "--url", base_url, "--route", "promote-gated",
         "--candidate", "promote-collapsed", "--dataset", str(dataset), "--measure", GATED,
         "--out", str(tmp_path / "eval"), "--steps", "5,100", "--json"],
        capture_output=True, text=True, timeout=1800)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "refused: promote-collapsed is worse than" in result.stderr
    stored = json.loads(result.stdout)
    report = stored["report"]
    assert (report["passed"], report["candidate"], report["control"], report["n"]) == (
        False, "promote-collapsed", model, 6)
    failed = {m["measure"]: m for m in report["measures"] if not m["passed"]}
    assert failed and set(failed) <= set(GATED.split(","))
    for verdict in failed.values():
        # (the control need not score 1.0 here: the evaluation batches its requests, and a bf16 near-tie
        # may flip one of its labels against the ones read one at a time above)
        assert verdict["candidate"]["rate"] < verdict["control"]["rate"]
        assert verdict["difference_low"] <= verdict["difference"] <= verdict["difference_high"]
        assert "95% CI" in verdict["statement"] and "paired 95% CI" in verdict["statement"]
    assert not any("cannot be judged" in reason for reason in report["reasons"])
    # Stored on the server beside its audit entry; no rollout started.
    fetched = client.get(f"/admin/routes/promote-gated/gate-reports/{stored['id']}")
    assert fetched.status_code == 200 and fetched.json()["report"]["reasons"] == report["reasons"]
    route = client.get("/admin/routes/promote-gated").json()
    assert route["rollout"] is None and [v["target"] for v in route["spec"]["variants"]] == [model]
    assert (tmp_path / "eval" / "report.json").is_file()
    # The rollout API refuses to start on the strength of a refused report.
    refused = client.post("/admin/routes/promote-gated/rollout", params={"gate_report": stored["id"]},
                          json={"candidate": "promote-collapsed", "steps": [5, 100]})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "gate_report", refused.text
