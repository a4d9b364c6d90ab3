"""Write an evaluation: report.md (tables a person reads), report.json (everything), PNG charts."""

from __future__ import annotations

import re
from pathlib import Path

from service.evaluation import calibration_report, voice
from service.evaluation.formatting import num as _num
from service.evaluation.formatting import pct as _pct
from service.evaluation.formatting import signed as _signed
from service.evaluation.formatting import table as _table
from service.evaluation.results import (
    Confusion,
    EvalReport,
    ModeResult,
    Outcome,
    TriageMetrics,
    VoiceMetrics,
    VoiceOutcome,
)

TRIAGE_COLUMNS = ["target", "mode", "n", "errors", "JSON parse", "schema-valid", "category acc", "priority acc",
                  "category F1", "priority F1", "misrouted /1k", "urgent recall", "urgent missed",
                  "over-esc (/1k)", "under-esc (/1k)", "p50 ms", "p95 ms", "prompt tok", "completion tok"]
VOICE_MEASURES = {"greeting_rate": "greeting", "sign_off_rate": "sign-off",
                  "contractions_per_100_words": "contractions /100w", "exclamation_marks": "! per reply",
                  "slang_words": "slang/forbidden", "words": "words", "answer_share": "facts restated",
                  "reference_f1": "reference F1", "invented_rate": "invented specifics"}
INVALID_SHOWN = 10  # answers that are not schema-valid, quoted per target and mode
INVALID_TAIL_CHARS = 120


