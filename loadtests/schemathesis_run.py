"""schemathesis's own runner (`schemathesis run`) against a running loragate, over every operation
of its OpenAPI document (admin upload and DELETE included), every check on, with a report.

    python -m loadtests.schemathesis_run --base-url http://127.0.0.1:8000 --key ADMIN_KEY \\
        --scratch-adapter st-scratch --scratch-route st-scratch --report-dir loadtests/results/schemathesis

Run it against a service of its own (it registers, changes and deletes adapters and routes): the
DELETE operations are pinned to the `--scratch-*` names (the caller creates them, or not: 404 is a
documented answer), so whatever else the store holds is never deleted. The service should cap
generation small (`LORAGATE_MAX_TOKENS_LIMIT`): its document states the cap as `maximum`, so every
generated request stays short and the run is bounded by examples x operations, not by the model.

Configuration choices (written into the generated schemathesis.toml, see `config_toml`):
- all checks; `positive_data_acceptance` also accepts 400 and 424: a request the schema allows can
  still be refused for what a JSON schema cannot state (the prompt's length in tokens, `n > 1` with
  `temperature: 0`, an adapter folder's content, a remote store that does not answer);
- `not_a_server_error` also accepts 502 `generation_failed`: a random `json_schema` the small model
  cannot satisfy within the capped budget is a documented answer, not a server error. 500, 503 and
  504 still fail the run.
Exit status: schemathesis's (0: no failures). Reports: JUnit XML, the JSON run report and the
NDJSON event stream in `--report-dir`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HOOKS = "loadtests.schemathesis_hooks"
POSITIVE_ALSO = ["400", "424"]
SERVER_ERROR_ALSO = ["502"]
DELETES = {"/admin/adapters/{name}": "scratch_adapter", "/admin/routes/{name}": "scratch_route"}


def config_toml(args: argparse.Namespace) -> str:
    """The schemathesis.toml of the run: checks, and the DELETE operations pinned to scratch names."""
    positive = json.dumps(["2xx", "401", "403", "404", "409", "429", *POSITIVE_ALSO])
    server = json.dumps(["2xx", "3xx", "4xx", *SERVER_ERROR_ALSO])
    lines = [
        "[checks]",
        "enabled = true",
        f"positive_data_acceptance.expected-statuses = {positive}",
        f"not_a_server_error.expected-statuses = {server}",
        "",
    ]
    for path, attr in DELETES.items():
        lines += ["[[operations]]", f'include-name = "DELETE {path}"',
                  f"parameters = {{ name = {json.dumps(getattr(args, attr))} }}", ""]
    return "\n".join(lines)


def command(args: argparse.Namespace, config: Path) -> list[str]:
    exe = Path(sys.executable).with_name("schemathesis")
    report = Path(args.report_dir).resolve()
    return [
        str(exe), "--config-file", str(config), "run", f"{args.base_url.rstrip('/')}/openapi.json",
        "--header", f"Authorization: Bearer {args.key}",
        "--checks", "all",
        "--max-examples", str(args.examples),
        "--workers", str(args.workers),
        "--request-timeout", str(args.request_timeout),
        "--seed", str(args.seed),
        "--generation-database", "none",
        "--report", "junit,json,ndjson", "--report-dir", str(report),
        "--report-junit-path", str(report / "junit.xml"),
        "--report-json-path", str(report / "report.json"),
        "--report-ndjson-path", str(report / "events.ndjson"),
        "--no-color",
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--key", required=True, help="An admin key (it may use every route).")
    parser.add_argument("--examples", type=int, default=100, help="Examples per operation (fuzzing phase).")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--request-timeout", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=30)
    parser.add_argument("--timeout", type=float, default=1800.0, help="Hard bound on the whole run, seconds.")
    parser.add_argument("--scratch-adapter", default="st-scratch-adapter")
    parser.add_argument("--scratch-route", default="st-scratch-route")
    parser.add_argument("--report-dir", default="loadtests/results/schemathesis")
    parser.add_argument("--models", default="", help="Served model names (comma-separated) that generation "
                        "requests are steered to half the time (loadtests/schemathesis_hooks.py).")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    """Runs schemathesis to the end (or `--timeout`: then the run fails); its exit status."""
    report = Path(args.report_dir).resolve()
    report.mkdir(parents=True, exist_ok=True)
    config = report / "schemathesis.toml"
    config.write_text(config_toml(args))
    # Run in the report folder (schemathesis keeps a crash cache in its working directory), this
    # checkout first on the path so the hooks are this checkout's.
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "SCHEMATHESIS_HOOKS": HOOKS, "LORAGATE_ST_MODELS": args.models,
           "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])}
    cmd = command(args, config)
    shown = [part if not part.startswith("Authorization:") else "Authorization: Bearer ***" for part in cmd]
    print("$ " + " ".join(shown), flush=True)
    with (report / "output.txt").open("w") as output:
        try:
            done = subprocess.run(cmd, env=env, cwd=report, stdout=output, stderr=subprocess.STDOUT, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            output.write(f"\nloragate: the run did not finish within {args.timeout:g}s\n")
            return 124
    return done.returncode


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
