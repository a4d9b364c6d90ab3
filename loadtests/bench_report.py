"""Results of `loragate bench`: the figures per comparison, the targets, bench.md and the charts."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from loadtests.bench_cpu import PhaseCpu
from loadtests.bench_profile import ServerProfile
from loadtests.bench_profile import markdown as profile_markdown

MIB = 2**20


class PhaseStats(BaseModel):
    """One system at one concurrency, over every round (requests sent by the client, timed there)."""

    system: str
    server: str
    concurrency: int
    requests: int = 0
    failed: int = 0
    wrong_length: int = 0  # replies whose completion_tokens differ from the fixed length asked for
    output_tokens: int = 0
    wall_s: float = 0.0
    tokens_per_s: float | None = None
    requests_per_s: float | None = None
    ttft_p50_s: float | None = None
    ttft_p95_s: float | None = None
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    per_round_tokens_per_s: list[float] = Field(default_factory=list)
    peak_rss_mib: float | None = None  # the server's process tree, while this system's phases ran
    schema_valid: int | None = None  # replies that validate against the schema (triage)
    prefix_cache_hit_ratio: float | None = None  # prompt tokens read from the prefix cache / prompt tokens
    errors: list[str] = Field(default_factory=list)  # the first few


class ComparisonResult(BaseModel):
    name: str
    description: str
    rows: list[PhaseStats] = Field(default_factory=list)
    # "<numerator>/<denominator>" -> "c<concurrency>" -> figure -> ratio
    ratios: dict[str, dict[str, dict[str, float | None]]] = Field(default_factory=dict)
    details: dict[str, Any] = Field(default_factory=dict)
    warmup_failed: int = 0
    error: str | None = None

    @property
    def failed(self) -> int:
        return self.warmup_failed + sum(row.failed for row in self.rows) + (1 if self.error else 0)

    def row(self, system: str, concurrency: int) -> PhaseStats | None:
        return next((r for r in self.rows if r.system == system and r.concurrency == concurrency), None)


class Target(BaseModel):
    comparison: str
    name: str
    value: float | None
    op: Literal[">=", "<=", "=="]
    threshold: float
    met: bool | None  # None: not measured (the figure is missing)


class CpuCheck(BaseModel):
    """Who else used the CPU during each measured phase (bench_cpu)."""

    threshold_cores: float
    enforced: bool  # False: `--cpu-check record`, figures only
    passed: bool
    phases: list[PhaseCpu] = Field(default_factory=list)


class BenchReport(BaseModel):
    command: str
    machine: dict[str, Any]
    versions: dict[str, Any]
    config: dict[str, Any]
    servers: dict[str, Any]  # name -> url, ready_s, command (exact argv), layout (bench_layout.ServerLayout)
    comparisons: dict[str, ComparisonResult]
    targets: list[Target]
    failed_requests: int
    all_targets_met: bool
    profiles: dict[str, list[ServerProfile]] = {}  # by comparison, with --profile
    cpu_check: CpuCheck | None = None


# ------------------------------------------------------------------------------- ratios
RATIO_FIGURES = ("tokens_per_s", "requests_per_s", "ttft_p50_s", "ttft_p95_s", "latency_p50_s", "latency_p95_s",
                 "peak_rss_mib")


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def add_ratios(result: ComparisonResult, numerator: str, denominator: str) -> None:
    """numerator / denominator for every figure, at every concurrency both were measured at."""
    table: dict[str, dict[str, float | None]] = {}
    for row in result.rows:
        if row.system != numerator:
            continue
        other = result.row(denominator, row.concurrency)
        if other is not None:
            table[f"c{row.concurrency}"] = {f: _div(getattr(row, f), getattr(other, f)) for f in RATIO_FIGURES}
    result.ratios[f"{numerator}/{denominator}"] = table


# ------------------------------------------------------------------------------ targets
def _target(comparison: str, name: str, value: float | None, op: Literal[">=", "<=", "=="],
            threshold: float) -> Target:
    met = None if value is None else (value >= threshold if op == ">=" else value <= threshold if op == "<="
                                      else value == threshold)
    return Target(comparison=comparison, name=name, value=value, op=op, threshold=threshold, met=met)


# The targets: (comparison, ratio pair, label, ratio field, op, threshold, levels: None = every one).
TARGETS = (
    # Against vLLM's own server in loragate's layout; the `-defaults` legs are context, without a target.
    ("peer-base", "loragate/vllm", "base tokens/s >= 0.97x vLLM same layout without LoRA", "tokens_per_s", ">=",
     0.97, None),
    ("peer-base", "loragate/vllm-lora", "base tokens/s >= 1.1x vLLM same layout with LoRA", "tokens_per_s", ">=",
     1.1, None),
    ("peer-base", "loragate/vllm", "base TTFT p50 <= 1.05x vLLM same layout", "ttft_p50_s", "<=", 1.05, None),
    ("peer-adapter", "loragate/vllm-lora", "adapter tokens/s >= 1.5x vLLM same layout with LoRA", "tokens_per_s",
     ">=", 1.5, ("c8", "c16")),
    ("adapters", "one adapter/base", "adapter tokens/s >= 0.9x loragate base", "tokens_per_s", ">=", 0.9, None),
    ("adapters", "four adapters/one adapter", "four mixed adapters tokens/s >= 0.95x one adapter", "tokens_per_s",
     ">=", 0.95, None),
    ("structured", "constrained/unconstrained", "constrained tokens/s >= 0.97x unconstrained", "tokens_per_s",
     ">=", 0.97, None),
    ("swaps", "with swaps/no swaps", "base latency p95 during swaps <= 1.1x without", "latency_p95_s", "<=", 1.1,
     None),
    ("triage", "loragate/vllm-lora", "triage tickets/min >= 1.3x vLLM same layout with LoRA and the schema",
     "requests_per_s", ">=", 1.3, ("c8",)),
)


# Figures shown beside the targets, without one: (comparison, ratio pair, label, ratio field).
CONTEXT = (
    ("peer-base", "loragate/vllm-defaults", "base tokens/s vs vLLM at its defaults (context)", "tokens_per_s"),
    ("peer-adapter", "loragate/vllm-lora-defaults", "adapter tokens/s vs vLLM + LoRA at its defaults (context)",
     "tokens_per_s"),
    ("triage", "loragate/loragate, no prefix reuse", "triage tickets/min with the prefix cache vs without (context)",
     "requests_per_s"),
    ("triage", "loragate/loragate, no prefix reuse", "triage latency p50 with the prefix cache vs without (context)",
     "latency_p50_s"),
)


def evaluate_targets(comparisons: dict[str, ComparisonResult]) -> list[Target]:
    """The issue's targets, for the comparisons that ran (ratios are loragate / the other side)."""
    targets: list[Target] = []
    for comparison, pair, label, field, op, threshold, levels in TARGETS:
        if (c := comparisons.get(comparison)) is not None:
            for level, r in c.ratios.get(pair, {}).items():
                if levels is not None and level not in levels:
                    continue
                targets.append(_target(c.name, f"{label} ({level})", r[field], op, threshold))
    failed = sum(c.failed for c in comparisons.values())
    targets.append(_target("all", "zero failed requests", float(failed), "==", 0))
    return targets


