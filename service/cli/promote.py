"""`loragate promote`: an evaluation gate in front of a route's progressive rollout.

    loragate promote --route NAME --candidate ADAPTER --dataset FILE [--measure M ...]
        [--tolerance X | --tolerance MEASURE=X ...] [--steps 5,25,50,100] [--min-samples N]
        [--min-interval-s SECONDS] [--out DIR] [--json]

Runs `loragate eval` (constrained triage, through the served API) on the route's control and the
candidate, one after the other on the same tickets, and decides with `service.evaluation.gate`
whether the candidate is not worse on every measure. The gate's report is stored on the server
(POST /admin/routes/NAME/gate-reports: a file in the store and a `route_gate` audit entry naming
it), pass or refuse; a pass starts the rollout (POST /admin/routes/NAME/rollout?gate_report=ID, so
the rollout's audit entry names the report too).

Exit status: 0 the rollout started; 1 the gate refused the candidate (the reasons are printed);
2 a usage or dataset error; 3 the server could not be reached or refused a request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from service.cli import rollout
from service.cli.client_auth import add_key_option, bearer_headers

DEFAULT_URL = "http://127.0.0.1:8000"
MEASURES = ("category_accuracy", "priority_accuracy", "schema_valid_rate", "urgent_recall")  # gate.GATE_MEASURES


class ServerError(Exception):
    """The server could not be reached or refused a request (exit 3)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loragate promote",
        description="Evaluate ADAPTER against the route's control on a labelled dataset through the served API, "
        "and start the route's progressive rollout of ADAPTER only when it is not worse on every measure: its "
        "point estimate >= the control's minus the tolerance (95% intervals reported with each figure). "
        "The report is stored on the server beside its audit entry. Exit 0: rollout started; 1: refused; "
        "2: usage or dataset error; 3: server error.")
    parser.add_argument("--route", required=True, help="The route whose control the candidate must match.")
    parser.add_argument("--candidate", required=True, metavar="ADAPTER", help="The registered adapter to promote.")
    parser.add_argument("--dataset", required=True, type=Path, help="Labelled tickets (JSON lines, as `loragate eval`).")
    parser.add_argument("--measure", action="append", metavar="M",
                        help=f"A measure of the gate (repeat or comma-separate; default all: {', '.join(MEASURES)}).")
    parser.add_argument("--tolerance", action="append", default=[], metavar="X|MEASURE=X",
                        help="How far below the control the candidate may be (0-1, default 0): one value for every "
                        "measure, or MEASURE=X for one (repeat).")
    parser.add_argument("--steps", metavar="P,P,...", help=f"Rollout steps (default {rollout.DEFAULT_STEPS}).")
    parser.add_argument("--min-samples", type=int, metavar="N", help="Rollout: candidate requests per step.")
    parser.add_argument("--min-interval-s", type=float, metavar="SECONDS", help="Rollout: seconds a step lasts at least.")
    parser.add_argument("--url", default=os.environ.get("LORAGATE_URL", DEFAULT_URL),
                        help=f"Service base URL (default $LORAGATE_URL or {DEFAULT_URL}).")
    add_key_option(parser, admin=True)
    parser.add_argument("--out", type=Path, help="Folder of the evaluation's report (default eval-results/<UTC>-promote/).")
    parser.add_argument("--limit", type=int, help="Use the first N tickets.")
    parser.add_argument("--concurrency", type=int, default=4, help="Requests in flight at once (default 4).")
    parser.add_argument("--timeout", type=float, default=300.0, help="Seconds per request (default 300).")
    parser.add_argument("--wait", type=float, default=600.0, help="Seconds to wait for /health/ready (default 600).")
    parser.add_argument("--json", action="store_true", help="Print the gate's report as JSON.")
    return parser


def measures_of(args: argparse.Namespace) -> dict[str, float]:
    """Measure -> tolerance from --measure and --tolerance (ValueError with the usage problem)."""
    named = [m.strip() for text in (args.measure or [",".join(MEASURES)]) for m in text.split(",") if m.strip()]
    unknown = [m for m in named if m not in MEASURES]
    if unknown or not named:
        raise ValueError(f"--measure {', '.join(unknown) or '(none)'}: choose from {', '.join(MEASURES)}")
    default, specific = 0.0, {}
    for text in args.tolerance:
        measure, sep, value = text.rpartition("=")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"--tolerance {text!r}: expected a number in 0..1 or MEASURE=X") from None
        if not 0 <= number <= 1:
            raise ValueError(f"--tolerance {text!r}: must be in 0..1 (a share, e.g. 0.02)")
        if not sep:
            default = number
        elif measure not in named:
            raise ValueError(f"--tolerance {text!r}: {measure!r} is not a measure of this gate ({', '.join(named)})")
        else:
            specific[measure] = number
    return {m: specific.get(m, default) for m in dict.fromkeys(named)}


