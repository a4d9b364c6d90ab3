"""The soak's pure parts: what each request's outcome is, the figures over the run (p95 per window,
RSS growth after warm-up, open fds), the registry and routes compared across the restart, the
targets, soak.md and soak.png. Nothing here talks to the service, so it is unit-tested with fakes
(tests/unit/test_soak.py)."""

from __future__ import annotations

from collections import Counter
from enum import Enum
from pathlib import Path
from statistics import median
from typing import Any, Literal

from pydantic import BaseModel

from loadtests.common import percentile

MIB = 2**20
# The kinds whose latency the p95-over-time series follows (valid requests that succeeded).
LATENCY_KINDS = ("chat", "stream", "completion", "triage")
# Per-replica state that changes with use, not with registrations: left out of the comparison.
RUNTIME_ADAPTER_FIELDS = frozenset({"resident", "in_flight", "last_used", "load_count"})
RSS_GROWTH_LIMIT = 0.10


class Outcome(str, Enum):
    OK = "ok"  # a valid request that got what it asked for
    FAILED = "failed"  # a valid request that did not: the figure whose target is 0
    REFUSED = "refused"  # a deliberately bad request refused exactly as documented
    WRONG_REFUSAL = "wrong_refusal"  # a bad request accepted, or refused with another status or code
    DISCONNECTED = "disconnected"  # the client left on purpose mid-request: not a failure


class Reply(BaseModel):
    """What came back, as far as the classification needs it."""

    status: int | None = None  # None: no status line arrived (transport error or our own disconnect)
    code: str | None = None  # `error.code` of an error body
    error_shape: bool = False  # the body is {"error": {message, type, param, code}}
    body_problem: str | None = None  # what is wrong with a success body (None: nothing)
    transport_error: str | None = None  # connect/read/protocol error, not one we caused
    disconnected: bool = False  # we closed the connection before the reply ended, on purpose


class Expect(BaseModel):
    """What a request must get: `valid` (one of `ok_statuses` and a sound body), `refusal`
    (exactly `status`, and `code` unless None, in OpenAI's error shape) or `disconnect` (we leave
    mid-request; if the reply was complete first, it is judged as a valid one)."""

    kind: Literal["valid", "refusal", "disconnect"]
    ok_statuses: tuple[int, ...] = (200,)
    status: int | None = None
    code: str | None = None


VALID = Expect(kind="valid")
DISCONNECT = Expect(kind="disconnect")


def refusal(status: int, code: str | None = None) -> Expect:
    return Expect(kind="refusal", status=status, code=code)


def classify(expect: Expect, reply: Reply) -> tuple[Outcome, str]:
    """The outcome and, when it is not the expected one, why. Strict: a valid request succeeds or
    has failed (a 429, a timeout, a reset connection are failures too); only a deliberately bad
    request may be refused, and only with the status and code documented for it."""
    if expect.kind == "refusal":
        if reply.transport_error is not None:
            return Outcome.WRONG_REFUSAL, f"transport error: {reply.transport_error}"
        if reply.status == expect.status and reply.error_shape and expect.code in (None, reply.code):
            return Outcome.REFUSED, ""
        wanted = f"{expect.status} {expect.code or ''}".strip()
        shape = "" if reply.error_shape or reply.status is None or reply.status < 400 else " (not the error shape)"
        return Outcome.WRONG_REFUSAL, f"expected {wanted}, got {reply.status} {reply.code or ''}".strip() + shape
    if expect.kind == "disconnect" and reply.disconnected and reply.transport_error is None:
        # A status line that is not 200 before we left (a stream refused up front) is a failure.
        if reply.status is not None and reply.status != 200:
            return Outcome.FAILED, f"status {reply.status} {reply.code or ''} before the disconnect".strip()
        return Outcome.DISCONNECTED, ""
    ok_statuses = expect.ok_statuses if expect.kind == "valid" else (200,)
    if reply.transport_error is not None:
        return Outcome.FAILED, f"transport error: {reply.transport_error}"
    if reply.status not in ok_statuses:
        return Outcome.FAILED, f"status {reply.status} {reply.code or ''}".strip()
    if reply.body_problem is not None:
        return Outcome.FAILED, reply.body_problem
    return Outcome.OK, ""


