"""Pure metric functions for triage evaluation (no I/O, no HTTP), so each one is unit-tested on
small hand-checked examples.

Conventions shared by every function:
- `true` holds the labels, `pred` the predictions; a prediction of `None` means the model gave
  no valid output (not schema-valid, or the request failed). It always counts as wrong.
- Rates are over all examples (n), so failures lower accuracy instead of vanishing.
- Priorities are ordered low < medium < high < urgent.
"""

from __future__ import annotations

from collections.abc import Sequence

from service.observability.stats import mean

PRIORITY_ORDER = ("low", "medium", "high", "urgent")
URGENT = "urgent"
INVALID = "(invalid)"  # confusion-matrix column for predictions that are None


def rate(count: int, n: int) -> float | None:
    """count / n, or None for an empty denominator (not 0: nothing was measured)."""
    return count / n if n else None


def per_1000(count: int, n: int) -> float | None:
    return 1000 * count / n if n else None


def accuracy(true: Sequence[str], pred: Sequence[str | None]) -> float | None:
    _check(true, pred)
    return rate(sum(t == p for t, p in zip(true, pred)), len(true))


def confusion_matrix(true: Sequence[str], pred: Sequence[str | None], labels: Sequence[str]) -> list[list[int]]:
    """Rows: true label (in `labels` order); columns: predicted label, then one INVALID column
    counting None predictions. A true label outside `labels` is an error (the dataset is validated)."""
    _check(true, pred)
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * (len(labels) + 1) for _ in labels]
    for t, p in zip(true, pred):
        column = len(labels) if p is None or p not in index else index[p]
        matrix[index[t]][column] += 1
    return matrix


def per_class_f1(true: Sequence[str], pred: Sequence[str | None], labels: Sequence[str]) -> dict[str, float | None]:
    """F1 of each label (one-vs-rest). None for a label that is neither in `true` nor predicted
    (0/0: it says nothing about the model). A None prediction is a false negative of the true
    label and a false positive of no label."""
    _check(true, pred)
    scores: dict[str, float | None] = {}
    for label in labels:
        tp = sum(t == label and p == label for t, p in zip(true, pred))
        fp = sum(t != label and p == label for t, p in zip(true, pred))
        fn = sum(t == label and p != label for t, p in zip(true, pred))
        scores[label] = None if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)
    return scores


def macro_f1(true: Sequence[str], pred: Sequence[str | None], labels: Sequence[str]) -> float | None:
    """Unweighted mean of the per-label F1 over the labels that occur in `true` or `pred` (as
    scikit-learn does without `labels=`), so rare classes weigh as much as common ones."""
    return mean([f for f in per_class_f1(true, pred, labels).values() if f is not None])


def urgent_recall(true: Sequence[str], pred: Sequence[str | None]) -> float | None:
    """Urgent tickets predicted urgent / urgent tickets (None when there are no urgent tickets)."""
    _check(true, pred)
    urgent = [p for t, p in zip(true, pred) if t == URGENT]
    return rate(sum(p == URGENT for p in urgent), len(urgent))


def urgent_missed(true: Sequence[str], pred: Sequence[str | None]) -> int:
    """Urgent tickets not predicted urgent (including those with no valid output)."""
    _check(true, pred)
    return sum(t == URGENT and p != URGENT for t, p in zip(true, pred))


def escalations(true: Sequence[str], pred: Sequence[str | None]) -> tuple[int, int]:
    """(over, under): predictions above / below the true priority. None predictions are neither
    (they are counted as invalid elsewhere; guessing their direction would be invented)."""
    _check(true, pred)
    rank = {p: i for i, p in enumerate(PRIORITY_ORDER)}
    over = under = 0
    for t, p in zip(true, pred):
        if p is None or p not in rank:
            continue
        over += rank[p] > rank[t]
        under += rank[p] < rank[t]
    return over, under


def _check(true: Sequence[object], pred: Sequence[object]) -> None:
    if len(true) != len(pred):
        raise ValueError(f"{len(true)} labels but {len(pred)} predictions")