def write_report(report: EvalReport, out: Path) -> list[Path]:
    """Write every output file into `out` (created); returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "report.md", out / "report.json"]
    written[0].write_text(markdown(report))
    written[1].write_text(report.model_dump_json(indent=2) + "\n")
    return written + write_charts(report, out)


def summary_table(report: EvalReport) -> str:
    return _voice_table(report) if report.kind == "voice" else _triage_table(report)


def markdown(report: EvalReport) -> str:
    title = "brand voice" if report.kind == "voice" else "ticket triage"
    targets = ", ".join(dict.fromkeys(f"`{r.target}`" + (f" (`{r.model}`)" if r.model != r.target else "")
                                      for r in report.results))
    lines = [
        f"# loragate eval: {title}", "",
        f"- command: `{report.command}`",
        f"- date (UTC): {report.date}; duration {report.duration_s} s",
        f"- URL: {report.url}",
        f"- dataset: `{report.dataset}` (sha256 `{report.dataset_sha256}`), n = {report.n}",
        f"- base model: `{report.base_model}`; targets: {targets}",
        f"- max_tokens: {report.max_tokens}" + ("" if report.kind == "voice" else " (unconstrained chat; the triage "
                                                 "endpoint uses its own budget)") + f"; concurrency: {report.concurrency}",
    ]
    if report.kind == "voice":
        lines += [f"- brand style constants: {report.style_source}", "", summary_table(report), "",
                  "## Relative to the base model (target minus base)", "", _voice_delta_table(report)]
        lines += _invented(report.results)
    else:
        lines += ["", summary_table(report), "",
                  "Rates are over n (errors and invalid outputs count as wrong); constrained = "
                  "`POST /v1/tickets/triage`, unconstrained = `POST /v1/chat/completions` with the same "
                  "prompt, temperature 0, no response_format."]
    lines += _errors(report.results)
    if report.kind == "triage":
        lines += _invalid_answers(report.results)
        lines += _calibration(report.results)
        lines += ["", "## Confusion matrices", "", "Rows: true label; columns: predicted label "
                  "(`(invalid)`: no schema-valid output or an error)."]
        for result in report.results:
            assert isinstance(result.metrics, TriageMetrics)
            for name, confusion in (("category", result.metrics.category_confusion),
                                    ("priority", result.metrics.priority_confusion)):
                lines += ["", f"### {result.target}, {result.mode}: {name}", "", _confusion_table(confusion)]
    lines += ["", "## Definitions", ""]
    if report.kind == "voice":
        lines += ["Each reply:", "", _voice_docs(), "", "Per target:", ""]
    lines += [f"- **{name}**: {text}" for name, text in report.definitions.items()]
    return "\n".join(lines) + "\n"


def _invented(results: list[ModeResult]) -> list[str]:
    """The specifics replies made up (found in neither the message nor the fact sheet), per target."""
    lines = ["", "## Invented specifics", "",
             "Phone numbers, amounts, dates, ids, addresses and durations a reply states that neither the "
             f"message nor the brand's fact sheet does (up to {INVALID_SHOWN} replies per target)."]
    for result in results:
        invented = [(o.id, o.scores["invented"]) for o in result.outcomes
                    if isinstance(o, VoiceOutcome) and o.scores and o.scores.get("invented")]
        lines += ["", f"### {result.target}: {len(invented)} of {len(result.outcomes)} replies", ""]
        lines += [f"- `{example}`: " + ", ".join(f"`{s}`" for s in specifics)
                  for example, specifics in invented[:INVALID_SHOWN]]
    return lines


def _triage_table(report: EvalReport) -> str:
    rows = []
    for r in report.results:
        m = r.metrics
        assert isinstance(m, TriageMetrics)
        rows.append([r.target, r.mode, str(m.n), str(m.errors), _pct(m.json_parse_rate), _pct(m.schema_valid_rate),
                     _pct(m.category_accuracy), _pct(m.priority_accuracy), _num(m.category_macro_f1, 3),
                     _num(m.priority_macro_f1, 3), _num(m.misrouted_per_1000, 0), _pct(m.urgent_recall),
                     str(m.urgent_missed), f"{m.over_escalations} ({_num(m.over_escalations_per_1000, 0)})",
                     f"{m.under_escalations} ({_num(m.under_escalations_per_1000, 0)})",
                     _num(m.latency_p50_ms, 0), _num(m.latency_p95_ms, 0), _num(m.mean_prompt_tokens, 1),
                     _num(m.mean_completion_tokens, 1)])
    return _table(TRIAGE_COLUMNS, rows)


def _voice_table(report: EvalReport) -> str:
    rows = []
    for r in report.results:
        m = r.metrics
        assert isinstance(m, VoiceMetrics)
        values = [_pct(m.measures[k]) if k.endswith("_rate") or k == "answer_share" else _num(m.measures[k], 2)
                  for k in VOICE_MEASURES]
        rows.append([r.target, str(m.n), str(m.errors), *values, _num(m.latency_p50_ms, 0), _num(m.latency_p95_ms, 0),
                     _num(m.mean_prompt_tokens, 1), _num(m.mean_completion_tokens, 1)])
    header = ["target", "n", "errors", *VOICE_MEASURES.values(), "p50 ms", "p95 ms", "prompt tok", "completion tok"]
    return _table(header, rows)


def _voice_delta_table(report: EvalReport) -> str:
    rows = []
    for r in report.results:
        assert isinstance(r.metrics, VoiceMetrics)
        delta = r.metrics.delta_vs_base or {}
        rows.append([r.target, *(_signed(delta.get(k)) for k in VOICE_MEASURES)])
    return _table(["target", *VOICE_MEASURES.values()], rows)


def _voice_docs() -> str:
    """The measure definitions, from the voice module's docstring (documented once)."""
    doc = voice.__doc__ or ""
    return doc[doc.index("- greeting"):].strip() if "- greeting" in doc else doc.strip()


def _errors(results: list[ModeResult]) -> list[str]:
    lines = []
    for r in results:
        for message, count in r.metrics.error_messages.items():
            lines.append(f"- {r.target} {r.mode}: {count} x {message}")
    return ["", "## Errors", "", *lines] if lines else []


