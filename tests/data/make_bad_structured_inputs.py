#!/usr/bin/env python3
"""Generate ``bad_structured_inputs.json``: hostile or invalid structured-output requests for negative tests.

Each entry is ``{"name": str, "kind": "json_schema"|"regex"|"grammar"|"choice", "value": ..., "why": str}``.
``value`` is what a client would send as the constraint: a schema (usually an object, but some
entries are deliberately not objects), a regex string, an EBNF grammar string, or a choice list.

Run ``python tests/data/make_bad_structured_inputs.py`` to rebuild the file. The output is deterministic.

IMPORTANT: the ``deep_nesting_10000`` entry is 10,000 levels deep, which is deeper than CPython's
default recursion limit (1000). A plain ``json.load`` of the file raises ``RecursionError``, and so do
``json.dumps`` / ``copy.deepcopy`` / ``repr`` of that value. Use ``load()`` below, which raises the limit
only while parsing. To send that case over HTTP, post the raw text from ``raw_value_text(name)`` (or
serialise it inside ``raised_recursion_limit()``).
Do not raise the recursion limit around jsonschema validation of that value: with a high limit,
``jsonschema`` recurses until the C stack overflows and the process segfaults (seen with CPython 3.11
and jsonschema 4.26), whereas at the default limit it raises a catchable ``RecursionError``.
"""

from __future__ import annotations

import contextlib
import json
import string
import sys
from pathlib import Path
from typing import Any, Iterator

HERE = Path(__file__).resolve().parent
OUT = HERE / "bad_structured_inputs.json"

DEEP_LEVELS = 10_000
ENUM_SIZE = 100_000
HUGE_PATTERN_ALTERNATIVES = 3_000

_B36 = string.digits + string.ascii_lowercase


def _base36(n: int) -> str:
    if n == 0:
        return "0"
    out = []
    while n:
        n, r = divmod(n, 36)
        out.append(_B36[r])
    return "".join(reversed(out))


def _deep_nesting_text(levels: int) -> str:
    """JSON text of an array schema nested ``levels`` deep, built without recursion."""
    return '{"type":"array","items":' * levels + '{"type":"integer"}' + "}" * levels


