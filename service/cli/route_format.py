"""How `loragate routes` prints routes and reports (pure: the server's JSON in, text out)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any


def _table(headers: list[str], rows: list[list[str]], right: set[int] | None = None) -> list[str]:
    right = right if right is not None else set(range(1, len(headers)))
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(cell.rjust(w) if i in right else cell.ljust(w)
                         for i, (cell, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(row) for row in rows)]


def _number(value: Any, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def _percent(value: Any) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _seconds(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _weight(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def format_route_list(payload: dict[str, Any]) -> str:
    routes = payload.get("data", [])
    if not routes:
        return "no routes"
    rows = []
    for route in routes:
        spec = route.get("spec", {})
        variants = " ".join(f"{v['target']}={_weight(v['weight'])}" for v in spec.get("variants", []))
        shadow = spec.get("shadow")
        guard = spec.get("guard")
        rows.append([
            route.get("name", "?"), str(route.get("version", "")), variants,
            f"{shadow['target']} ({shadow['fraction'] * 100:g}%)" if shadow else "-",
            "yes" if guard else "-",
            ", ".join(sorted(route.get("rollbacks") or {})) or "-",
        ])
    return "\n".join(_table(["ROUTE", "VERSION", "VARIANTS (first = control)", "SHADOW", "GUARD", "ROLLED BACK"],
                            rows, right={1}))


def _figure_rows(variants: list[dict[str, Any]], *, shadow: bool) -> list[list[str]]:
    rows = []
    for v in variants:
        name = v["variant"]
        if shadow:
            name = f"{name} (shadow)"
        elif v.get("control"):
            name = f"{name} (control)"
        if v.get("rolled_back"):
            name += " [rolled back]"
        rows.append([
            name, str(v["requests"]), str(v["errors"]), _percent(v.get("error_rate")),
            _seconds(v.get("latency_p50_s")), _seconds(v.get("latency_p95_s")),
            _seconds(v.get("ttft_p50_s")), _seconds(v.get("ttft_p95_s")),
            _number(v.get("mean_prompt_tokens")), _number(v.get("mean_completion_tokens")),
            str(v.get("structured_requests", 0)), _percent(v.get("structured_valid_rate")),
        ])
    return rows


def format_report(report: dict[str, Any]) -> str:
    """A route report (GET /admin/routes/NAME/report) as readable text."""
    generated = datetime.fromtimestamp(report["generated_at"], tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    confidence = f"{report.get('confidence', 0.95) * 100:g}%"
    version = f" v{report['version']}" if report.get("version") is not None else ""
    source = f"; figures: {report['source']}" if report.get("source") else ""
    lines = [
        f"Route {report['route']}{version}: last {report['window_seconds']:g} s (until {generated}), "
        f"control {report.get('control') or '-'}{source}",
        "",
    ]
    headers = ["VARIANT", "REQUESTS", "ERRORS", "ERROR %", "P50", "P95", "TTFT P50", "TTFT P95",
               "PROMPT TOK", "COMPL TOK", "STRUCTURED", "VALID %"]
    rows = _figure_rows(report.get("variants", []), shadow=False)
    rows += _figure_rows(report.get("shadows", []), shadow=True)
    lines += _table(headers, rows)

    labelled = [(v, v.get("shadow", False)) for v in [*report.get("variants", []), *report.get("shadows", [])]
                if v.get("labels")]
    if labelled:
        lines += ["", "Outcomes (share of decisions):"]
        for v, shadow in labelled:
            lines.append(f"  {v['variant']}{' (shadow)' if shadow else ''}, {v.get('outcomes', 0)} decisions")
            for key, dist in v["labels"].items():
                parts = ", ".join(f"{value} {count} ({dist['shares'][value] * 100:.0f}%)"
                                  for value, count in dist["counts"].items())
                lines.append(f"    {key}: {parts}")

    agreeing = [v for v in report.get("shadows", []) if v.get("agreement")]
    if agreeing:
        lines += ["", f"Shadow agreement with the control's decision on the same request ({confidence} intervals):"]
        for v in agreeing:
            parts = ", ".join(f"{key} {a['rate'] * 100:.1f}% of {a['pairs']} "
                              f"({a['low'] * 100:.1f}-{a['high'] * 100:.1f}%)" for key, a in v["agreement"].items())
            lines.append(f"  {v['variant']}: {parts}")

    comparisons = report.get("comparisons", [])
    if comparisons:
        lines += ["", f"Differences from the control {report.get('control')} ({confidence} confidence intervals):"]
        for comparison in comparisons:
            shadow = " (shadow)" if comparison.get("shadow") else ""
            significant = sum(1 for metric in comparison.get("metrics", []) if metric.get("significant"))
            summary = f"{significant} significant difference{'s' if significant > 1 else ''}" if significant \
                else comparison["verdict"]
            lines.append(f"  {comparison['variant']}{shadow}: {summary}")
            for metric in comparison.get("metrics", []):
                mark = "*" if metric.get("significant") else " "
                lines.append(f"    {mark} {metric['verdict']}")
        lines.append("  (* the interval excludes 0)")

    rollbacks = report.get("rollbacks") or {}
    if rollbacks:
        lines += ["", "Rolled back by the guard:"]
        lines += [f"  {variant}: {reason}" for variant, reason in sorted(rollbacks.items())]
    return "\n".join(lines)