# ----------------------------------------------------------------------------- markdown
def summary_markdown(report: BenchReport) -> list[str]:
    """Every target's ratio per concurrency level in one table (the README's), then the context rows."""
    levels = sorted({int(level[1:]) for c in report.comparisons.values() for t in c.ratios.values() for level in t})
    head = ["| measure | " + " | ".join(f"c{level}" for level in levels) + " | target |",
            "|---|" + "---:|" * len(levels) + "---|"]
    rows = []
    for comparison, pair, label, field, op, threshold, wanted in TARGETS:
        table = report.comparisons[comparison].ratios.get(pair, {}) if comparison in report.comparisons else {}
        if not table:
            continue
        cells = []
        for level in levels:
            ratio = table.get(f"c{level}", {}).get(field)
            named = wanted is None or f"c{level}" in wanted
            missed = ratio is not None and named and not (ratio >= threshold if op == ">=" else ratio <= threshold)
            cells.append("" if ratio is None else f"**{_x(ratio)} (missed)**" if missed else _x(ratio) if named
                         else f"({_x(ratio)})")
        rows.append(f"| {label.replace(f' {op} {threshold}x', ' vs')} | " + " | ".join(cells)
                    + f" | {op} {threshold}x{'' if wanted is None else ' at ' + ', '.join(wanted)} |")
    for comparison, pair, label, field in CONTEXT:
        table = report.comparisons[comparison].ratios.get(pair, {}) if comparison in report.comparisons else {}
        if table:
            rows.append(f"| {label} | " + " | ".join(_x(table.get(f"c{level}", {}).get(field)) if f"c{level}" in table
                                                     else "" for level in levels) + " | - |")
    return ["## Summary", "", *head, *rows, "", f"Failed requests: {report.failed_requests}.", ""] if rows else []


