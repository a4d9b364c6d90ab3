"""`loragate routes rollout`: the requests it sends and what it prints, via httpx.MockTransport."""

from __future__ import annotations

import json

import httpx
import pytest

from service.cli import routes as cli
from tests.unit.cli.test_routes_cli import ROUTE, Recorder, run

STATE = {
    "status": "progressing", "step_index": 1, "step": 25, "advanced_at": "2026-12-07T12:00:00Z", "reason": None,
    "history": [
        {"at": "2026-12-07T11:50:00Z", "transition": "started", "status": "progressing", "step": 5, "reason": None,
         "caller": "ops"},
        {"at": "2026-12-07T12:00:00Z", "transition": "advanced", "status": "progressing", "step": 25,
         "reason": None, "caller": None},
    ],
}
ROLLOUT_ROUTE = ROUTE | {
    "spec": {"variants": [{"target": "triage-v6", "weight": 75}, {"target": "triage-v7", "weight": 25}],
             "shadow": None, "guard": {"max_error_rate": 0.05},
             "rollout": {"candidate": "triage-v7", "steps": [5, 25, 50, 100], "min_samples": 50,
                         "min_interval_s": 300}},
    "rollout": STATE,
}


def test_start_posts_the_rollout(capsys) -> None:
    server = Recorder(payload=ROLLOUT_ROUTE)
    argv = ["rollout", "ticket-triage", "--candidate", "triage-v7", "--steps", "5,25,50,100", "--min-samples", "50",
            "--min-interval-s", "300"]
    assert run(argv, server) == 0
    (request,) = server.requests
    assert request.method == "POST" and request.url.path == "/admin/routes/ticket-triage/rollout"
    assert server.body == {"candidate": "triage-v7", "steps": [5, 25, 50, 100], "min_samples": 50,
                           "min_interval_s": 300}
    out = capsys.readouterr().out
    assert "rollout of triage-v7 against triage-v6" in out and "progressing" in out
    assert "25% (step 2 of 4: 5% -> 25% -> 50% -> 100%), since 2026-12-07 12:00:00 UTC" in out
    assert "started       5% by ops" in out and "advanced     25%" in out


def test_start_defaults_send_only_what_is_named(capsys) -> None:
    server = Recorder(payload=ROLLOUT_ROUTE)
    assert run(["rollout", "ticket-triage", "--candidate", "triage-v7", "--json"], server) == 0
    assert server.body == {"candidate": "triage-v7", "steps": [5, 25, 50, 100]}
    assert json.loads(capsys.readouterr().out)["rollout"]["status"] == "progressing"


@pytest.mark.parametrize("action, method, path", [
    ("pause", "POST", "/admin/routes/ticket-triage/rollout/pause"),
    ("resume", "POST", "/admin/routes/ticket-triage/rollout/resume"),
    ("abort", "POST", "/admin/routes/ticket-triage/rollout/abort"),
    ("status", "GET", "/admin/routes/ticket-triage"),
])
def test_actions(action: str, method: str, path: str, capsys) -> None:
    server = Recorder(payload=ROLLOUT_ROUTE)
    assert run(["--api-key", "k", "rollout", action, "ticket-triage"], server) == 0
    (request,) = server.requests
    assert (request.method, request.url.path) == (method, path) and request.headers["authorization"] == "Bearer k"
    assert "status     progressing" in capsys.readouterr().out


def test_a_rolled_back_rollout_shows_why(capsys) -> None:
    state = STATE | {"status": "rolled_back", "step": 0, "reason": "aborted by ops"}
    assert run(["rollout", "status", "ticket-triage"], Recorder(payload=ROLLOUT_ROUTE | {"rollout": state})) == 0
    out = capsys.readouterr().out
    assert "status     rolled_back" in out and "reason     aborted by ops" in out
    assert run(["rollout", "status", "ticket-triage"], Recorder(payload=ROUTE)) == 0
    assert capsys.readouterr().out.strip() == "route ticket-triage has no rollout"


@pytest.mark.parametrize("argv", [
    ["rollout", "ticket-triage"],  # no candidate
    ["rollout", "ticket-triage", "--candidate", "v7", "--steps", "5,x,100"],
    ["rollout", "pause", "ticket-triage", "--candidate", "v7"],
    ["rollout", "jump", "ticket-triage"],
    ["rollout", "pause", "a", "b"],
])
def test_usage_errors_exit_2_without_a_request(argv: list[str], capsys) -> None:
    server = Recorder(payload=ROLLOUT_ROUTE)
    with pytest.raises(SystemExit) as exc:
        run(argv, server)
    assert exc.value.code == 2 and not server.requests
    assert "error:" in capsys.readouterr().err


def test_server_refusals_are_printed(capsys) -> None:
    error = {"error": {"message": "The rollout of route ticket-triage is paused: only a progressing rollout can be "
                       "paused.", "type": "conflict", "param": "name", "code": "rollout_state"}}
    assert run(["rollout", "pause", "ticket-triage"], Recorder(status=409, payload=error)) == 1
    assert "error (409): The rollout of route ticket-triage is paused" in capsys.readouterr().err
    bad = {"error": {"message": "Invalid value for 'steps'", "type": "invalid_request_error", "param": "steps"}}
    transport = httpx.MockTransport(lambda request: httpx.Response(400, json=bad))
    assert cli.run(["rollout", "r", "--candidate", "v7", "--steps", "50,25,100"], transport=transport) == 1
    assert "error (400): Invalid value for 'steps'" in capsys.readouterr().err
