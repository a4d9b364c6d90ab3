"""Linear-time regex matching (RE2) for checking replies against untrusted patterns.

A schema's `pattern` comes from the client. Python's `re` backtracks, so a pattern the guard lets
through could still take exponential time on a reply; RE2 never backtracks. Its syntax is also
closer to the ECMA-262 dialect JSON Schema specifies (`\\d` is ASCII, `\\p{L}` works).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import re2  # type: ignore[import-untyped]

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is reported to the client, not logged by the C++ library


# Escapes Python's `re` (and ECMA-262) accept that RE2 spells differently, when not themselves escaped.
_UNICODE_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u([0-9A-Fa-f]{4})")
_END_OF_STRING = re.compile(r"(?<!\\)((?:\\\\)*)\\Z")


class LinearRegexError(ValueError):
    """The pattern is outside RE2's syntax (e.g. possessive repeats) or over its memory budget."""


@lru_cache(maxsize=1024)
def compile_linear(pattern: str) -> Any:
    translated = _END_OF_STRING.sub(r"\1\\z", _UNICODE_ESCAPE.sub(r"\1\\x{\2}", pattern))
    try:
        return re2.compile(translated, _OPTIONS)
    except re2.error as exc:
        raise LinearRegexError(_message(exc)) from exc


def search(pattern: str, text: str) -> bool:
    """JSON Schema's `pattern` semantics: a match anywhere in `text`."""
    return compile_linear(pattern).search(text) is not None


def fullmatch(pattern: str, text: str) -> bool:
    return compile_linear(pattern).fullmatch(text) is not None


def _message(exc: Exception) -> str:
    detail = exc.args[0] if exc.args else str(exc)
    return detail.decode(errors="replace") if isinstance(detail, bytes) else str(detail)