class Result(BaseModel):
    """One request of the soak."""

    kind: str  # chat | stream | completion | triage | bad | disconnect | admin | drain | drain-probe | restart
    label: str  # what exactly, e.g. "swap soak-a", "bad: unknown field"
    target: str | None = None
    started_s: float  # since the workload began
    duration_s: float
    outcome: Outcome
    status: int | None = None
    detail: str = ""


class Sample(BaseModel):
    """The service's process tree at one moment."""

    t_s: float  # since the workload began
    rss_bytes: int
    open_fds: int
    processes: int


# ----------------------------------------------------------------------------- figures
def counts(results: list[Result]) -> dict[str, Any]:
    """Requests per kind and outcome, and the figures with targets. The drain probe (a request
    sent after SIGTERM, answered 503 `shutting_down` by contract) is not counted among the 5xx."""
    by_kind: dict[str, Counter[str]] = {}
    for result in results:
        by_kind.setdefault(result.kind, Counter())[result.outcome.value] += 1
    valid = [r for r in results if r.outcome in (Outcome.OK, Outcome.FAILED)]
    failed = [r for r in results if r.outcome is Outcome.FAILED]
    wrong = [r for r in results if r.outcome is Outcome.WRONG_REFUSAL]
    server_errors = [r for r in results if r.status is not None and r.status >= 500 and r.kind != "drain-probe"]
    labels = Counter(r.label for r in results if r.kind in ("admin", "bad"))
    return {
        "requests": len(results),
        "valid_requests": len(valid),
        "valid_failed": len(failed),
        "server_errors_5xx": len(server_errors),
        "refused_as_expected": sum(r.outcome is Outcome.REFUSED for r in results),
        "wrong_refusals": len(wrong),
        "disconnects": sum(r.outcome is Outcome.DISCONNECTED for r in results),
        "by_kind": {kind: dict(counter) for kind, counter in sorted(by_kind.items())},
        "admin_and_bad_labels": dict(sorted(labels.items())),
        # The first few of each, to read without the whole list.
        "failures": [_brief(r) for r in failed[:20]],
        "wrong_refusal_examples": [_brief(r) for r in wrong[:20]],
        "server_error_examples": [_brief(r) for r in server_errors[:20]],
    }


def _brief(result: Result) -> dict[str, Any]:
    return {"kind": result.kind, "label": result.label, "target": result.target, "t_s": round(result.started_s, 1),
            "status": result.status, "detail": result.detail[:300]}


def p95_series(results: list[Result], window_s: float, end_s: float) -> list[dict[str, Any]]:
    """p95 latency of the valid requests that succeeded, per window of `window_s` (by start time),
    per kind and over all of them."""
    series = []
    start = 0.0
    while start < end_s:
        inside = [r for r in results if r.outcome is Outcome.OK and r.kind in LATENCY_KINDS
                  and start <= r.started_s < start + window_s]
        row: dict[str, Any] = {"start_s": round(start, 1), "n": len(inside),
                               "p95_s": _round(percentile([r.duration_s for r in inside], 95))}
        for kind in LATENCY_KINDS:
            row[f"{kind}_p95_s"] = _round(percentile([r.duration_s for r in inside if r.kind == kind], 95))
        series.append(row)
        start += window_s
    return series


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


class Growth(BaseModel):
    """RSS (or fds) after warm-up: the median over the first `span_s` after it (baseline) and over
    the last `span_s` of the run (end); growth = end / baseline - 1; peak over every sample after
    warm-up."""

    warmup_s: float
    span_s: float
    baseline: float | None = None
    end: float | None = None
    peak: float | None = None
    growth: float | None = None  # None: too few samples to say
    peak_growth: float | None = None
    samples: int = 0