def _entries() -> list[tuple[dict[str, Any], str | None]]:
    """(entry, raw_value_json_or_None). Raw text is used for values too deep to json.dumps."""
    e: list[tuple[dict[str, Any], str | None]] = []

    def add(name: str, kind: str, value: Any, why: str, raw: str | None = None) -> None:
        e.append(({"name": name, "kind": kind, "value": value, "why": why}, raw))

    # ---------------- json_schema: invalid per metaschema ----------------
    add("unknown_type_value", "json_schema", {"type": "strng"},
        "'strng' is not one of the seven JSON Schema type names; metaschema validation must reject it.")
    add("unknown_type_nested", "json_schema",
        {"type": "object", "properties": {"when": {"type": "datetime"}}, "required": ["when"]},
        "Invalid type name hidden in a nested property ('datetime' is a format, not a type).")
    add("unknown_type_in_list", "json_schema", {"type": ["string", "nil"]},
        "Type array containing an unknown type name.")
    add("properties_not_object", "json_schema", {"type": "object", "properties": "x"},
        "'properties' must be an object mapping names to schemas, not a string.")
    add("required_not_list", "json_schema",
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": "a"},
        "'required' must be an array of strings (draft 4+); a bare string is invalid.")
    add("required_with_non_strings", "json_schema",
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a", 1, None]},
        "'required' items must be strings.")
    add("min_items_negative", "json_schema", {"type": "array", "items": {"type": "integer"}, "minItems": -1},
        "'minItems' must be a non-negative integer.")
    add("max_length_float", "json_schema", {"type": "string", "maxLength": 2.5},
        "'maxLength' must be a non-negative integer, not a fraction.")
    add("enum_not_array", "json_schema", {"enum": "red,green,blue"},
        "'enum' must be an array.")
    add("invalid_pattern_regex", "json_schema", {"type": "string", "pattern": "([a-z]+"},
        "'pattern' is not a valid ECMA-262 regex (unclosed group); metaschema 'format: regex' check or the regex compiler must reject it.")
    add("additional_properties_wrong_type", "json_schema",
        {"type": "object", "additionalProperties": "no"},
        "'additionalProperties' must be a schema or boolean, not a string.")

    # ---------------- json_schema: not an object ----------------
    add("schema_is_list", "json_schema", [{"type": "string"}, {"type": "integer"}],
        "A schema must be an object or boolean; a list is not a schema.")
    add("schema_is_string", "json_schema", "object",
        "A schema must be an object or boolean; the string 'object' is not a schema.")
    add("schema_is_number", "json_schema", 42, "A number is not a schema.")
    add("schema_is_null", "json_schema", None,
        "null is not a schema (and is easy to confuse with 'no constraint').")
    add("schema_is_false", "json_schema", False,
        "Boolean schema false is VALID per metaschema but matches nothing: no output can satisfy it.")

    # ---------------- json_schema: $ref problems ----------------
    add("self_ref_root", "json_schema", {"$ref": "#"},
        "Schema is only a reference to itself: infinite $ref loop with no base case.")
    add("self_ref_defs", "json_schema", {"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
        "Definition that refers to itself with no base case: infinite $ref loop.")
    add("mutual_ref_cycle", "json_schema",
        {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
        "Two definitions referring to each other with no base case.")
    add("required_infinite_object", "json_schema",
        {"type": "object", "properties": {"child": {"$ref": "#"}}, "required": ["child"], "additionalProperties": False},
        "Valid per metaschema but every instance must contain an instance of itself: no finite JSON satisfies it, so generation can never terminate validly.")
    add("ref_nonexistent_path", "json_schema",
        {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}, "required": ["a"]},
        "$ref points at a JSON pointer that does not exist in the document.")
    add("ref_bad_pointer_syntax", "json_schema", {"$ref": "#/$defs/a/~2"},
        "Invalid JSON pointer escape '~2' in $ref.")
    add("ref_remote_url", "json_schema", {"$ref": "https://example.com/schemas/user.json"},
        "Remote $ref: the server must not fetch arbitrary URLs while compiling a constraint (SSRF / latency).")
    add("ref_local_file", "json_schema", {"$ref": "file:///etc/passwd"},
        "File $ref: the server must not read local files while compiling a constraint.")

    # ---------------- json_schema: valid but unsatisfiable or resource abuse ----------------
    add("minimum_above_maximum", "json_schema", {"type": "integer", "minimum": 10, "maximum": 1},
        "Valid per metaschema, but the numeric range is empty.")
    add("min_length_above_max_length", "json_schema", {"type": "string", "minLength": 10, "maxLength": 2},
        "Valid per metaschema, but no string length satisfies both bounds.")
    add("contradictory_all_of", "json_schema", {"allOf": [{"type": "string"}, {"type": "integer"}]},
        "Valid per metaschema, but no value is both a string and an integer.")
    add("empty_enum", "json_schema", {"enum": []},
        "Empty enum: invalid in draft-04, allowed by later metaschemas, satisfiable by nothing.")
    add("min_items_huge", "json_schema", {"type": "array", "items": {"type": "integer"}, "minItems": 100_000_000},
        "Forces an output of at least 100M items: must be rejected or bounded by max_tokens, never expanded into a grammar.")
    add("min_length_huge", "json_schema", {"type": "string", "minLength": 50_000_000},
        "Forces a 50M-character string: a naive regex translation ('.{50000000,}') can exhaust memory.")
    add("max_items_huge_bounded_repeat", "json_schema",
        {"type": "array", "items": {"type": "string", "maxLength": 1000}, "minItems": 1, "maxItems": 100_000},
        "Large bounded repetitions that some compilers unroll into huge automata.")

    deep_raw = _deep_nesting_text(DEEP_LEVELS)
    add("deep_nesting_10000", "json_schema", None,
        f"Array schema nested {DEEP_LEVELS} levels deep. Parsing, validating or compiling it recursively exceeds "
        "Python's recursion limit (json.loads itself raises RecursionError at the default limit); the service must "
        "answer 4xx, not crash or hang.",
        raw=deep_raw)

    enum_values = [_base36(i) for i in range(ENUM_SIZE)]
    add("enum_100000", "json_schema", {"type": "string", "enum": enum_values},
        f"String enum with {ENUM_SIZE} values: grammar compilation time/memory blow-up; should hit a size limit.")

    words = [f"w{i:05d}" for i in range(HUGE_PATTERN_ALTERNATIVES)]
    huge_pattern = "^(" + "|".join(words) + ")(-(" + "|".join(words[:500]) + "))*$"
    add("huge_pattern", "json_schema", {"type": "string", "pattern": huge_pattern},
        f"'pattern' of {len(huge_pattern)} characters ({HUGE_PATTERN_ALTERNATIVES} alternatives plus a starred group): "
        "large regex-to-automaton compile; should hit a size limit or compile within a time budget.")

    # ---------------- regex ----------------
    add("unbalanced_paren", "regex", "(ab", "Unclosed group: not a valid regex.")
    add("unbalanced_bracket", "regex", "[a-z", "Unclosed character class.")
    add("catastrophic_backtracking", "regex", "(a+)+$",
        "Classic ReDoS pattern: exponential time in backtracking engines; DFA-based guides are fine, but any "
        "server-side re.match of model output against it must not be backtracking on long inputs.")
    add("catastrophic_backtracking_alt", "regex", "^(a|aa)+$", "Overlapping alternation under a star (ReDoS).")
    add("dfa_state_explosion", "regex", "(a|b)*a(a|b){25}",
        "Tiny regex whose minimal DFA has 2^26 states: determinisation must be bounded.")
    add("huge_bounded_repeat", "regex", "[a-z]{1,1000000}",
        "Bounded repetition that is unrolled into a million states by naive compilers.")
    add("backreference", "regex", "(a)\\1", "Backreferences are not regular; automaton-based guides cannot support them.")
    add("lookahead", "regex", "(?=abc)\\w+", "Lookahead is unsupported by most DFA/FSM regex guides.")
    add("trailing_backslash", "regex", "abc\\", "Dangling escape at the end of the pattern.")
    add("nothing_to_repeat", "regex", "*abc", "Quantifier with nothing to repeat.")
    add("empty_regex", "regex", "", "Matches only the empty string: generation must stop immediately (or be rejected as useless).")
    add("regex_not_string", "regex", ["a", "b"], "Regex constraint given as a list instead of a string.")

    # ---------------- grammar (GBNF/EBNF style, root rule 'root') ----------------
    add("empty_grammar", "grammar", "", "Empty grammar: no rules, no start symbol.")
    add("whitespace_grammar", "grammar", "  \n\t\n", "Grammar containing only whitespace.")
    add("undefined_rule", "grammar", 'root ::= greeting " " name\ngreeting ::= "hello" | "hi"\n',
        "Rule 'name' is referenced but never defined.")
    add("no_root_rule", "grammar", 'start ::= "yes" | "no"\n',
        "No 'root' start rule (GBNF/xgrammar expect 'root').")
    add("syntax_error_unclosed_group", "grammar", 'root ::= ("a" | "b"\n', "Unclosed parenthesis in the rule body.")
    add("unterminated_string_literal", "grammar", 'root ::= "abc\n', "String literal never closed.")
    add("left_recursion_no_base", "grammar", 'root ::= root "a"\n',
        "Only production is left-recursive with no base case: the language is empty.")
    add("mutual_recursion_no_base", "grammar", 'root ::= a\na ::= "(" b ")"\nb ::= "[" a "]"\n',
        "Mutually recursive rules with no terminating alternative: the language is empty.")
    add("duplicate_rule", "grammar", 'root ::= "a"\nroot ::= "b"\n', "The same rule defined twice.")
    add("grammar_not_string", "grammar", {"root": "a"}, "Grammar given as an object instead of a string.")

    # ---------------- choice ----------------
    add("empty_choice", "choice", [], "No options to choose from: nothing can be generated.")
    add("choice_not_list", "choice", "yes", "Choice given as a string instead of a list.")
    add("choice_non_string_items", "choice", ["yes", 1, None, {"a": 1}], "Choice options must be strings.")
    add("choice_only_empty_string", "choice", [""], "The only option is the empty string.")
    add("choice_duplicates", "choice", ["yes", "yes", "no", "no"], "Duplicate options (should be de-duplicated or rejected, not crash).")
    add("choice_prefix_options", "choice", ["a", "ab", "abc"],
        "Options that are prefixes of each other: the guide must decide when to stop (EOS vs continue).")
    add("choice_special_tokens", "choice", ["<|endoftext|>", "</s>", "<|im_end|>"],
        "Options spelled like special tokens: must be produced as text, not matched against special token ids.")
    return e


def write(path: Path = OUT) -> int:
    parts = []
    for entry, raw in _entries():
        if raw is not None:
            head = {k: entry[k] for k in ("name", "kind")}
            text = json.dumps(head, ensure_ascii=False)[:-1] + ', "value": ' + raw + ', "why": ' + json.dumps(entry["why"], ensure_ascii=False) + "}"
        elif len(json.dumps(entry["value"])) > 2000:
            text = json.dumps(entry, ensure_ascii=False, separators=(",", ":"))
        else:
            text = json.dumps(entry, ensure_ascii=False)
        parts.append(text)
    data = "[\n" + ",\n".join(parts) + "\n]\n"
    path.write_text(data, encoding="utf-8")
    return len(parts)


@contextlib.contextmanager
def raised_recursion_limit(limit: int = DEEP_LEVELS * 2 + 1000) -> Iterator[None]:
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def load(path: Path = OUT) -> list[dict[str, Any]]:
    """Load the file; the deep entry needs a raised recursion limit while parsing."""
    text = Path(path).read_text(encoding="utf-8")
    with raised_recursion_limit():
        return json.loads(text)


def raw_value_text(name: str) -> str:
    """The exact JSON text of one entry's value (safe for the deep entry; no recursion involved)."""
    for entry, raw in _entries():
        if entry["name"] == name:
            return raw if raw is not None else json.dumps(entry["value"], ensure_ascii=False)
    raise KeyError(name)


def _self_check(path: Path = OUT) -> None:
    items = load(path)
    names = [i["name"] for i in items]
    assert len(names) == len(set(names)), "duplicate names"
    for i in items:
        assert set(i) == {"name", "kind", "value", "why"}, i["name"]
        assert i["kind"] in {"json_schema", "regex", "grammar", "choice"}, i["name"]
    by_name = {i["name"]: i for i in items}
    depth, node = 0, by_name["deep_nesting_10000"]["value"]
    while isinstance(node, dict) and "items" in node:
        node, depth = node["items"], depth + 1
    assert depth == DEEP_LEVELS, depth
    assert len(by_name["enum_100000"]["value"]["enum"]) == ENUM_SIZE
    assert len(set(by_name["enum_100000"]["value"]["enum"])) == ENUM_SIZE
    size = path.stat().st_size
    assert size < 1_000_000, size
    kinds: dict[str, int] = {}
    for i in items:
        kinds[i["kind"]] = kinds.get(i["kind"], 0) + 1
    print(f"wrote {path} ({size:,} bytes): {len(items)} entries {kinds}")


if __name__ == "__main__":
    write(OUT)
    _self_check(OUT)
