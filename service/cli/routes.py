"""`loragate routes ...`: A/B routes through the admin API of a running server.

    loragate routes list
    loragate routes show NAME
    loragate routes set NAME --variant triage-v1=90 --variant triage-v2=10 \\
        [--shadow triage-v3 --shadow-fraction 0.1] [--guard-max-error-rate 0.05 ...] [--clear-guard]
        [--file spec.json]
    loragate routes delete NAME
    loragate routes report NAME [--window SECONDS] [--json]
    loragate routes rollout NAME --candidate ADAPTER [--steps 5,25,50,100 ...] | pause|resume|abort|status NAME

`set` changes only what its options name: it reads the route and, when it exists, sends a JSON
merge patch (PATCH) of those fields, so `--guard-min-samples 50` keeps the guard's thresholds and
`--variant` options replace the variants alone; `--clear-guard` / `--clear-shadow` remove them. A
route that does not exist yet is created (PUT) from the options. With --file the file is the
whole route (PUT replaces it), with the options replacing its variants or shadow and overriding
its guard fields.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from service.cli import rollout
from service.cli.client_auth import add_key_option, bearer_headers
from service.cli.route_format import format_report, format_route_list

DEFAULT_URL = "http://127.0.0.1:8000"

# option dest -> guard field in the route spec
GUARD_OPTIONS = {
    "guard_max_error_rate": "max_error_rate",
    "guard_max_invalid_rate": "max_invalid_rate",
    "guard_max_p95_ratio": "max_p95_latency_ratio",
    "guard_max_needs_review_rate": "max_needs_review_rate",
    "guard_min_shadow_agreement": "min_shadow_agreement",
    "guard_min_samples": "min_samples",
    "guard_window": "window_s",
}


class UsageError(Exception):
    """A command line the server need not see (exit 2)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loragate routes", description="Manage A/B routes on a running loragate.")
    parser.add_argument("--url", default=os.environ.get("LORAGATE_URL", DEFAULT_URL),
                        help=f"Server base URL (default $LORAGATE_URL or {DEFAULT_URL}).")
    add_key_option(parser, admin=True)
    commands = parser.add_subparsers(dest="command", required=True)

    listing = commands.add_parser("list", help="List routes.")
    listing.add_argument("--json", action="store_true", help="Print the server's JSON.")

    show = commands.add_parser("show", help="Show one route (spec, version, rollbacks) as JSON.")
    show.add_argument("name")

    put = commands.add_parser("set", help="Create a route or change what the options name.",
                              description="Create a route, or change only what the options name (PATCH); "
                              "the first --variant is the control.")
    put.add_argument("name")
    put.add_argument("--variant", action="append", default=[], metavar="TARGET=WEIGHT",
                     help="A variant: the base model or an adapter and its relative weight (repeat; first = control).")
    put.add_argument("--shadow", metavar="TARGET", help="Mirror a fraction of requests to this target.")
    put.add_argument("--shadow-fraction", type=float, metavar="F", help="Share of requests mirrored (0 < F <= 1).")
    put.add_argument("--clear-shadow", "--no-shadow", dest="no_shadow", action="store_true",
                     help="Remove the route's shadow.")
    put.add_argument("--guard-max-error-rate", type=float, metavar="X",
                     help="Roll back above this share of server errors (5xx, 0-1).")
    put.add_argument("--guard-max-invalid-rate", type=float, metavar="X",
                     help="Roll back above this share of invalid structured replies (0-1).")
    put.add_argument("--guard-max-p95-ratio", type=float, metavar="X",
                     help="Roll back when p95 latency exceeds X times the control's.")
    put.add_argument("--guard-max-needs-review-rate", type=float, metavar="X",
                     help="Roll back above this share of triage decisions flagged for review (0-1).")
    put.add_argument("--guard-min-shadow-agreement", type=float, metavar="X",
                     help="Roll back below this share of mirrored requests (--shadow is the variant) labelled as "
                     "the control labelled them, per label (0-1).")
    put.add_argument("--guard-min-samples", type=int, metavar="N", help="Requests a variant needs before it is judged.")
    put.add_argument("--guard-window", type=float, metavar="SECONDS", help="Window of recent requests judged.")
    put.add_argument("--clear-guard", "--no-guard", dest="no_guard", action="store_true",
                     help="Remove the route's guard.")
    put.add_argument("--file", type=Path,
                     help="The whole route spec JSON (same shape as the PUT body): replaces the route.")

    delete = commands.add_parser("delete", help="Delete a route.")
    delete.add_argument("name")

    report = commands.add_parser("report", help="Per-variant figures and differences with confidence intervals.")
    report.add_argument("name")
    report.add_argument("--window", type=float, metavar="SECONDS",
                        help="Report over the last SECONDS (default: the server's stats window).")
    report.add_argument("--json", action="store_true", help="Print the report's JSON instead of a table.")
    rollout.add_parser(commands)
    return parser