def rollout_body(args: argparse.Namespace) -> dict[str, Any]:
    try:
        steps = [int(part) for part in (args.steps or rollout.DEFAULT_STEPS).split(",")]
    except ValueError:
        raise ValueError(f"--steps {args.steps!r}: expected whole percents separated by commas") from None
    body: dict[str, Any] = {"candidate": args.candidate, "steps": steps}
    if args.min_samples is not None:
        body["min_samples"] = args.min_samples
    if args.min_interval_s is not None:
        body["min_interval_s"] = args.min_interval_s
    return body


def control_of(route: dict[str, Any]) -> str:
    """The target a rollout would start against: the control, or a completed rollout's candidate."""
    spec, state = route.get("spec") or {}, route.get("rollout") or {}
    if state.get("status") == "completed" and spec.get("rollout"):
        return str(spec["rollout"]["candidate"])
    return str(spec["variants"][0]["target"])


def _checked(response: httpx.Response, what: str) -> dict[str, Any]:
    if response.status_code >= 400:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text.strip() or response.reason_phrase
        raise ServerError(f"{what}: {response.status_code} {message}")
    return response.json()


def run(argv: list[str], transport: httpx.MockTransport | None = None) -> int:
    """Run `loragate promote`; `transport` replaces the network for every request (tests)."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        measures, body = measures_of(args), rollout_body(args)
    except ValueError as exc:
        parser.error(str(exc))
    for name, value in (("--limit", args.limit), ("--concurrency", args.concurrency)):
        if value is not None and value < 1:
            parser.error(f"{name} must be at least 1")
    # Imported here: `loragate --help` stays fast.
    from service.evaluation.dataset import DatasetError
    from service.evaluation.gate import decide

    path = f"/admin/routes/{quote(args.route, safe='')}"
    try:
        with httpx.Client(base_url=args.url, headers=bearer_headers(args.api_key), timeout=120,
                          transport=transport) as client:
            control = control_of(_checked(client.get(path), f"route {args.route}"))
            if control == args.candidate:
                parser.error(f"{args.candidate} is the route's control already: promote another adapter")
            report = _evaluate(args, control, transport)
            gate = decide(report, args.route, args.candidate, control, measures,  # type: ignore[arg-type]
                          command=_command(argv))
            stored = _checked(client.post(f"{path}/gate-reports", json=gate.model_dump(mode="json")),
                              "storing the gate report")
            _print(gate, stored, args.json)
            if not gate.passed:
                print(f"\nrefused: {args.candidate} is worse than {control}; no rollout started "
                      f"(report {stored['path']} on the server)", file=sys.stderr)
                return 1
            route = _checked(client.post(f"{path}/rollout", params={"gate_report": stored["id"]}, json=body),
                             "starting the rollout")
    except DatasetError as exc:
        print(f"loragate promote: {exc}", file=sys.stderr)
        return 2
    except (ServerError, httpx.HTTPError) as exc:
        print(f"loragate promote: {exc}", file=sys.stderr)
        return 3
    if not args.json:
        print("\n" + rollout.format_rollout(route))
    return 0


def _evaluate(args: argparse.Namespace, control: str, transport: httpx.MockTransport | None) -> Any:  # noqa: ANN401
    from service.evaluation.client import ServiceUnreachable
    from service.evaluation.report import summary_table, write_report
    from service.evaluation.runner import EvalConfig, log, run_eval

    config = EvalConfig(dataset=args.dataset, targets=[control, args.candidate], url=args.url, limit=args.limit,
                        concurrency=args.concurrency, modes=["constrained"], api_key=args.api_key,
                        timeout_s=args.timeout, ready_wait_s=args.wait,
                        command=shlex.join(["loragate", "eval", "--dataset", str(args.dataset), "--targets",
                                            f"{control},{args.candidate}", "--modes", "constrained"]))
    try:
        report = asyncio.run(run_eval(config, transport))
    except ServiceUnreachable as exc:
        raise ServerError(str(exc)) from None
    out = args.out or Path("eval-results") / (datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-promote")
    for written in write_report(report, out):
        log(f"wrote {written}")
    print(summary_table(report), file=sys.stderr)
    return report


def _command(argv: list[str]) -> str:
    shown = ["***" if i and argv[i - 1] == "--api-key" else a for i, a in enumerate(argv)]
    return shlex.join(["loragate", "promote", *("--api-key=***" if a.startswith("--api-key=") else a for a in shown)])


def _print(gate: Any, stored: dict[str, Any], as_json: bool) -> None:  # noqa: ANN401
    if as_json:
        print(json.dumps(stored, indent=2))
        return
    verdict = "PASSED" if gate.passed else "REFUSED"
    print(f"Evaluation gate {verdict}: {gate.candidate} vs {gate.control} (the control of route {gate.route}) "
          f"on {gate.dataset}, n={gate.n}")
    print(f"  rule: {gate.rule}")
    for verdict_line in gate.measures:
        print(f"  {'ok  ' if verdict_line.passed else 'FAIL'} {verdict_line.statement}")
    for reason in gate.reasons:
        if not any(reason == m.statement for m in gate.measures):
            print(f"  FAIL {reason}")
    print(f"  report: {stored['path']} (id {stored['id']})")
