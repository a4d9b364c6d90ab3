"""The calibration part of an evaluation's output: report.md tables, PNG charts, and the lines
`loragate eval --calibrate-out` prints. Figures come from thresholds.CalibrationSummary."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from service.evaluation.calibration import FIELDS, CoveragePoint, UrgentPoint
from service.evaluation.formatting import num, pct, table
from service.evaluation.thresholds import (
    MAX_OVER_ESCALATION,
    MIN_ACCURACY,
    MIN_URGENT_RECALL,
    CalibrationSummary,
    ThresholdChoice,
)

REVIEW_ROWS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99)  # review thresholds in the compact table
URGENT_ROWS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.8)  # urgent thresholds


def chart_files(stem: str) -> dict[str, str]:
    """The PNG names of one target (stem: the target's file-safe name)."""
    return {kind: f"{kind}_{stem}.png" for kind in ("reliability", "coverage", "urgent")}


def section(target: str, model: str, summary: CalibrationSummary, stem: str) -> list[str]:
    """report.md lines for one target's calibration."""
    files, served, choice = chart_files(stem), summary.served, summary.choice
    named = f"`{target}`" + (f" (`{model}`)" if model != target else "")
    lines = ["", f"### {named}", "",
             f"{summary.with_probabilities} of {summary.n} replies carry probabilities. Served policy: "
             + (_policy(served.policy.model_dump()) if served.policy else "not reported") + ".",
             *[f"- note: {note}" for note in summary.notes],
             "", "As served (labels and review flags from the replies):", "",
             table(["coverage (not flagged)", "category acc (not flagged)", "urgent recall", "over-escalation",
                    "ECE category", "ECE priority", "decisions reproduced"],
                   [[f"{pct(served.coverage)} ({served.not_flagged})", pct(served.accuracy_not_flagged),
                     pct(served.urgent_recall), pct(served.over_escalation), num(served.ece["category"], 3),
                     num(served.ece["priority"], 3), pct(served.decisions_reproduced)]])]
    if served.review_reasons:
        lines += ["", "Review reasons: " + ", ".join(f"{reason} {count}" for reason, count in served.review_reasons.items())
                  + "."]
    lines += ["", f"Reliability ({files['reliability']}):", "", f"![reliability]({files['reliability']})", "",
              _bins_table(summary)]
    served_review = served.policy.review_threshold if served.policy else None
    served_urgent = served.policy.urgent_threshold if served.policy else None
    lines += ["", f"Coverage vs accuracy as the review threshold on category confidence moves ({files['coverage']}):",
              "", f"![coverage]({files['coverage']})", "",
              _curve_table("review threshold", REVIEW_ROWS, summary.coverage_curve,
                           choice.coverage_curve if choice else None, _coverage_cells,
                           ["not flagged", "category acc (not flagged)"], served_review,
                           choice.review_threshold if choice else None),
              "", f"Urgent recall and over-escalation as the urgent threshold moves ({files['urgent']}):", "",
              f"![urgent]({files['urgent']})", "",
              _curve_table("urgent threshold", URGENT_ROWS, summary.urgent_curve,
                           choice.urgent_curve if choice else None, _urgent_cells,
                           ["urgent recall", "over-escalation"], served_urgent,
                           choice.urgent_threshold if choice else None)]
    if choice:
        lines += ["", "Thresholds fitted on this run (`loragate eval --calibrate-out FILE` writes them):", "",
                  *describe(choice, bullet="- ")]
    return lines


def describe(choice: ThresholdChoice, bullet: str = "") -> list[str]:
    """The proposed policy and what it gives on this run, one fact a line."""
    t, fit = choice.temperature, choice.temperature_fit
    nll = {field: f"{num(choice.nll[field]['served'], 3)} -> {num(choice.nll[field]['fitted'], 3)}" for field in FIELDS}
    lines = [
        f"temperature: category {t.category:g} (fit x{fit.category:g}, NLL {nll['category']}), "
        f"priority {t.priority:g} (fit x{fit.priority:g}, NLL {nll['priority']})",
        f"urgent_threshold {choice.urgent_threshold:.2f}: urgent recall {pct(choice.urgent_recall)} (target >= "
        f"{MIN_URGENT_RECALL:.0%}), over-escalation {pct(choice.over_escalation)} (target <= {MAX_OVER_ESCALATION:.0%})",
        f"review_threshold {choice.review_threshold:.2f}: coverage {pct(choice.coverage)} ({choice.not_flagged} not "
        f"flagged), category accuracy among them {pct(choice.accuracy_not_flagged)} (target >= {MIN_ACCURACY:.0%})",
        f"priority_review_threshold {choice.priority_review_threshold:.2f}",
        f"ECE after the fit: category {num(choice.ece['category'], 3)}, priority {num(choice.ece['priority'], 3)}",
        *[f"note: {note}" for note in choice.notes],
    ]
    return [bullet + line for line in lines]


def _policy(policy: dict[str, Any]) -> str:
    t = policy["temperature"]
    return (f"urgent threshold {policy['urgent_threshold']:.2f}, review threshold {policy['review_threshold']:.2f}, "
            f"priority review threshold {policy['priority_review_threshold']:.2f}, temperature category "
            f"{t['category']:g}, priority {t['priority']:g}")


def _bins_table(summary: CalibrationSummary) -> str:
    header = ["confidence"] + [f"{field} {what}" for field in FIELDS for what in ("n", "mean conf", "accuracy")]
    rows = []
    for category, priority in zip(summary.category.bins, summary.priority.bins):
        cells = [f"{category.lower:.1f}-{category.upper:.1f}"]
        for b in (category, priority):
            cells += [str(b.n), num(b.mean_confidence, 3), pct(b.accuracy)]
        rows.append(cells)
    rows.append(["ECE", "", "", num(summary.category.ece, 3), "", "", num(summary.priority.ece, 3)])
    return table(header, rows)


def _coverage_cells(point: Any) -> list[str]:
    return [f"{pct(point.coverage)} ({point.not_flagged})", pct(point.accuracy)]


def _urgent_cells(point: Any) -> list[str]:
    return [pct(point.urgent_recall), pct(point.over_escalation)]


def _curve_table(name: str, rows: Sequence[float], served: Sequence[CoveragePoint | UrgentPoint],
                 fitted: Sequence[CoveragePoint | UrgentPoint] | None, cells: Any, columns: list[str],
                 served_at: float | None, chosen_at: float | None) -> str:
    """Rows at a few thresholds (plus the served and chosen ones when on the 0.01 grid); the
    columns as served, then after the fitted temperature."""
    by_served = {round(p.threshold, 2): p for p in served}
    by_fitted = {round(p.threshold, 2): p for p in fitted or ()}
    marked = {m: round(at, 2) for m, at in (("served", served_at), ("proposed", chosen_at))
              if at is not None and abs(round(at, 2) - at) < 1e-9}  # only thresholds a row stands for
    shown = sorted({*rows, *marked.values()} & set(by_served))
    header = [name, *columns] + ([f"{c}, fitted T" for c in columns] if fitted else [])
    body = []
    for t in shown:
        marks = [m for m, at in marked.items() if at == t]
        body.append([f"{t:.2f}" + (f" ({', '.join(marks)})" if marks else ""), *cells(by_served[t])]
                    + (cells(by_fitted[t]) if t in by_fitted else []))
    return table(header, body)


# ------------------------------------------------------------------ charts
def charts(plt: Any, summary: CalibrationSummary, out: Path, stem: str, title: str) -> list[Path]:
    files = chart_files(stem)
    return [_reliability(plt, out / files["reliability"], title, summary),
            _coverage(plt, out / files["coverage"], title, summary),
            _urgent(plt, out / files["urgent"], title, summary)]


def _reliability(plt: Any, path: Path, title: str, summary: CalibrationSummary) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, field in zip(axes, FIELDS):
        calibration = getattr(summary, field)
        bins = [b for b in calibration.bins if b.n]
        ax.bar([(b.lower + b.upper) / 2 for b in bins], [b.accuracy for b in bins], width=0.1, edgecolor="black",
               alpha=0.7, label="accuracy")
        ax.plot([(b.lower + b.upper) / 2 for b in bins], [b.mean_confidence for b in bins], "o", color="tab:red",
                label="mean confidence")
        for b in bins:
            ax.text((b.lower + b.upper) / 2, 0.02, str(b.n), ha="center", fontsize=7)
        ax.plot([0, 1], [0, 1], "--", color="gray", linewidth=1, label="perfect calibration")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel(f"confidence of the returned {field}")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{field}: ECE {num(calibration.ece, 3)} (n={calibration.n})", fontsize=10)
        ax.legend(fontsize=8, loc="upper left")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{title}: reliability as served (counts per bin at the bottom)", fontsize=10)
    return _save(plt, fig, path)


def _coverage(plt: Any, path: Path, title: str, summary: CalibrationSummary) -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    choice = summary.choice
    for curve, style, label in _series(summary.coverage_curve, choice.coverage_curve if choice else None):
        xs = [p.threshold for p in curve]
        left.plot(xs, [p.coverage for p in curve], style, color="tab:blue", label=f"coverage{label}")
        left.plot(xs, [p.accuracy for p in curve], style, color="tab:green", label=f"accuracy (not flagged){label}")
        right.plot([p.coverage for p in curve], [p.accuracy for p in curve], style, color="tab:green",
                   label=f"accuracy vs coverage{label}")
    policy = summary.served.policy
    _marks(left, policy.review_threshold if policy else None, choice.review_threshold if choice else None)
    for ax in (left, right):
        ax.axhline(MIN_ACCURACY, color="gray", linestyle=":", linewidth=1)
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    left.set_xlabel("review threshold on category confidence")
    left.set_ylabel("share")
    right.set_xlabel("coverage (tickets not flagged / all)")
    right.set_ylabel("category accuracy among them")
    right.set_xlim(0, 1.05)
    fig.suptitle(f"{title}: coverage vs accuracy", fontsize=10)
    return _save(plt, fig, path)


def _urgent(plt: Any, path: Path, title: str, summary: CalibrationSummary) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    choice = summary.choice
    for curve, style, label in _series(summary.urgent_curve, choice.urgent_curve if choice else None):
        xs = [p.threshold for p in curve]
        ax.plot(xs, [p.urgent_recall for p in curve], style, color="tab:red", label=f"urgent recall{label}")
        ax.plot(xs, [p.over_escalation for p in curve], style, color="tab:orange", label=f"over-escalation{label}")
    ax.axhline(MIN_URGENT_RECALL, color="tab:red", linestyle=":", linewidth=1)
    ax.axhline(MAX_OVER_ESCALATION, color="tab:orange", linestyle=":", linewidth=1)
    policy = summary.served.policy
    _marks(ax, policy.urgent_threshold if policy else None, choice.urgent_threshold if choice else None)
    ax.set_xlabel("urgent threshold on P(urgent)")
    ax.set_ylabel("share")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center right")
    ax.set_title(f"{title}: urgent recall and over-escalation", fontsize=10)
    return _save(plt, fig, path)


def _series(served: Sequence[Any], fitted: Sequence[Any] | None) -> list[tuple[Sequence[Any], str, str]]:
    return [(served, "-", " (served)")] + ([(fitted, "--", " (fitted T)")] if fitted else [])


def _marks(ax: Any, served: float | None, chosen: float | None) -> None:
    if served is not None:
        ax.axvline(served, color="black", linewidth=1, label=f"served {served:.2f}")
    if chosen is not None:
        ax.axvline(chosen, color="purple", linestyle="--", linewidth=1, label=f"proposed {chosen:.2f}")


def _save(plt: Any, fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
