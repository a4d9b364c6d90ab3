"""The schemathesis run's command and configuration: all checks, 100 examples per operation by
default, reports written, DELETE pinned to the scratch names (the run itself: tests/integration)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from loadtests.schemathesis_run import command, config_toml, parse_args


def test_the_run_checks_everything_with_100_examples_and_keeps_its_reports(tmp_path: Path) -> None:
    args = parse_args(["--base-url", "http://127.0.0.1:9/", "--key", "k", "--report-dir", str(tmp_path)])
    cmd = command(args, tmp_path / "schemathesis.toml")
    assert cmd[cmd.index("run") + 1] == "http://127.0.0.1:9/openapi.json"
    assert cmd[cmd.index("--checks") + 1] == "all" and "--exclude-checks" not in cmd
    assert cmd[cmd.index("--max-examples") + 1] == "100" and "--phases" not in cmd
    assert cmd[cmd.index("--report-junit-path") + 1] == str(tmp_path / "junit.xml")
    assert "Authorization: Bearer k" in cmd


def test_deletes_are_pinned_to_the_scratch_names() -> None:
    args = parse_args(["--base-url", "u", "--key", "k", "--scratch-adapter", "sa", "--scratch-route", "sr"])
    config = tomllib.loads(config_toml(args))
    assert config["checks"]["enabled"] is True
    assert {op["include-name"]: op["parameters"] for op in config["operations"]} == {
        "DELETE /admin/adapters/{name}": {"name": "sa"}, "DELETE /admin/routes/{name}": {"name": "sr"}}
    # Only 502 generation_failed joins the server errors a run accepts; 500, 503, 504 fail it.
    assert config["checks"]["not_a_server_error"]["expected-statuses"] == ["2xx", "3xx", "4xx", "502"]