# --------------------------------------------------------------------------------------------
# the PUT body
# --------------------------------------------------------------------------------------------


def _variant(text: str) -> dict[str, Any]:
    target, sep, weight = text.rpartition("=")
    if not sep or not target.strip():
        raise UsageError(f"--variant {text!r}: expected TARGET=WEIGHT, e.g. triage-v1=90")
    try:
        value = float(weight)
    except ValueError:
        raise UsageError(f"--variant {text!r}: weight {weight!r} is not a number") from None
    if not math.isfinite(value):
        raise UsageError(f"--variant {text!r}: weight must be a finite number")
    return {"target": target.strip(), "weight": int(value) if value.is_integer() else value}


def route_spec(args: argparse.Namespace) -> dict[str, Any]:
    """The PUT body of `set` from --file and the options (raises UsageError; the options were
    checked by `_check_set_options`)."""
    spec: dict[str, Any] = {"variants": [], "shadow": None, "guard": None}
    if args.file is not None:
        try:
            loaded = json.loads(args.file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsageError(f"--file: cannot read {args.file}: {exc.strerror or exc}") from None
        except json.JSONDecodeError as exc:
            raise UsageError(f"--file: {args.file} is not JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise UsageError(f"--file: {args.file} must hold a JSON object")
        spec.update(loaded)
    if args.variant:
        spec["variants"] = [_variant(text) for text in args.variant]
    if not spec.get("variants"):
        raise UsageError("give at least one --variant TARGET=WEIGHT (or --file with variants)")

    if args.no_shadow:
        spec["shadow"] = None
    elif args.shadow is not None:
        spec["shadow"] = {"target": args.shadow, "fraction": args.shadow_fraction}
    elif args.shadow_fraction is not None:
        if not isinstance(spec.get("shadow"), dict):
            raise UsageError("--shadow-fraction needs --shadow TARGET")
        spec["shadow"] = {**spec["shadow"], "fraction": args.shadow_fraction}

    guard = {field: getattr(args, dest) for dest, field in GUARD_OPTIONS.items() if getattr(args, dest) is not None}
    if args.no_guard:
        spec["guard"] = None
    elif guard:
        spec["guard"] = {**(spec.get("guard") or {}), **guard}
    return spec


def route_patch(args: argparse.Namespace, current: dict[str, Any]) -> dict[str, Any]:
    """The merge patch of `set` on the existing route `current` (its spec): only what the
    options name (raises UsageError)."""
    patch: dict[str, Any] = {}
    if args.variant:
        patch["variants"] = [_variant(text) for text in args.variant]
    if args.no_shadow:
        patch["shadow"] = None
    elif args.shadow is not None:
        patch["shadow"] = {"target": args.shadow, "fraction": args.shadow_fraction}
    elif args.shadow_fraction is not None:
        if not current.get("shadow"):
            raise UsageError(f"route {args.name} has no shadow: --shadow-fraction needs --shadow TARGET")
        patch["shadow"] = {"fraction": args.shadow_fraction}
    guard = {field: getattr(args, dest) for dest, field in GUARD_OPTIONS.items() if getattr(args, dest) is not None}
    if args.no_guard:
        patch["guard"] = None
    elif guard:
        patch["guard"] = guard
    return patch


def _check_set_options(args: argparse.Namespace) -> None:
    """What `set` refuses whatever the route's state (raises UsageError)."""
    for text in args.variant:
        _variant(text)
    if args.no_shadow and (args.shadow or args.shadow_fraction is not None):
        raise UsageError("--clear-shadow cannot be combined with --shadow/--shadow-fraction")
    if args.shadow is not None and args.shadow_fraction is None:
        raise UsageError("--shadow needs --shadow-fraction (the share of requests mirrored, e.g. 0.1)")
    if args.no_guard and any(getattr(args, dest) is not None for dest in GUARD_OPTIONS):
        raise UsageError("--clear-guard cannot be combined with --guard-* options")
    named = (args.variant or args.shadow or args.shadow_fraction is not None or args.no_shadow or args.no_guard
             or args.file is not None or any(getattr(args, dest) is not None for dest in GUARD_OPTIONS))
    if not named:
        raise UsageError("nothing to set: give --variant TARGET=WEIGHT, --shadow, --guard-* or --file")


def _set(client: httpx.Client, path: str, args: argparse.Namespace) -> httpx.Response:
    """PUT with --file or for a new route, else PATCH of what the options name."""
    if args.file is not None:
        return client.put(path, json=route_spec(args))
    current = client.get(path)
    if current.status_code == 404:
        return client.put(path, json=route_spec(args))  # a new route: its variants are required
    if current.status_code >= 400:
        return current
    patch = route_patch(args, current.json().get("spec") or {})
    return client.patch(path, content=json.dumps(patch), headers={"content-type": "application/merge-patch+json"})


# --------------------------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------------------------


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text.strip() or response.reason_phrase


def run(argv: list[str], transport: httpx.BaseTransport | None = None) -> int:
    """Run one `loragate routes` command; `transport` replaces the network (tests)."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "set":
            _check_set_options(args)
            if args.file is not None:
                route_spec(args)  # the file is read and checked before any request
        elif args.command == "rollout":
            rollout.check(args)  # sets args.name
    except (UsageError, rollout.RolloutUsageError) as exc:
        parser.error(str(exc))  # exits with status 2
    if getattr(args, "window", None) is not None and args.window <= 0:
        parser.error("--window must be positive")
    path = f"/admin/routes/{quote(args.name, safe='')}" if hasattr(args, "name") else "/admin/routes"
    with httpx.Client(base_url=args.url, headers=bearer_headers(args.api_key), timeout=120,
                      transport=transport) as client:
        try:
            if args.command in ("list", "show"):
                response = client.get(path)
            elif args.command == "rollout":
                response = rollout.request(client, path, args)
            elif args.command == "set":
                try:
                    response = _set(client, path, args)
                except UsageError as exc:
                    parser.error(str(exc))
            elif args.command == "delete":
                response = client.delete(path)
            else:
                params = {"window_seconds": f"{args.window:g}"} if args.window is not None else None
                response = client.get(f"{path}/report", params=params)
        except httpx.HTTPError as exc:
            print(f"error: cannot reach {args.url}: {exc}", file=sys.stderr)
            return 1
    if response.status_code >= 400:
        print(f"error ({response.status_code}): {_error_message(response)}", file=sys.stderr)
        return 1
    if args.command == "delete":
        print(f"deleted route {args.name}")
        return 0
    try:
        payload = response.json()
    except ValueError:
        print(f"error: the server answered {response.status_code} without JSON", file=sys.stderr)
        return 1
    if args.command == "list" and not args.json:
        print(format_route_list(payload))
    elif args.command == "report" and not args.json:
        print(format_report(payload))
    elif args.command == "rollout" and not args.json:
        print(rollout.format_rollout(payload))
    else:
        print(json.dumps(payload, indent=2))
    return 0