def _f(value: float | None, scale: float = 1.0, digits: int = 1) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def markdown(report: BenchReport) -> str:
    m, cfg = report.machine, report.config
    lines = [
        "# loragate bench", "",
        f"{m['date']} on {m['cpu_model']} ({m['nproc']} CPUs); vLLM {report.versions.get('vllm')}, "
        f"loragate {report.versions.get('loragate')}. Command: `{report.command}`", "",
        f"Output length fixed at {cfg['max_tokens']} tokens (`min_tokens` = `max_tokens`, `ignore_eos`) except in "
        f"`structured`; {cfg['rounds']} interleaved round(s). Ratios are first system / second system.", "",
    ]
    lines += summary_markdown(report)
    for result in report.comparisons.values():
        lines += [f"## {result.name}", "", result.description, ""]
        if result.error:
            lines += [f"**Failed:** `{result.error}`", ""]
        if result.rows and result.name == "triage":
            lines += triage_table(result)
        elif result.rows:
            lines += ["| system | conc. | requests | failed | tok/s | req/s | TTFT p50 ms | TTFT p95 ms | "
                      "latency p50 ms | latency p95 ms | peak RSS MiB |",
                      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
            for r in result.rows:
                lines.append(f"| {r.system} | {r.concurrency} | {r.requests} | {r.failed} | {_f(r.tokens_per_s)} | "
                             f"{_f(r.requests_per_s, digits=2)} | {_f(r.ttft_p50_s, 1000, 0)} | "
                             f"{_f(r.ttft_p95_s, 1000, 0)} | {_f(r.latency_p50_s, 1000, 0)} | "
                             f"{_f(r.latency_p95_s, 1000, 0)} | {_f(r.peak_rss_mib, digits=0)} |")
            lines.append("")
        for pair, table in result.ratios.items():
            lines += [f"Ratios {pair}:", "", "| conc. | tok/s | req/s | TTFT p50 | TTFT p95 | latency p50 | "
                      "latency p95 | peak RSS |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
            for level, r in table.items():
                lines.append(f"| {level[1:]} | " + " | ".join(_x(r[f]) for f in RATIO_FIGURES) + " |")
            lines.append("")
        notes = result.details.get("notes")
        if notes:
            lines += [f"- {note}" for note in notes] + [""]
        if result.name in report.profiles:
            lines += [profile_markdown(report.profiles[result.name], level=3), ""]
    lines += layout_markdown(report) + cpu_markdown(report.cpu_check)
    lines += ["## Targets", "", "| comparison | target | value | met |", "|---|---|---:|---|"]
    for t in report.targets:
        value = f"{t.value:.0f}" if t.op == "==" and t.value is not None else _x(t.value)
        lines.append(f"| {t.comparison} | {t.name} | {value} | "
                     f"{'yes' if t.met else 'not measured' if t.met is None else '**missed**'} |")
    lines += ["", f"Failed requests: {report.failed_requests}. Figures, samples and settings: `bench.json`."]
    return "\n".join(lines) + "\n"


def triage_table(result: ComparisonResult) -> list[str]:
    lines = ["| system | conc. | tickets | failed | schema-valid | tickets/min | latency p50 ms | latency p95 ms | "
             "prompt tokens from the prefix cache |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result.rows:
        valid = "-" if r.schema_valid is None else f"{r.schema_valid}/{r.requests}"
        cached = "-" if r.prefix_cache_hit_ratio is None else f"{r.prefix_cache_hit_ratio:.0%}"
        lines.append(f"| {r.system} | {r.concurrency} | {r.requests} | {r.failed} | {valid} | "
                     f"{_f(r.requests_per_s, 60)} | {_f(r.latency_p50_s, 1000, 0)} | {_f(r.latency_p95_s, 1000, 0)} | "
                     f"{cached} |")
    return lines + [""]


LAYOUT_ROWS = (("executor", "executor"), ("VLLM_ENABLE_V1_MULTIPROCESSING", "vllm_enable_v1_multiprocessing"),
               ("OMP_NUM_THREADS", "omp_num_threads"), ("torch threads", "torch_threads"),
               ("model threads", "model_threads"),
               ("scheduling", "scheduling_policy"), ("prefix caching", "prefix_caching"),
               ("KV block tokens", "block_size"), ("dtype", "dtype"),
               ("max LoRA rank", "max_lora_rank"), ("KV cache bytes", "kv_cache_bytes"),
               ("max seqs", "max_num_seqs"), ("batched tokens", "max_num_batched_tokens"))


def layout_markdown(report: BenchReport) -> list[str]:
    """One column per server: how it ran the model (commands in bench.json)."""
    named = {name: s["layout"] for name, s in report.servers.items() if isinstance(s, dict) and "layout" in s}
    if not named:
        return []
    lines = ["## Server layouts", "", "| | " + " | ".join(named) + " |", "|---|" + "---|" * len(named)]
    for label, key in LAYOUT_ROWS:
        lines.append(f"| {label} | " + " | ".join("-" if lay.get(key) is None else str(lay[key])
                                                  for lay in named.values()) + " |")
    first = next(iter(named.values()))
    return lines + ["", f"CPU: {first.get('cpu_model')}. Exact command lines and per-process thread counts: "
                        "`bench.json` (`servers`).", ""]


def cpu_markdown(check: CpuCheck | None) -> list[str]:
    if check is None or not check.phases:
        return []
    worst = max(check.phases, key=lambda p: p.top_others[0].cores if p.top_others else 0.0)
    top = worst.top_others[0] if worst.top_others else None
    busiest = f"{top.command} (pid {top.pid}) at {top.cores:.1%} of a core in '{worst.label}'" if top else "none"
    verdict = "passed" if check.passed else "FAILED" if check.enforced else "failed (recorded only)"
    return ["## Other processes during measured phases", "",
            f"{len(check.phases)} phases, idle servers paused; limit {check.threshold_cores:.0%} of a core per "
            f"other process: {verdict}. Busiest other process: {busiest}; other processes together at most "
            f"{max(p.others_cores for p in check.phases):.2f} cores.", ""]


# ------------------------------------------------------------------------------- charts
def plot(result: ComparisonResult, path: Path, subtitle: str) -> None:
    """Throughput, TTFT and latency per system and concurrency (panels without figures are left out)."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a server
    import matplotlib.pyplot as plt

    panels = [(key, title, scale) for key, title, scale in (
        ("tokens_per_s", "output tokens/s", 1.0), ("ttft", "TTFT ms (p50, p95 light)", 1000.0),
        ("latency", "latency ms (p50, p95 light)", 1000.0), ("peak_rss_mib", "peak RSS MiB (process tree)", 1.0),
    ) if any(_value(r, key) is not None for r in result.rows)]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(4.6 * max(1, len(panels)), 4.0), squeeze=False)
    systems = list(dict.fromkeys(r.system for r in result.rows))
    levels = sorted({r.concurrency for r in result.rows})
    width = 0.8 / max(1, len(systems))
    for ax, (key, title, scale) in zip(axes[0], panels):
        for i, system in enumerate(systems):
            xs = [j + (i - (len(systems) - 1) / 2) * width for j in range(len(levels))]
            rows = [result.row(system, c) for c in levels]
            if key in ("ttft", "latency"):
                p95 = [(getattr(r, f"{key}_p95_s") or 0) * scale if r else 0 for r in rows]
                ax.bar(xs, p95, width, color=f"C{i}", alpha=0.35)
            values = [(_value(r, key) or 0) * scale if r else 0 for r in rows]
            ax.bar(xs, values, width, color=f"C{i}", label=system)
        ax.set_xticks(range(len(levels)), [f"c={c}" for c in levels])
        ax.set_title(title, fontsize=10)
        if key == "tokens_per_s" and result.ratios:  # the first pair's ratios, where they were measured
            pair, table = next(iter(result.ratios.items()))
            shown = ", ".join(f"{_x(r['tokens_per_s'])}" for r in table.values())
            ax.set_title(f"{title}\n{pair}: {shown}", fontsize=9)
    if not panels:
        axes[0][0].text(0.5, 0.5, result.error or "no figures", ha="center", va="center", wrap=True)
        axes[0][0].set_axis_off()
    else:
        axes[0][0].legend(fontsize=8)
    fig.suptitle(f"loragate bench: {result.name} - {subtitle}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _value(row: PhaseStats | None, key: str) -> float | None:
    if row is None:
        return None
    if key in ("ttft", "latency"):
        return getattr(row, f"{key}_p50_s")
    return getattr(row, key)


def write(report: BenchReport, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "bench.json", out_dir / "bench.md"]
    written[0].write_text(report.model_dump_json(indent=2) + "\n")
    written[1].write_text(markdown(report))
    subtitle = f"{report.machine['cpu_model']} ({report.machine['nproc']} CPUs), {report.machine['date']}"
    for name, result in report.comparisons.items():
        path = out_dir / f"bench-{name}.png"
        plot(result, path, subtitle)
        written.append(path)
    return written
