"""`loragate eval`: measure what a running service serves, per target, through its HTTP API."""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
from pathlib import Path

from service.cli.client_auth import add_key_option
from service.evaluation.client import ServiceUnreachable
from service.evaluation.dataset import DatasetError
from service.evaluation.results import TRIAGE_MODES, EvalReport

DEFAULT_URL = "http://127.0.0.1:8000"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loragate eval",
        description="Send every labelled ticket to each target of a running loragate, through "
        "POST /v1/tickets/triage (constrained decoding) and POST /v1/chat/completions with the same "
        "prompt (unconstrained), and report validity, accuracy, macro-F1, confusion matrices, "
        "routing and escalation figures, latency and tokens per target and mode. With --voice, score "
        "plain chat replies to customer messages for the brand's style, relative to the base model.",
    )
    parser.add_argument("--dataset", required=True, type=Path,
                        help="JSON lines: subject, body, category, priority (or expected_category/"
                        "expected_priority), optional customer_tier, channel, metadata, id. With --voice: "
                        "message and optional reference reply.")
    parser.add_argument("--targets", default="base",
                        help="Comma-separated: `base` (the /v1/models entry without a parent), adapter or "
                        "route names (sent as `model` unchanged). Default: base.")
    parser.add_argument("--url", default=os.environ.get("LORAGATE_URL", DEFAULT_URL),
                        help=f"Service base URL (default $LORAGATE_URL or {DEFAULT_URL}).")
    parser.add_argument("--out", type=Path, help="Output folder (default eval-results/<UTC timestamp>/).")
    parser.add_argument("--limit", type=int, help="Use the first N examples.")
    parser.add_argument("--concurrency", type=int, default=4, help="Requests in flight at once (default 4).")
    parser.add_argument("--max-tokens", type=int,
                        help="max_tokens of chat requests (default 256 for unconstrained triage, 200 with --voice).")
    parser.add_argument("--timeout", type=float, default=300.0, help="Seconds per request (default 300).")
    parser.add_argument("--wait", type=float, default=600.0,
                        help="Seconds to wait, before the first ticket, while GET /health/ready answers "
                        "503 (a service still loading its engine; default 600).")
    parser.add_argument("--modes", default=",".join(TRIAGE_MODES),
                        help="Triage modes, comma-separated: constrained (POST /v1/tickets/triage), "
                        "unconstrained (chat with the same prompt). Default: both.")
    add_key_option(parser, admin=False)
    parser.add_argument("--voice", action="store_true", help="Evaluate brand voice instead of triage.")
    calibrate = parser.add_argument_group(
        "calibration", "Constrained replies that carry label probabilities get a calibration section in "
        "report.md (ECE, reliability diagram, coverage and urgent curves, figures at the served policy) "
        "and a proposed policy: a temperature per field fitted on this run, the largest urgent threshold "
        "with urgent recall >= 80% and over-escalation <= 15%, the smallest review threshold leaving "
        "tickets >= 95% right on category.")
    calibrate.add_argument("--calibrate-out", type=Path, metavar="FILE",
                           help="Write the proposed policy as an adapter's thresholds file (save it as triage_policy.json "
                           "beside the weights; JSON: urgent_threshold, review_threshold, priority_review_threshold, "
                           "temperature, calibrated_on).")
    calibrate.add_argument("--calibrate-target", metavar="NAME",
                           help="The target whose policy --calibrate-out writes (needed with several targets).")
    calibrate.add_argument("--calibrate-priority-review-threshold", type=float, default=0.0, metavar="P",
                           help="priority_review_threshold of the proposed policy, in [0, 1] (default 0.0: "
                           "priority confidence never flags a ticket).")
    return parser


def run(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if not targets:
        parser.error("--targets names no target")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or not set(modes) <= set(TRIAGE_MODES):
        parser.error("--modes takes constrained, unconstrained or both")
    for name, value in (("--limit", args.limit), ("--concurrency", args.concurrency), ("--max-tokens", args.max_tokens),
                        ("--wait", args.wait)):
        if value is not None and value < 1:
            parser.error(f"{name} must be at least 1")
    calibrate_target = _calibrate_target(parser, args, targets, modes)
    # Imported here so `loragate --help` stays fast and the evaluation's imports load only for eval.
    from service.evaluation.report import summary_table, write_report
    from service.evaluation.runner import EvalConfig, default_out_dir, log, run_eval

    shown = [a if not a.startswith("--api-key=") else "--api-key=***" for a in argv]
    shown = ["***" if i and shown[i - 1] == "--api-key" else a for i, a in enumerate(shown)]
    config = EvalConfig(dataset=args.dataset, targets=targets, url=args.url, limit=args.limit,
                        concurrency=args.concurrency, max_tokens=args.max_tokens, voice=args.voice,
                        api_key=args.api_key, timeout_s=args.timeout, modes=modes,
                        ready_wait_s=args.wait,
                        priority_review_threshold=args.calibrate_priority_review_threshold,
                        command=shlex.join(["loragate", "eval", *shown]))
    try:
        report = asyncio.run(run_eval(config))
    except DatasetError as exc:
        print(f"loragate eval: {exc}", file=sys.stderr)
        return 2
    except ServiceUnreachable as exc:
        print(f"loragate eval: {exc}", file=sys.stderr)
        return 1
    out = args.out or default_out_dir()
    for path in write_report(report, out):
        log(f"wrote {path}")
    print(summary_table(report))
    errors = sum(r.metrics.errors for r in report.results)
    if errors:
        log(f"{errors} requests failed; see the Errors section of {out / 'report.md'}")
    if args.calibrate_out is not None and calibrate_target is not None:
        return _write_calibration(report, calibrate_target, args.calibrate_out)
    return 0


def _calibrate_target(parser: argparse.ArgumentParser, args: argparse.Namespace, targets: list[str],
                      modes: list[str]) -> str | None:
    """The target --calibrate-out calibrates on; usage errors before any ticket is sent."""
    if not 0.0 <= args.calibrate_priority_review_threshold <= 1.0:
        parser.error("--calibrate-priority-review-threshold must be in [0, 1]")
    if args.calibrate_out is None:
        if args.calibrate_target:
            parser.error("--calibrate-target needs --calibrate-out")
        return None
    if args.voice or "constrained" not in modes:
        parser.error("--calibrate-out needs the constrained mode of a triage evaluation")
    target = args.calibrate_target or (targets[0] if len(set(targets)) == 1 else None)
    if target is None:
        parser.error("--calibrate-out with several targets needs --calibrate-target NAME")
    if target not in targets:
        parser.error(f"--calibrate-target {target!r} is not one of --targets")
    return target


def _write_calibration(report: EvalReport, target: str, path: Path) -> int:
    from service.evaluation.calibration_report import describe
    from service.evaluation.thresholds import calibration_file

    result = next(r for r in report.results if r.target == target and r.mode == "constrained")
    summary = result.calibration
    if summary is None or summary.choice is None:
        why = "no reply carried probabilities" if summary is None else "; ".join(summary.notes)
        print(f"loragate eval: cannot calibrate {target}: {why}", file=sys.stderr)
        return 1
    thresholds = calibration_file(summary.choice, dataset=report.dataset, sha256=report.dataset_sha256,
                                  n=summary.with_probabilities, date=report.date, target=target)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(thresholds.model_dump_json(indent=2) + "\n")
    print(f"\nCalibrated on {target} ({summary.with_probabilities} replies with probabilities), wrote {path}:")
    for line in describe(summary.choice, bullet="  "):
        print(line)
    return 0