def growth(points: list[tuple[float, float]], warmup_s: float, span_s: float) -> Growth:
    """`points` are (t_s, value); the spans may not overlap and each needs at least two samples."""
    after = [(t, v) for t, v in points if t >= warmup_s]
    result = Growth(warmup_s=warmup_s, span_s=span_s, samples=len(after))
    if not after:
        return result
    last = max(t for t, _ in after)
    if last - span_s < warmup_s + span_s:  # the two spans would overlap: too short a run to say
        return result
    first = [v for t, v in after if t < warmup_s + span_s]
    final = [v for t, v in after if t > last - span_s]
    if len(first) < 2 or len(final) < 2:
        return result
    result.baseline, result.end, result.peak = median(first), median(final), max(v for _, v in after)
    if result.baseline > 0:
        result.growth = round(result.end / result.baseline - 1, 4)
        result.peak_growth = round(result.peak / result.baseline - 1, 4)
    return result


# --------------------------------------------------------------------- registry and routes
def registry_state(adapters: dict[str, Any], routes: dict[str, Any]) -> dict[str, Any]:
    """GET /admin/adapters and GET /admin/routes as {name: entry}, without the per-replica runtime
    fields (resident, in_flight, last_used, load_count); everything stored is kept."""
    return {
        "adapters": {entry["adapter"]["name"]: {k: v for k, v in entry.items() if k not in RUNTIME_ADAPTER_FIELDS}
                     for entry in adapters.get("data", [])},
        "routes": {route["name"]: route for route in routes.get("data", [])},
    }


