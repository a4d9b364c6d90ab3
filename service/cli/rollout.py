"""`loragate routes rollout ...`: a route's progressive rollout through the admin API.

    loragate routes rollout NAME --candidate ADAPTER [--steps 5,25,50,100] [--min-samples 50]
        [--min-interval-s 300]
    loragate routes rollout pause|resume|abort|status NAME

The first form (re)starts a rollout at its first step (POST /admin/routes/NAME/rollout); the
others POST /admin/routes/NAME/rollout/ACTION, and `status` reads the route. Each prints the
rollout's state (--json: the route's JSON).
"""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

import httpx

ACTIONS = ("pause", "resume", "abort", "status")
DEFAULT_STEPS = "5,25,50,100"


class RolloutUsageError(Exception):
    """A rollout command line the server need not see (exit 2)."""


def add_parser(commands: Any) -> None:  # noqa: ANN401  (argparse's private subparsers type)
    rollout = commands.add_parser(
        "rollout", help="Start a progressive rollout, or pause|resume|abort|status one.",
        usage="loragate routes rollout NAME --candidate ADAPTER [--steps P,P,...] [--min-samples N] "
        "[--min-interval-s SECONDS] [--json]\n       loragate routes rollout {pause,resume,abort,status} NAME [--json]",
        description="`rollout NAME --candidate ADAPTER` (re)starts a rollout of ADAPTER against the route's control "
        "(its first variant) at the first step; `rollout pause|resume|abort|status NAME` changes or shows it. "
        "A step advances when the guard held over --min-samples candidate requests of the step and "
        "--min-interval-s passed; a guard breach rolls the candidate back to 0.")
    rollout.add_argument("words", nargs="+", metavar="[ACTION] NAME",
                         help=f"The route's name, after an action ({'|'.join(ACTIONS)}) to change or show a rollout.")
    rollout.add_argument("--candidate", metavar="ADAPTER", help="The adapter rolled out (starting a rollout).")
    rollout.add_argument("--steps", metavar="P,P,...", help="The candidate's percent of traffic at each step: "
                         f"strictly increasing, in 1..100, ending at 100 (default {DEFAULT_STEPS}).")
    rollout.add_argument("--min-samples", type=int, metavar="N",
                         help="Candidate requests a step needs before it advances (server default 50).")
    rollout.add_argument("--min-interval-s", type=float, metavar="SECONDS",
                         help="Seconds a step lasts at least (server default 300).")
    rollout.add_argument("--json", action="store_true", help="Print the route's JSON.")


def check(args: argparse.Namespace) -> None:
    """Sets args.name, args.action (None: start) and args.body; raises RolloutUsageError."""
    words = args.words
    if len(words) > 2 or (len(words) == 2 and words[0] not in ACTIONS):
        raise RolloutUsageError(f"expected `rollout NAME --candidate ADAPTER` or `rollout {'|'.join(ACTIONS)} NAME`, "
                                f"got {' '.join(words)!r}")
    args.action, args.name = (words[0], words[1]) if len(words) == 2 else (None, words[0])
    options = args.candidate is not None or args.steps is not None or args.min_samples is not None \
        or args.min_interval_s is not None
    if args.action is not None:
        if options:
            raise RolloutUsageError(f"`rollout {args.action}` takes no --candidate/--steps/--min-* options")
        args.body = None
        return
    if args.candidate is None:
        raise RolloutUsageError("starting a rollout needs --candidate ADAPTER")
    try:
        steps = [int(part) for part in (args.steps or DEFAULT_STEPS).split(",")]
    except ValueError:
        raise RolloutUsageError(f"--steps {args.steps!r}: expected whole percents separated by commas, "
                                "e.g. 5,25,50,100") from None
    args.body = {"candidate": args.candidate, "steps": steps}
    if args.min_samples is not None:
        args.body["min_samples"] = args.min_samples
    if args.min_interval_s is not None:
        args.body["min_interval_s"] = args.min_interval_s


def request(client: httpx.Client, path: str, args: argparse.Namespace) -> httpx.Response:
    if args.action is None:
        return client.post(f"{path}/rollout", json=args.body)
    if args.action == "status":
        return client.get(path)
    return client.post(f"{path}/rollout/{args.action}")


def _when(text: str | None) -> str:
    if not text:
        return "-"
    return datetime.fromisoformat(text.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_rollout(route: dict[str, Any]) -> str:
    """A route's rollout (GET /admin/routes/NAME) as readable text."""
    spec = route.get("spec") or {}
    rollout, state = spec.get("rollout"), route.get("rollout")
    if not rollout or not state:
        return f"route {route.get('name')} has no rollout"
    steps = rollout["steps"]
    control = (spec.get("variants") or [{}])[0].get("target", "?")
    lines = [
        f"Route {route.get('name')} v{route.get('version')}: rollout of {rollout['candidate']} against {control}",
        f"  status     {state['status']}",
        f"  share      {state['step']}% (step {state['step_index'] + 1} of {len(steps)}: "
        f"{' -> '.join(f'{s}%' for s in steps)}), since {_when(state.get('advanced_at'))}",
        f"  a step     needs {rollout['min_samples']} candidate requests with the guard holding, "
        f"and {rollout['min_interval_s']:g} s",
    ]
    if state.get("reason"):
        lines.append(f"  reason     {state['reason']}")
    lines += ["", "History:"]
    for event in state.get("history") or []:
        by = f" by {event['caller']}" if event.get("caller") else ""
        why = f": {event['reason']}" if event.get("reason") else ""
        lines.append(f"  {_when(event['at'])}  {event['transition']:<11} {event['step']:>3}%{by}{why}")
    return "\n".join(lines)
