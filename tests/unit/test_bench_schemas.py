"""The schema-coverage bench's classification of replies (no servers)."""

from __future__ import annotations

import json

import httpx
import pytest

from loadtests.bench_schemas import classify, truncation_tail

SCHEMA = {"type": "object", "properties": {"when": {"type": "string", "format": "date"}}, "required": ["when"]}


def reply(content: str, finish: str = "stop", status: int = 200) -> httpx.Response:
    if status != 200:
        return httpx.Response(status, json={"error": {"message": "no backend", "type": "x", "param": None,
                                                      "code": None}})
    return httpx.Response(200, json={"choices": [{"message": {"content": content}, "finish_reason": finish}],
                                     "usage": {"completion_tokens": 7}})


@pytest.mark.parametrize(("text", "tail"), [
    ('{"a" :\n\n' + "\n" * 40, "whitespace"),
    ('{"x":"' + "pip-" * 30, "loop"),
    ('{"t":"10:00:00.' + "0" * 60, "loop"),
    ('{"summary":"Suffering from the shadows of a long and winding road that never seems to end here', "long"),
])
def test_truncated_tails_are_told_apart(text: str, tail: str) -> None:
    assert truncation_tail(text) == tail


def test_replies_are_valid_only_when_they_stop_and_validate_with_formats() -> None:
    assert classify(SCHEMA, reply(json.dumps({"when": "2024-06-03"})))[0] == "valid"
    outcome, detail, _, _ = classify(SCHEMA, reply(json.dumps({"when": "June 3"})))
    assert outcome == "invalid" and "date" in detail
    assert classify(SCHEMA, reply('{"when": "2024-06-03"', finish="length"))[0] == "truncated"
    assert classify(SCHEMA, reply("not json"))[0] == "invalid"
    outcome, detail, _, _ = classify(SCHEMA, reply("", status=502))
    assert outcome == "error" and detail.startswith("502: no backend")
