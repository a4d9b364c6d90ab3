"""Which nested repeats are refused: the ambiguous ones that make a backtracking validator take
exponential time, not the delimited ones real-world schemas use (RFC 5545 rules, OAuth scopes,
Prometheus durations, web-manifest icon sizes)."""

from __future__ import annotations

import re
import time

import pytest

from service.structured import linear_regex
from service.structured.regex_analysis import NESTED_REPEAT, regex_hazard

CATASTROPHIC = [
    "(a+)+$", "^(\\d*)*x$", "(\\w+\\s?)+$", "(.*,)*$", "([a-z,]+,)*$", "(x+x+)+y", "(a|b+)+$", "(.+)+$",
    "(?i)(A+a)+$",  # case-insensitive: `a` is not a delimiter for `A+`
    "(?i:x)([^a]+a)+$",  # an inline flag anywhere: judged in both cases
    "^(([a-z])+.)+[A-Z]([a-z])+$",  # OWASP's ReDoS example
    "(.+\\s)+$",  # `.` matches the spaces too
]
DELIMITED = [
    "^RRULE:FREQ=(DAILY|WEEKLY|MONTHLY|YEARLY)(;[A-Z]+=[A-Z0-9,]+)*$",
    "^[A-Za-z0-9_:./-]+( [A-Za-z0-9_:./-]+)*$",
    "^(\\d+(ms|s|m|h|d|w|y))+$",
    "^(any|\\d+x\\d+( \\d+x\\d+)*)$",
    "^(\\w+\\.)+\\w+$", "([^,]+,)+", "([^a]+a)+", "((ab)+c)*", "(a+b)*",
    "^(?:\\S+?\\s)+?(?:<[^>]+>)?$",  # SchemaStore pyproject.json's author: \s (Unicode's spaces) delimits \S+?
]


@pytest.mark.parametrize("pattern", CATASTROPHIC)
def test_ambiguous_nested_repeats_are_refused(pattern: str) -> None:
    assert regex_hazard(pattern) == NESTED_REPEAT


@pytest.mark.parametrize("pattern", DELIMITED)
def test_nested_repeats_pinned_by_a_delimiter_are_accepted(pattern: str) -> None:
    assert regex_hazard(pattern) is None


def test_the_refused_shapes_really_backtrack_and_re2_does_not() -> None:
    """What the refusal is for: Python's `re` takes ~2x longer per extra character; RE2 does not."""
    subject = "a" * 20 + "!"
    started = time.perf_counter()
    assert re.search("^(a+)+$", subject) is None
    backtracking = time.perf_counter() - started
    started = time.perf_counter()
    assert not linear_regex.search("^(a+)+$", "a" * 100_000 + "!")
    assert time.perf_counter() - started < backtracking


@pytest.mark.parametrize(("pattern", "text", "expected"), [
    ("^[\\u00C0-\\u017Fa-z]+$", "éa", True),  # \uXXXX, as ECMA-262 and Python write it
    ("a\\Z", "ba", True), ("a\\Z", "ab", False),  # Python's end of string
    ("\\\\u0041", "\\u0041", True),  # an escaped backslash, then a literal u0041
    ("^\\d+$", "٣", False),  # ECMA-262: \d is ASCII
])
def test_re2_reads_python_and_ecma_spellings(pattern: str, text: str, expected: bool) -> None:
    assert linear_regex.search(pattern, text) is expected


def test_syntax_re2_lacks_is_a_clear_error() -> None:
    with pytest.raises(linear_regex.LinearRegexError, match="repetition"):
        linear_regex.compile_linear("a*+")
