"""Regex hazards: constructs that explode a backend's automaton or are not regular at all.

Parsed with Python's own regex parser (`re._parser`), the one `re` compiles with, so the analysis
sees the structure a backtracking validator (a client's jsonschema, Python `re`) would run.
interegular, the maintained alternative (a vLLM dependency), refuses syntax `re` accepts and would
change which constraints are served. loragate itself checks replies with RE2 (`linear_regex`),
which never backtracks; the refusals below are the shapes that hang everyone else's validators.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

try:  # Python 3.11+
    import re._parser as sre_parse  # type: ignore[import-not-found]
    from re._constants import MAXREPEAT  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - older Pythons
    import sre_parse  # type: ignore[no-redef]
    from sre_constants import MAXREPEAT  # type: ignore[no-redef]

RegexSyntaxError = (re.error, RecursionError, OverflowError)

NESTED_REPEAT = "nested unbounded repetition such as (a+)+ can take exponential time"
_REPEATS = ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")
_CATEGORIES = {
    "CATEGORY_DIGIT": re.compile(r"\d"), "CATEGORY_NOT_DIGIT": re.compile(r"\D"),
    "CATEGORY_SPACE": re.compile(r"\s"), "CATEGORY_NOT_SPACE": re.compile(r"\S"),
    "CATEGORY_WORD": re.compile(r"\w"), "CATEGORY_NOT_WORD": re.compile(r"\W"),
}
_INLINE_IGNORECASE = re.compile(r"\(\?[a-zA-Z]*i")
_MAX_DELIMITER_CHARS = 512  # a delimiter class larger than this is not enumerated (treated as none)


def regex_hazard(pattern: str) -> str | None:
    """Why `pattern` is refused, or None. Raises one of RegexSyntaxError when it does not parse."""
    parsed = sre_parse.parse(pattern)
    # Case-insensitive anywhere (globally or in a group): character overlap is judged in both cases.
    ignore_case = bool(parsed.state.flags & re.IGNORECASE) or bool(_INLINE_IGNORECASE.search(pattern))
    return _hazard(parsed, ignore_case)


def _hazard(parsed: Any, ignore_case: bool) -> str | None:
    """Ambiguous nested unbounded repeats (e.g. `(a+)+`), huge counts, backreferences and
    lookarounds are refused: they make backtracking validators take exponential time, explode the
    automaton a backend builds, or are not regular at all."""
    for op, value in parsed:
        name = str(op)
        if name in _REPEATS:
            _, high, body = value
            if high == MAXREPEAT and _has_unbounded_repeat(body) and not _has_delimiter(body, ignore_case):
                return NESTED_REPEAT
            if high != MAXREPEAT and high > 1000:
                return f"a repeat count of {high} is too large (at most 1000)"
        elif name in ("GROUPREF", "GROUPREF_EXISTS"):
            return "backreferences are not regular"
        elif name in ("ASSERT", "ASSERT_NOT"):
            return "lookaround assertions are not supported"
        for child in _children(name, value):
            problem = _hazard(child, ignore_case)
            if problem:
                return problem
    return None


def _has_unbounded_repeat(parsed: Any) -> bool:
    return any(True for _ in _unbounded_repeat_bodies(parsed))


def _unbounded_repeat_bodies(parsed: Any) -> Iterator[Any]:
    """The body of every unbounded repeat inside `parsed`, at any depth."""
    for op, value in parsed:
        name = str(op)
        if name in _REPEATS and value[1] == MAXREPEAT:
            yield value[2]
        for child in _children(name, value):
            yield from _unbounded_repeat_bodies(child)


def _children(name: str, value: Any) -> list[Any]:
    """The sub-sequences of a parsed element: a repeat's body, a group's content, each alternative."""
    if name in _REPEATS:
        return [value[2]]
    if name == "SUBPATTERN":
        return [value[-1]]
    if name == "ATOMIC_GROUP":
        return [value]
    if name == "BRANCH":
        return list(value[1])
    return []


# ----------------------------------------------------------- delimited repeats
def _has_delimiter(body: Any, ignore_case: bool) -> bool:
    """Whether every pass of an outer repeat must match a character that none of the inner
    unbounded repeats can: `;` in `(;[A-Z]+=[A-Z0-9]+)*`, the unit in `(\\d+(ms|s|m))+`, the
    space in `( \\w+)*`. Such real-world patterns cannot split one string into passes in
    exponentially many ways; `(a+)+`, `(\\w+\\s?)+` and `(.*,)*` can, and have no such character."""
    inner = list(_unbounded_repeat_bodies(body))
    for chars in _mandatory_char_sets(body):
        if not any(_can_match(repeated, char, ignore_case) for repeated in inner for char in chars):
            return True
    return False


def _mandatory_char_sets(sequence: Any) -> Iterator[set[str]]:
    """For each element every match of `sequence` goes through that matches characters from a small
    known set (a literal, a class, or a choice of literals), that set."""
    for op, value in sequence:
        name = str(op)
        if name == "SUBPATTERN":
            yield from _mandatory_char_sets(value[-1])
        elif name in ("LITERAL", "IN"):
            chars = _enumerate_chars(op, value)
            if chars:
                yield chars
        elif name == "BRANCH":
            alternatives = [[_enumerate_chars(o, v) for o, v in branch] for branch in value[1]]
            if all(alternative and all(alternative) for alternative in alternatives):
                yield set().union(*(chars for alternative in alternatives for chars in alternative if chars))


def _enumerate_chars(op: Any, value: Any) -> set[str] | None:
    """The characters a LITERAL or a plain IN class matches, or None when not small and known."""
    name = str(op)
    if name == "LITERAL":
        return {chr(value)}
    if name != "IN":
        return None
    chars: set[str] = set()
    for item_op, item in value:
        item_name = str(item_op)
        if item_name == "LITERAL":
            chars.add(chr(item))
        elif item_name == "RANGE" and item[1] - item[0] < _MAX_DELIMITER_CHARS - len(chars):
            chars.update(chr(code) for code in range(item[0], item[1] + 1))
        elif item_name == "CATEGORY" and (category := _category_chars(str(item))) is not None:
            chars.update(category)
        else:  # NEGATE, a large category (\w, \d: every script's digits) or a huge range
            return None
    return chars or None


@lru_cache(maxsize=None)
def _category_chars(category: str) -> frozenset[str] | None:
    """Every character of a class escape such as `\\s` (Unicode's ~30 spaces), or None when large."""
    matcher = _CATEGORIES.get(category)
    if matcher is None:
        return None
    chars: set[str] = set()
    for code in range(sys.maxunicode + 1):
        if matcher.fullmatch(chr(code)):
            chars.add(chr(code))
            if len(chars) > _MAX_DELIMITER_CHARS:
                return None
    return frozenset(chars)


def _can_match(parsed: Any, char: str, ignore_case: bool) -> bool:
    """Whether some single-character element of `parsed` matches `char` (or its other case)."""
    candidates = {char, char.swapcase()} if ignore_case else {char}
    return any(_element_matches(op, value, candidate)
               for candidate in candidates for op, value in _char_elements(parsed))


def _char_elements(parsed: Any) -> Iterator[tuple[Any, Any]]:
    for op, value in parsed:
        name = str(op)
        if name in ("LITERAL", "NOT_LITERAL", "ANY", "IN"):
            yield op, value
        for child in _children(name, value):
            yield from _char_elements(child)


def _element_matches(op: Any, value: Any, char: str) -> bool:
    name = str(op)
    if name == "LITERAL":
        return chr(value) == char
    if name == "NOT_LITERAL":
        return chr(value) != char
    if name == "ANY":
        return True
    negate = False
    found = False
    for item_op, item in value:  # IN
        item_name = str(item_op)
        if item_name == "NEGATE":
            negate = True
        elif item_name == "LITERAL":
            found |= chr(item) == char
        elif item_name == "RANGE":
            found |= item[0] <= ord(char) <= item[1]
        elif item_name == "CATEGORY":
            category = _CATEGORIES.get(str(item))
            found |= category is None or bool(category.fullmatch(char))  # unknown: assume it matches
        else:
            found = True
    return found != negate