def differences(before: Any, after: Any, path: str = "") -> list[str]:
    """Every place two JSON values differ, as `path: before != after` (missing members named)."""
    if isinstance(before, dict) and isinstance(after, dict):
        found: list[str] = []
        for key in sorted(set(before) | set(after), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in after:
                found.append(f"{where}: missing after the restart")
            elif key not in before:
                found.append(f"{where}: new after the restart")
            else:
                found += differences(before[key], after[key], where)
        return found
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [d for i, (b, a) in enumerate(zip(before, after)) for d in differences(b, a, f"{path}[{i}]")]
    return [] if before == after else [f"{path or '(root)'}: {before!r} != {after!r}"]


# ---------------------------------------------------------------------------- targets
class Target(BaseModel):
    name: str
    target: str
    value: Any
    met: bool


def targets(figures: dict[str, Any]) -> list[Target]:
    """The soak's targets, each met or missed (a figure that could not be measured is missed)."""
    c, rss, drain, registry = figures["counts"], figures["rss"], figures["drain"], figures["registry"]
    rss_growth = rss.get("growth")
    return [
        Target(name="valid requests that failed", target="0", value=c["valid_failed"], met=c["valid_failed"] == 0),
        Target(name="5xx responses", target="0", value=c["server_errors_5xx"], met=c["server_errors_5xx"] == 0),
        Target(name="bad inputs refused other than documented", target="0", value=c["wrong_refusals"],
               met=c["wrong_refusals"] == 0),
        Target(name="RSS growth after warm-up", target=f"< {RSS_GROWTH_LIMIT:.0%}", value=rss_growth,
               met=rss_growth is not None and rss_growth < RSS_GROWTH_LIMIT),
        Target(name="drain: requests in flight completed, exit code 0", target="all, 0",
               value={"completed": drain.get("in_flight_completed"), "exit_code": drain.get("exit_code")},
               met=bool(drain.get("in_flight_completed")) and drain.get("exit_code") == 0),
        Target(name="registry and routes identical after the restart", target="no difference",
               value=registry.get("differences"), met=registry.get("compared", False) and not registry["differences"]),
        Target(name="every kind of traffic and fault exercised", target="each > 0", value=c.get("missing_kinds"),
               met=not c.get("missing_kinds")),
    ]


def missing_kinds(results: list[Result], wanted: tuple[str, ...]) -> list[str]:
    """Labels or kinds of `wanted` that never happened (a soak that skipped them proves nothing)."""
    seen = {r.kind for r in results} | {r.label for r in results}
    return [name for name in wanted if name not in seen]


# ----------------------------------------------------------------------------- writing
def markdown(report: dict[str, Any]) -> str:
    figures, info = report["figures"], report["machine"]
    c, rss, fds = figures["counts"], figures["rss"], figures["fds"]
    lines = [
        "# loragate soak", "",
        f"{report['config']['duration_s']:.0f} s of mixed traffic at concurrency {report['config']['concurrency']} "
        f"on {info['cpu_model']} ({info['nproc']} CPUs), {info['date']}; `{report['command']}`", "",
        f"**{'PASS' if report['passed'] else 'FAIL'}**", "",
        "| target | wanted | value | met |", "| --- | --- | --- | --- |",
    ]
    lines += [f"| {t['name']} | {t['target']} | {_cell(t['value'])} | {'yes' if t['met'] else 'NO'} |"
              for t in report["targets"]]
    lines += [
        "", "## Figures", "",
        f"- requests {c['requests']}: valid {c['valid_requests']} (failed {c['valid_failed']}), bad inputs refused "
        f"as documented {c['refused_as_expected']} (otherwise {c['wrong_refusals']}), disconnects {c['disconnects']}, "
        f"5xx {c['server_errors_5xx']}",
        f"- RSS of the service's process tree: baseline {_mib(rss.get('baseline'))}, end {_mib(rss.get('end'))}, "
        f"peak {_mib(rss.get('peak'))} (growth {_pct(rss.get('growth'))}, peak {_pct(rss.get('peak_growth'))}; "
        f"warm-up {rss['warmup_s']:.0f} s, spans of {rss['span_s']:.0f} s)",
        f"- open file descriptors: baseline {fds.get('baseline')}, end {fds.get('end')}, peak {fds.get('peak')}",
        f"- drain: {_cell(figures['drain'])}",
        f"- restart: ready after {figures['restart'].get('ready_s')} s",
        "", "| kind | " + " | ".join(o.value for o in Outcome) + " |",
        "| --- |" + " --- |" * len(Outcome),
    ]
    for kind, outcomes in c["by_kind"].items():
        lines.append(f"| {kind} | " + " | ".join(str(outcomes.get(o.value, 0)) for o in Outcome) + " |")
    for title, key in (("Failures", "failures"), ("Wrong refusals", "wrong_refusal_examples"),
                       ("5xx", "server_error_examples")):
        if c[key]:
            lines += ["", f"## {title} (first {len(c[key])})", ""] + [f"- {_cell(item)}" for item in c[key]]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|")


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value / MIB:.0f} MiB"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1%}"


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on a server
    import matplotlib.pyplot as plt

    series, samples = report["series"]["p95"], report["series"]["samples"]
    rss = report["figures"]["rss"]
    fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    starts = [row["start_s"] / 60 for row in series]
    for key in ("p95_s", *(f"{kind}_p95_s" for kind in LATENCY_KINDS)):
        values = [row[key] if row[key] is not None else float("nan") for row in series]
        top.plot(starts, values, marker=".", label=key.removesuffix("_p95_s").removesuffix("p95_s") or "all")
    top.set_ylabel("p95 latency (s)")
    top.set_title("p95 latency per window (valid requests that succeeded)")
    top.legend(fontsize=8)
    times = [s["t_s"] / 60 for s in samples]
    middle.plot(times, [s["rss_bytes"] / MIB for s in samples], label="RSS of the process tree")
    middle.axvspan(0, rss["warmup_s"] / 60, color="0.9", label="warm-up")
    if rss.get("baseline"):
        middle.axhline(rss["baseline"] * (1 + RSS_GROWTH_LIMIT) / MIB, color="red", linestyle="--",
                       label=f"baseline + {RSS_GROWTH_LIMIT:.0%}")
    middle.set_ylabel("MiB")
    middle.set_title(f"RSS: growth after warm-up {_pct(rss.get('growth'))}")
    middle.legend(fontsize=8)
    bottom.plot(times, [s["open_fds"] for s in samples], label="open fds")
    bottom.set_ylabel("open fds")
    bottom.set_xlabel("minutes")
    info = report["machine"]
    fig.suptitle(f"loragate soak ({'PASS' if report['passed'] else 'FAIL'}) - {info['cpu_model']} "
                 f"({info['nproc']} CPUs), {info['date']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