def _invalid_answers(results: list[ModeResult]) -> list[str]:
    """The end of each answer that is not schema-valid (errors aside), where a broken one usually
    goes wrong; whole answers are in report.json."""
    lines = []
    for r in results:
        invalid = [o for o in r.outcomes if isinstance(o, Outcome) and not o.schema_valid and o.error is None]
        if invalid:
            lines += ["", f"### {r.target}, {r.mode}: {len(invalid)} of {len(r.outcomes)}", ""]
            lines += [f"- `{o.id}` ({'JSON, not the schema' if o.parsed_json else 'not JSON'}): "
                      f"`...{_one_line(o.output or '')[-INVALID_TAIL_CHARS:]}`" for o in invalid[:INVALID_SHOWN]]
            lines += [f"- ... and {len(invalid) - INVALID_SHOWN} more"] if len(invalid) > INVALID_SHOWN else []
    return ["", "## Answers that are not schema-valid", "", "The last characters of each (all of it in "
            "report.json)."] + lines if lines else []


def _calibration(results: list[ModeResult]) -> list[str]:
    calibrated = [r for r in results if r.calibration is not None]
    if not calibrated:
        return []
    lines = ["", "## Calibration", "", "Constrained replies' label probabilities (`meta.probabilities`), the "
             "decisions taken from them and what other thresholds would have decided on the same replies; "
             "\"fitted T\" columns apply the temperature fitted on this run. Definitions at the end."]
    for r in calibrated:
        assert r.calibration is not None
        lines += calibration_report.section(r.target, r.model, r.calibration, safe_name(r.target))
    return lines


def _one_line(text: str) -> str:
    return text.replace("\n", "\\n").replace("`", "'")  # fits one markdown code span


def _confusion_table(confusion: Confusion) -> str:
    rows = [[label, *map(str, row)] for label, row in zip(confusion.rows, confusion.matrix)]
    return _table(["true \\ predicted", *confusion.columns], rows)


# ------------------------------------------------------------------ charts
def write_charts(report: EvalReport, out: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, never a display
        import matplotlib.pyplot as plt
    except ImportError:
        return []  # matplotlib is optional (test extra): the tables are written regardless
    if report.kind == "voice":
        return [_bars(plt, out / "voice.png", "Brand voice per target",
                      [r.target for r in report.results],
                      {label: [r.metrics.measures.get(key) for r in report.results]  # type: ignore[union-attr]
                       for key, label in (("greeting_rate", "greeting"), ("sign_off_rate", "sign-off"),
                                          ("answer_share", "facts restated"), ("reference_f1", "reference F1"))})]
    written = [_bars(plt, out / "accuracy.png", "Triage accuracy per target and mode",
                     [f"{r.target}\n{r.mode}" for r in report.results],
                     {label: [getattr(r.metrics, key) for r in report.results]
                      for key, label in (("category_accuracy", "category accuracy"),
                                         ("priority_accuracy", "priority accuracy"),
                                         ("schema_valid_rate", "schema-valid rate"))})]
    for r in report.results:
        if r.mode == "constrained":
            assert isinstance(r.metrics, TriageMetrics)
            written.append(_heatmap(plt, out / f"confusion_{safe_name(r.target)}.png",
                                    f"{r.target} ({r.model}): category, constrained", r.metrics.category_confusion))
            if r.calibration is not None:
                named = r.target + (f" ({r.model})" if r.model != r.target else "")
                written += calibration_report.charts(plt, r.calibration, out, safe_name(r.target), named)
    return written


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def _bars(plt, path: Path, title: str, groups: list[str], series: dict[str, list[float | None]]) -> Path:  # noqa: ANN001
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(groups)), 4.5))
    width = 0.8 / max(1, len(series))
    for i, (label, values) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, [v or 0.0 for v in values], width, label=label)  # undefined drawn as 0
    ax.set_xticks(range(len(groups)), groups, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _heatmap(plt, path: Path, title: str, confusion: Confusion) -> Path:  # noqa: ANN001
    fig, ax = plt.subplots(figsize=(7, 5.5))
    image = ax.imshow(confusion.matrix, cmap="Blues")
    ax.set_xticks(range(len(confusion.columns)), confusion.columns, rotation=45, ha="right")
    ax.set_yticks(range(len(confusion.rows)), confusion.rows)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    peak = max((max(row) for row in confusion.matrix), default=0)
    for y, row in enumerate(confusion.matrix):
        for x, count in enumerate(row):
            if count:
                ax.text(x, y, str(count), ha="center", va="center", color="white" if count > peak / 2 else "black")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
