"""The end-of-run validation figures, on hand-checked answers."""

from __future__ import annotations

from service.training.data import Example
from service.training.evaluate import triage_metrics
from service.training.forward import Generation


def _example(category: str, priority: str) -> Example:
    return Example(id="t", input_ids=[1], labels=[1], prompt_len=0, record={"category": category, "priority": priority})


def test_triage_metrics_tell_parsed_json_from_schema_valid_answers() -> None:
    examples = [_example("billing", "high"), _example("billing", "low"), _example("shipping", "low"),
                _example("returns", "urgent")]
    answers = [
        '{"category":"billing","priority":"high","summary":"Charged twice.","suggested_action":"Refund it."}',
        '{"category":"billing","priority":"high","summary":"Charged twice."}',  # JSON, no action
        '{"category":"shipping","priority":"low","summary":"Says "lost".","suggested_action":"Trace."}',  # bare quotes
        ' {"category":"returns","priority":"low","summary":"Wants a refund.","suggested_action":"Send a label."}\n',
    ]
    metrics = triage_metrics(examples, [Generation(text, True, 10) for text in answers])
    assert metrics["json_parse_rate"] == 0.75  # 1, 2 and 4 (surrounding whitespace allowed)
    assert metrics["schema_valid_rate"] == 0.5  # 1 and 4
    assert metrics["category_accuracy"] == 0.5 and metrics["priority_accuracy"] == 0.25  # only valid answers count
    assert metrics["category_accuracy_by_category"] == {"billing": 0.5, "returns": 1.0, "shipping": 0.0}
