"""Regex hazards: constructs that explode a backend's automaton or are not regular at all.

Parsed with Python's own regex parser (`re._parser`), the one `re` compiles with, so the analysis
sees exactly the structure the validator will run. interegular, the maintained alternative (a
vLLM dependency), refuses syntax `re` accepts and would change which constraints are served.
"""

from __future__ import annotations

import re
from typing import Any

try:  # Python 3.11+
    import re._parser as sre_parse  # type: ignore[import-not-found]
    from re._constants import MAXREPEAT  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - older Pythons
    import sre_parse  # type: ignore[no-redef]
    from sre_constants import MAXREPEAT  # type: ignore[no-redef]

RegexSyntaxError = (re.error, RecursionError, OverflowError)


def regex_hazard(pattern: str) -> str | None:
    """Why `pattern` is refused, or None. Raises one of RegexSyntaxError when it does not parse."""
    return _hazard(sre_parse.parse(pattern))


def _hazard(parsed: Any) -> str | None:
    """Nested unbounded repeats (e.g. `(a+)+`), huge counts, backreferences and lookarounds are
    refused: they explode the automaton a backend builds, or are not regular at all."""
    for op, value in parsed:
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT"):
            _, high, body = value
            if high == MAXREPEAT and _has_unbounded_repeat(body):
                return "nested unbounded repetition such as (a+)+ can take exponential time"
            if high != MAXREPEAT and high > 1000:
                return f"a repeat count of {high} is too large (at most 1000)"
            children = [body]
        elif name == "SUBPATTERN":
            children = [value[-1]]
        elif name == "BRANCH":
            children = list(value[1])
        elif name in ("GROUPREF", "GROUPREF_EXISTS"):
            return "backreferences are not regular"
        elif name in ("ASSERT", "ASSERT_NOT"):
            return "lookaround assertions are not supported"
        else:
            continue
        for child in children:
            problem = _hazard(child)
            if problem:
                return problem
    return None


def _has_unbounded_repeat(parsed: Any) -> bool:
    for op, value in parsed:
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT"):
            if value[1] == MAXREPEAT or _has_unbounded_repeat(value[2]):
                return True
        elif name == "SUBPATTERN" and _has_unbounded_repeat(value[-1]):
            return True
        elif name == "BRANCH" and any(_has_unbounded_repeat(b) for b in value[1]):
            return True
    return False
